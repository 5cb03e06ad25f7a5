"""The package's shape: one module per facet on a shared base, small modules, no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import cairn_sqlite
from cairn_sqlite.store import SqliteStore

from cairn.storage import facets_of

PACKAGE = Path(cairn_sqlite.__file__).parent
MAX_LINES = 600


def _module_imports(path: Path) -> set[str]:
    """The ``cairn_sqlite`` modules ``path`` imports when it is imported (not under TYPE_CHECKING, not in functions)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "cairn_sqlite":
                found.update(f"cairn_sqlite.{alias.name}" for alias in node.names)
            elif node.module.startswith("cairn_sqlite."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("cairn_sqlite."))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {f"cairn_sqlite.{p.stem}": p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {name: _module_imports(path) & set(modules) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in ``graph`` as a path that ends where it starts, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return None
        for target in sorted(graph[node]):
            found = visit(target, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        found = visit(start, [])
        if found:
            return found
    return None


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycles() -> None:
    graph = _graph()
    assert "cairn_sqlite.objects" in graph and "cairn_sqlite.refs" in graph["cairn_sqlite.objects"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_no_module_over_600_lines() -> None:
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_the_store_composes_one_mixin_per_facet() -> None:
    assert SqliteStore.name == "sqlite"
    assert facets_of(SqliteStore) == {
        "objects",
        "refs",
        "annotations",
        "token_counts",
        "ledger",
        "chat",
        "maintenance",
        "artifact_meta",
        "vectors",
        "documents",
        "governance",
        "nonces",
    }
    for mixin in SqliteStore.__bases__[:-1]:  # the last base is cairn.storage.Store
        assert len(facets_of(mixin)) == 1, mixin
        assert mixin.__module__ != "cairn_sqlite.store", mixin
