"""The package's shape: no import cycles, small modules, each facet in its own module."""

from __future__ import annotations

import cairn_git

from cairn.testing.modules import import_cycles, import_graph, oversized


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = import_graph(cairn_git)
    assert graph["cairn_git.store"], "the import graph found nothing: the checker is broken"
    assert import_cycles(graph) == []


def test_modules_stay_small() -> None:
    assert oversized(cairn_git) == {}


def test_each_facet_is_a_module_of_its_own() -> None:
    from cairn_git import facets
    from cairn_git.store import GitStore

    mixins = [c for c in GitStore.__mro__ if c.__module__.startswith("cairn_git.facets.")]
    assert {c.__module__.rpartition(".")[2] for c in mixins} == {
        "objects",
        "refs",
        "annotations",
        "token_counts",
        "ledger",
        "chat",
        "maintenance",
        "sync",
        "artifacts",
        "governance",
        "nonces",
        "memory",  # vectors and documents: one local cache file, one module
    }
    assert sorted(facets.__all__) == sorted(c.__name__ for c in mixins)
