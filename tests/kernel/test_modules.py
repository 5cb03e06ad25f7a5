"""The kernel's shape: no import cycles, small modules, and the layering rules.

Read from the source by ``cairn.testing.modules``: every import counts, at
module level, under ``TYPE_CHECKING`` and inside functions.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

import cairn
from cairn.testing.modules import import_cycles, import_graph, imported_names, modules_of, oversized

ROOT = Path(__file__).resolve().parents[2]

#: Modules allowed over the size limit, each with the reason it cannot be split. Empty: keep it so.
SIZE_ALLOWLIST: dict[str, str] = {}


def test_the_kernel_has_no_import_cycles() -> None:
    graph = import_graph(cairn)
    # The checker sees imports under TYPE_CHECKING and inside functions, or it would prove nothing.
    assert "cairn.repo_reader" in graph["cairn.materialize"]  # TYPE_CHECKING
    assert "cairn.materialize" in graph["cairn.repo_history"]  # inside a method
    assert import_cycles(graph) == []


def test_no_kernel_module_is_over_600_lines() -> None:
    assert {name: n for name, n in oversized(cairn).items() if name not in SIZE_ALLOWLIST} == {}
    assert set(SIZE_ALLOWLIST) <= set(oversized(cairn)), "an allowlisted module is small now: drop it from the list"


def test_the_model_imports_nothing_of_cairn_but_the_errors() -> None:
    graph = import_graph(cairn)
    model = {name for name in graph if name == "cairn.model" or name.startswith("cairn.model.")}
    reached = set(model)
    todo = list(model)
    while todo:  # everything the model needs, however indirectly
        for imported in graph[todo.pop()] - reached:
            reached.add(imported)
            todo.append(imported)
    assert reached - model == {"cairn.errors"}


def _plugin_packages() -> set[str]:
    """The top-level packages of every distribution in plugins/ and contrib/."""
    found = set()
    for pyproject in [*ROOT.glob("plugins/*/pyproject.toml"), *ROOT.glob("contrib/*/pyproject.toml")]:
        found.update(p.parent.name for p in pyproject.parent.glob("*/__init__.py"))
    return found


def test_the_kernel_never_imports_a_plugin() -> None:
    plugins = _plugin_packages()
    assert {"cairn_sqlite", "cairn_git", "cairn_files"} <= plugins, "found no plugins: the check is broken"
    offending = {
        name: sorted(top for top in {n.split(".")[0] for n in imported_names(name, path)} if top in plugins)
        for name, path in modules_of(cairn).items()
    }
    assert {name: tops for name, tops in offending.items() if tops} == {}
    # Any cairn_* package is a plugin's, installed here or not.
    assert not [
        name
        for name, path in modules_of(cairn).items()
        if any(n.split(".")[0].startswith("cairn_") for n in imported_names(name, path))
    ]


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("cairn.repo", ["Budget", "BudgetWarning", "DiffEntry", "LogEntry", "Repo", "open_repo", "now"]),
        (
            "cairn.plugins",
            [
                "BUILTIN_PLUGIN",
                "CHOSEN_BACKENDS",
                "CHOSEN_ELSEWHERE",
                "ENTRY_POINT_GROUP",
                "REGISTRIES",
                "FactoryContext",
                "PluginInfo",
                "Plugins",
                "Registration",
                "Registry",
                "load_plugins",
                "plugin_distributions",
            ],
        ),
        (
            "cairn.config",
            [
                "ArtifactsSettings",
                "BACKEND_SECTIONS",
                "CairnSettings",
                "ChatSettings",
                "Config",
                "ContextSettings",
                "KERNEL_SECTIONS",
                "MAX_INLINE_BYTES",
                "MemorySettings",
                "PROJECT_FILE",
                "ProvidersSettings",
                "check_env_name",
                "find_project",
                "load_config",
                "redact",
                "usable_directory",
                "user_config_file",
            ],
        ),
        ("cairn.artifacts", ["Readable"]),
        ("cairn.testing.index_suite", ["IDENTITY", "Reference", "VectorIndexConformance", "clustered"]),
    ],
)
def test_names_moved_by_the_reshape_are_still_importable_where_they_were(module: str, names: list[str]) -> None:
    if module == "cairn.testing.index_suite":
        pytest.importorskip("numpy", reason="the vector-index suite needs numpy, which the kernel alone does not")
    imported = importlib.import_module(module)
    assert [name for name in names if not hasattr(imported, name)] == []


def test_each_package_exports_what_its_all_lists() -> None:
    for name in ("cairn.plugins", "cairn.storage", "cairn.providers", "cairn.evaluate"):
        package = importlib.import_module(name)
        assert [n for n in package.__all__ if not hasattr(package, n)] == [], name


# -- the checker itself ---------------------------------------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> ModuleType:
    """A package ``pkg`` written under ``tmp_path`` (never imported: the checker only reads it)."""
    for relative, text in files.items():
        path = tmp_path / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    package = ModuleType("pkg")
    package.__file__ = str(tmp_path / "pkg" / "__init__.py")
    return package


def test_the_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    package = _package(
        tmp_path,
        {
            "__init__.py": "from pkg.a import A\n",
            "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\nA = 1\n",
            "b.py": "def f():\n    from . import c\n    return c\n",
            "c.py": "import pkg.sub.d\n",
            "sub/__init__.py": "",
            "sub/d.py": "from ..a import A\nfrom .. import e\n",
            "e.py": "import os\n",
        },
    )
    graph = import_graph(package)
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.c"},
        "pkg.c": {"pkg.sub.d"},
        "pkg.sub": set(),
        "pkg.sub.d": {"pkg.a", "pkg.e"},
        "pkg.e": set(),
    }
    assert import_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.sub.d"]]
    assert imported_names("pkg.e", tmp_path / "pkg" / "e.py") == {"os"}
    assert oversized(package, limit=3) == {"pkg.a": 4}


graphs = st.integers(min_value=1, max_value=8).flatmap(
    lambda n: st.dictionaries(
        st.sampled_from([f"m{i}" for i in range(n)]),
        st.sets(st.sampled_from([f"m{i}" for i in range(n)])),
        min_size=n,
        max_size=n,
    )
)


@given(graphs)
def test_the_cycles_found_are_exactly_the_modules_that_reach_each_other(graph: dict[str, set[str]]) -> None:
    graph = {node: edges - {node} for node, edges in graph.items()}  # a module never imports itself

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    reaches = {node: reach(node) for node in graph}
    expected = {
        frozenset({node} | {other for other in reaches[node] if node in reaches[other]})
        for node in graph
        if node in reaches[node]
    }
    found = import_cycles(graph)
    assert {frozenset(c) for c in found} == expected
    assert all(c == sorted(c) for c in found) and found == sorted(found)


def test_checking_imports_nothing_it_checks(tmp_path: Path) -> None:
    package = _package(tmp_path, {"__init__.py": "raise SystemExit('imported')\n"})
    assert import_graph(package) == {"pkg": set()}
    assert "pkg" not in sys.modules


# -- the layers of docs/architecture.md -----------------------------------------------------------


def _layers() -> list[tuple[str, set[str]]]:
    """The layer table of docs/architecture.md, lowest layer first: (name, the modules listed)."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## The layers", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| layer ")]
    layers = []
    for row in rows:
        name, modules, _ = (cell.strip() for cell in row.strip().strip("|").split("|"))
        layers.append((name, {m.strip().strip("`") for m in modules.split(",")}))
    return layers[::-1]


def _unit(module: str, listed: set[str]) -> str:
    """The listed module or package that ``module`` belongs to (``cairn.storage.refs`` -> ``cairn.storage``)."""
    while module not in listed and "." in module:
        module = module.rpartition(".")[0]
    return module


def test_the_layers_of_the_architecture_doc_hold() -> None:
    layers = _layers()
    level = {module: index for index, (_, modules) in enumerate(layers) for module in modules}
    assert [name for name, _ in layers][:2] == ["leaves", "model"], "the table was not found or not read"
    graph = import_graph(cairn)
    unlisted = sorted({_unit(m, set(level)) for m in graph} - set(level))
    assert unlisted == [], f"docs/architecture.md's layer table does not list {unlisted}"
    upward = sorted(
        f"{module} ({layers[level[_unit(module, set(level))]][0]}) imports {imported} "
        f"({layers[level[_unit(imported, set(level))]][0]})"
        for module, imports in graph.items()
        for imported in imports
        if level[_unit(imported, set(level))] > level[_unit(module, set(level))]
    )
    assert upward == []
