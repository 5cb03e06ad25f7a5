"""hnsw beyond the suite: recall against exact, the mapped graph, fixed connectivity, both filter paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("usearch", reason="the hnsw index needs the [hnsw] extra")

from cairn_vectors.config import HNSWConfig
from cairn_vectors.exact import ExactOpener
from cairn_vectors.hnsw import HNSWOpener

from cairn.testing.index_suite import clustered
from cairn.vector_index import EmbedderIdentity

IDENTITY = EmbedderIdentity("suite", "clustered", 48)
N = 8000


@pytest.fixture(scope="module")
def data() -> tuple[list[str], np.ndarray, np.ndarray]:
    ids = [f"d{i}" for i in range(N)]
    return ids, clustered(N, 48, seed=1, clusters=80, spread=0.6), clustered(100, 48, seed=2, clusters=80, spread=0.6)


def recall_at_10(approximate: list[list[str]], exact: list[list[str]]) -> float:
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approximate, exact, strict=True)]))


def test_recall_at_10_against_exact_with_the_defaults(tmp_path: Path, data: tuple) -> None:
    ids, vectors, queries = data
    with (
        ExactOpener().open(tmp_path / "exact", IDENTITY) as exact,
        HNSWOpener().open(tmp_path / "hnsw", IDENTITY) as graph,
    ):
        exact.add(ids, vectors)
        graph.add(ids, vectors)
        truth = [[h.id for h in exact.search(q, 10)] for q in queries]
        found = [[h.id for h in graph.search(q, 10)] for q in queries]
        assert recall_at_10(found, truth) >= 0.95
        # The defaults are not the floor: a tiny search expansion does worse (so the setting is used).
        graph.persist()
    with HNSWOpener(HNSWConfig(expansion_search=8)).open(tmp_path / "hnsw", IDENTITY) as narrow:
        narrow_found = [[h.id for h in narrow.search(q, 10)] for q in queries]
        assert recall_at_10(narrow_found, truth) < recall_at_10(found, truth)


def test_opening_maps_the_graph_and_the_first_change_loads_it(tmp_path: Path, data: tuple) -> None:
    ids, vectors, queries = data
    with HNSWOpener().open(tmp_path / "i", IDENTITY) as index:
        index.add(ids[:500], vectors[:500])
    index = HNSWOpener().open(tmp_path / "i", IDENTITY)
    try:
        assert index.stats().details["memory_mapped"] is True
        before = [h.id for h in index.search(queries[0], 5)]
        index.add(["new"], queries[:1])
        assert index.stats().details["memory_mapped"] is False
        assert index.search(queries[0], 1)[0].id == "new"
        assert [h.id for h in index.search(queries[0], 6)][1:] == before
    finally:
        index.close()


def test_connectivity_is_fixed_when_the_graph_is_built(tmp_path: Path) -> None:
    with HNSWOpener(HNSWConfig(connectivity=8)).open(tmp_path / "i", IDENTITY) as index:
        index.add(["a"], np.ones((1, 48)))
    with HNSWOpener(HNSWConfig(connectivity=32, expansion_search=77)).open(tmp_path / "i", IDENTITY) as index:
        details = index.stats().details
        assert (details["connectivity"], details["expansion_search"]) == (8, 77)


@pytest.mark.parametrize("exact_filter_below", [0, 10_000])
def test_a_large_filter_walks_the_graph_and_a_small_one_is_answered_exactly(
    tmp_path: Path, data: tuple, exact_filter_below: int
) -> None:
    ids, vectors, queries = data
    allowed = set(ids[::3])
    with ExactOpener().open(tmp_path / "exact", IDENTITY) as exact:
        exact.add(ids, vectors)
        truth = [[h.id for h in exact.search(q, 10, filter=allowed)] for q in queries[:30]]
    config = HNSWConfig(exact_filter_below=exact_filter_below)
    with HNSWOpener(config).open(tmp_path / "hnsw", IDENTITY) as graph:
        graph.add(ids, vectors)
        found = [[h.id for h in graph.search(q, 10, filter=allowed)] for q in queries[:30]]
    assert all(set(f) <= allowed for f in found)
    if exact_filter_below >= len(allowed):
        assert found == truth
    else:
        assert recall_at_10(found, truth) >= 0.9
