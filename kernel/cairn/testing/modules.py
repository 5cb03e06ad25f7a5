"""The shape of a package: its import graph, its cycles and its module sizes, read from the source.

The project keeps modules small (under ~600 lines, one concern each) and free
of import cycles. The kernel and every plugin check that with the same code,
which parses the source (``ast``) and imports nothing it checks::

    import cairn_mine
    from cairn.testing.modules import import_cycles, import_graph, oversized

    def test_no_import_cycles() -> None:
        assert import_cycles(import_graph(cairn_mine)) == []

    def test_modules_stay_small() -> None:
        assert oversized(cairn_mine) == {}

Every import counts, wherever it is written: at module level, under
``TYPE_CHECKING`` and inside functions. A cycle that only a type checker or a
late import walks is still two modules that cannot be understood, or
changed, one without the other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping, Set
from pathlib import Path
from types import ModuleType

__all__ = ["MAX_LINES", "import_cycles", "import_graph", "imported_names", "modules_of", "oversized"]

#: The size past which a module is to be split (the project's "~600 lines").
MAX_LINES = 600


def modules_of(package: ModuleType) -> dict[str, Path]:
    """Every module of ``package`` by dotted name (``pkg.sub`` for ``pkg/sub/__init__.py``), with its file."""
    if not package.__file__:
        raise ValueError(f"{package.__name__} has no __file__: pass a regular package, not a namespace package")
    root = Path(package.__file__).parent
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _statements(name: str, path: Path) -> Iterator[tuple[str, list[str]]]:
    """Each import in the module as (module imported from, names imported); relative imports resolved.

    ``import a.b`` is ``("a.b", [])``; ``from a import b, c`` is ``("a", ["b", "c"])``.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            yield base, [alias.name for alias in node.names]


def imported_names(name: str, path: Path) -> set[str]:
    """The dotted names of every module the module ``name`` (at ``path``) imports from, anywhere in it.

    For ``from a import b`` that is ``a`` (``b`` may be a module or a name in
    ``a``; ``import_graph`` tells them apart); the top-level package of each
    name is what a layering rule ("the kernel never imports a plugin") checks.
    """
    return {base for base, _ in _statements(name, path)}


def import_graph(package: ModuleType) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports, itself left out.

    ``from pkg import mod`` is an edge to the module ``pkg.mod``;
    ``from mod import name`` an edge to ``mod``. A package's ``__init__`` that
    runs when one of its submodules is imported is not an edge: every
    submodule would otherwise sit in a cycle with the package that re-exports it.
    """
    modules = modules_of(package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for base, names in _statements(name, path):
            if not names:
                edges.add(base)
            for imported in names:
                submodule = f"{base}.{imported}"
                edges.add(submodule if submodule in modules else base)
        graph[name] = {m for m in edges if m in modules and m != name}
    return graph


def import_cycles(graph: Mapping[str, Set[str]]) -> list[list[str]]:
    """Every set of modules that import one another, in a circle however long: [] when there is none.

    These are the strongly connected components of more than one module
    (Tarjan's algorithm), each sorted, in sorted order.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(out)


def oversized(package: ModuleType, *, limit: int = MAX_LINES) -> dict[str, int]:
    """The modules of ``package`` longer than ``limit`` lines, with their line counts: {} when none is."""
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules_of(package).items()}
    return {name: n for name, n in sizes.items() if n > limit}
