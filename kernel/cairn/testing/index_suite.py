"""The vector-index conformance suite: every ``cairn.vector_index`` implementation runs it unchanged.

Subclass ``VectorIndexConformance`` in the plugin's tests and provide an
``index_opener`` fixture returning the plugin's ``VectorIndexOpener``::

    from cairn.testing.index_suite import VectorIndexConformance

    class TestMyIndex(VectorIndexConformance):
        @pytest.fixture
        def index_opener(self):
            return MyOpener(MyConfig())

The opener must be picklable (define its class in your package, not in a
test module): the crash test opens the index in a freshly spawned process
and kills it mid-write.

Class attributes:

- ``exact = False`` for an approximate index: rankings are then checked by
  recall@k against a brute-force reference instead of hit for hit;
- ``min_recall``: the recall@10 an approximate index must reach on the
  suite's clustered data (default 0.9).

Every reference answer is computed here, in float64, from the vectors the
test gave the index: nothing of the index under test is trusted. Needs
NumPy and Hypothesis (every index plugin has the first; the second is in
``cairn[test]``).
"""

from __future__ import annotations

import multiprocessing
import os
import queue as _queue
import random
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.errors import ConflictError, EmbedderMismatchError, StorageError, ValidationError
from cairn.testing._index_support import (
    DIMS,
    IDENTITY,
    Reference,
    assert_exact_top,
    assert_well_formed,
    clustered,
    crash_state,
    crash_writer,
    recall,
    snapshot,
)
from cairn.vector_index import MAX_K, REINDEX_COMMAND, EmbedderIdentity, Hit, VectorIndex, VectorIndexOpener

__all__ = ["IDENTITY", "Reference", "VectorIndexConformance", "clustered"]


# Each subclass runs the suite's properties (a different executor to Hypothesis), and
# each example makes its own directory rather than using the function-scoped tmp_path.
_SHARED_BY_SUBCLASSES = [HealthCheck.function_scoped_fixture, HealthCheck.differing_executors]


class VectorIndexConformance:
    """The contract of ``cairn.vector_index.VectorIndex`` as tests. Subclass and provide ``index_opener``."""

    #: False for an approximate index: rankings are checked by recall, not hit for hit.
    exact: bool = True
    #: Recall@10 an approximate index must reach on the suite's clustered data.
    min_recall: float = 0.9

    @pytest.fixture
    def index_opener(self) -> VectorIndexOpener:
        raise NotImplementedError(f"{type(self).__name__} must override the index_opener fixture")

    @pytest.fixture
    def index_path(self, tmp_path: Path) -> Path:
        return tmp_path / "index"

    @pytest.fixture
    def index(self, index_opener: VectorIndexOpener, index_path: Path) -> Iterator[VectorIndex]:
        opened = index_opener.open(index_path, IDENTITY)
        try:
            yield opened
        finally:
            try:
                opened.close()
            except (StorageError, ConflictError):
                pass

    def check_ranking(
        self, hits: list[Hit], reference: Reference, query: np.ndarray, k: int, allowed: set[str] | None = None
    ) -> float:
        """Exact indexes: a true top k. Approximate ones: well formed; returns the recall for the caller to average."""
        if self.exact:
            assert_exact_top(hits, reference, query, k, allowed)
        else:
            assert_well_formed(hits, reference, query, k, allowed)
        return recall(hits, reference.top(query, k, allowed))

    def filled(self, index: VectorIndex, n: int = 600, seed: int = 1) -> Reference:
        reference = Reference()
        ids = [f"doc-{i}" for i in range(n)]
        vectors = clustered(n, DIMS, seed=seed)
        index.add(ids, vectors)
        reference.add(ids, vectors)
        return reference

    # -- opening ---------------------------------------------------------------------------------

    def test_a_new_index_is_empty_and_says_what_it_is(
        self, index: VectorIndex, index_opener: VectorIndexOpener, index_path: Path
    ) -> None:
        assert len(index) == 0 and "x" not in index
        assert index.search(np.ones(DIMS), 5) == []
        stats = index.stats()
        assert (stats.kind, stats.count, stats.dimensions, stats.identity) == (index_opener.kind, 0, DIMS, IDENTITY)
        assert index.kind == index_opener.kind and index.identity == IDENTITY
        assert stats.to_dict()["identity"] == IDENTITY.to_dict() and stats.bytes >= 0

    def test_a_path_that_is_a_file_is_refused(self, index_opener: VectorIndexOpener, tmp_path: Path) -> None:
        path = tmp_path / "not-an-index"
        path.write_text("hello")
        with pytest.raises(ValidationError):
            index_opener.open(path, IDENTITY)
        assert path.read_text() == "hello"

    # -- ranking ---------------------------------------------------------------------------------

    def test_search_ranks_like_brute_force(self, index: VectorIndex) -> None:
        reference = self.filled(index, n=2000, seed=2)
        queries = clustered(40, DIMS, seed=99)
        recalls = [self.check_ranking(index.search(q, 10), reference, q, 10) for q in queries]
        assert np.mean(recalls) >= (1.0 if self.exact else self.min_recall), f"recall@10 {np.mean(recalls):.3f}"

    def test_a_stored_vector_finds_itself_first(self, index: VectorIndex) -> None:
        reference = self.filled(index, n=300, seed=3)
        for value in ["doc-0", "doc-17", "doc-299"]:
            hits = index.search(reference.vectors[value] * 42.0, 1)  # scaled: the index normalises queries
            assert hits[0].id == value and hits[0].score == pytest.approx(1.0, abs=1e-5)

    def test_k_larger_than_the_index_returns_everything(self, index: VectorIndex) -> None:
        reference = self.filled(index, n=7, seed=4)
        query = clustered(1, DIMS, seed=5)[0]
        hits = index.search(query, 50)
        self.check_ranking(hits, reference, query, 50)
        assert {h.id for h in hits} == set(reference.vectors)

    def test_vectors_are_normalised_so_scale_does_not_matter(self, index: VectorIndex) -> None:
        base = clustered(3, DIMS, seed=6)
        index.add(["small", "unit", "huge"], [base[0] * 1e-6, base[1] / np.linalg.norm(base[1]), base[2] * 1e30])
        for hit in index.search(base[0], 3):
            assert -1.0 - 1e-6 <= hit.score <= 1.0 + 1e-6
        assert index.search(base[2] * 1e-20, 1)[0].id == "huge"

    # -- changing ----------------------------------------------------------------------------------

    def test_adding_an_existing_id_replaces_its_vector(self, index: VectorIndex) -> None:
        reference = self.filled(index, n=200, seed=7)
        fresh = clustered(1, DIMS, seed=8, spread=3.0)
        index.add(["doc-5"], fresh)
        reference.add(["doc-5"], fresh)
        assert len(index) == 200 and "doc-5" in index
        hit = index.search(fresh[0], 1)[0]
        assert hit.id == "doc-5" and hit.score == pytest.approx(1.0, abs=1e-5)
        for query in clustered(10, DIMS, seed=9):
            self.check_ranking(index.search(query, 5), reference, query, 5)

    def test_removed_ids_are_gone(self, index: VectorIndex) -> None:
        reference = self.filled(index, n=300, seed=10)
        gone = [f"doc-{i}" for i in range(0, 300, 3)]
        assert index.remove(gone + ["never-added"]) == len(gone)
        assert index.remove(gone) == 0  # removing again is a no-op
        reference.remove(gone)
        assert len(index) == 200 and "doc-0" not in index and "doc-1" in index
        for query in clustered(15, DIMS, seed=11):
            hits = index.search(query, 10)
            assert not {h.id for h in hits} & set(gone)
            self.check_ranking(hits, reference, query, 10)
        everything = index.search(clustered(1, DIMS, seed=12)[0], MAX_K)
        assert {h.id for h in everything} == set(reference.vectors)

    def test_an_empty_batch_changes_nothing(self, index: VectorIndex) -> None:
        self.filled(index, n=20)
        index.add([], np.empty((0, DIMS)))
        assert index.remove([]) == 0 and len(index) == 20

    # -- filters -----------------------------------------------------------------------------------

    def test_a_filter_limits_results_to_allowed_ids(self, index: VectorIndex) -> None:
        reference = self.filled(index, n=1500, seed=13)
        recalls = []
        for size in (1, 5, 40, 1000):
            allowed = {f"doc-{i}" for i in random.Random(size).sample(range(1500), size)}
            allowed |= {"unknown-id"}  # ids the index does not hold are ignored
            for query in clustered(5, DIMS, seed=size):
                hits = index.search(query, 10, filter=allowed)
                assert {h.id for h in hits} <= allowed
                recalls.append(self.check_ranking(hits, reference, query, 10, allowed))
        assert np.mean(recalls) >= (1.0 if self.exact else self.min_recall), (
            f"filtered recall@10 {np.mean(recalls):.3f}"
        )

    def test_an_empty_or_unknown_filter_finds_nothing(self, index: VectorIndex) -> None:
        self.filled(index, n=50)
        query = np.ones(DIMS)
        assert index.search(query, 5, filter=set()) == []
        assert index.search(query, 5, filter={"nobody"}) == []
        assert [h.id for h in index.search(query, 5, filter=frozenset({"doc-3"}))] == ["doc-3"]
        assert [h.id for h in index.search(query, 5, filter={"doc-3": None}.keys())] == ["doc-3"]

    @pytest.mark.parametrize("bad", ["doc-1", b"doc-1", lambda i: True, 7, {1, 2}])
    def test_a_filter_must_be_a_collection_of_ids(self, index: VectorIndex, bad: Any) -> None:
        self.filled(index, n=10)
        with pytest.raises(ValidationError):
            index.search(np.ones(DIMS), 3, filter=bad)

    # -- persistence ---------------------------------------------------------------------------------

    def test_persisted_changes_survive_reopening(self, index_opener: VectorIndexOpener, index_path: Path) -> None:
        index = index_opener.open(index_path, IDENTITY)
        reference = self.filled(index, n=500, seed=14)
        index.persist()
        gone = [f"doc-{i}" for i in range(0, 500, 2)]
        index.remove(gone)
        reference.remove(gone)
        replaced = clustered(10, DIMS, seed=15)
        index.add([f"doc-{i}" for i in range(1, 20, 2)], replaced)
        reference.add([f"doc-{i}" for i in range(1, 20, 2)], replaced)
        index.persist()
        queries = clustered(10, DIMS, seed=16)
        before = [index.search(q, 8) for q in queries]
        index.close()
        again = index_opener.open(index_path, IDENTITY)
        try:
            assert len(again) == 250 and "doc-0" not in again and "doc-1" in again
            for query, hits in zip(queries, before, strict=True):
                after = again.search(query, 8)
                assert [h.id for h in after] == [h.id for h in hits]
                self.check_ranking(after, reference, query, 8)
            assert again.stats().count == 250 and again.stats().bytes > 0
        finally:
            again.close()

    def test_close_persists(self, index_opener: VectorIndexOpener, index_path: Path) -> None:
        with index_opener.open(index_path, IDENTITY) as index:
            self.filled(index, n=30)
        with index_opener.open(index_path, IDENTITY) as again:
            assert len(again) == 30

    def test_a_closed_index_refuses_work(self, index_opener: VectorIndexOpener, index_path: Path) -> None:
        index = index_opener.open(index_path, IDENTITY)
        index.close()
        index.close()  # closing twice is fine
        with pytest.raises(StorageError):
            index.search(np.ones(DIMS), 1)
        with pytest.raises(StorageError):
            index.add(["a"], np.ones((1, DIMS)))

    def test_a_second_writer_cannot_overwrite_the_first(
        self, index_opener: VectorIndexOpener, index_path: Path
    ) -> None:
        first = index_opener.open(index_path, IDENTITY)
        second = index_opener.open(index_path, IDENTITY)
        first.add(["from-first"], np.ones((1, DIMS)))
        first.persist()
        second.add(["from-second"], -np.ones((1, DIMS)))
        with pytest.raises(ConflictError):
            second.persist()
        first.close()
        with index_opener.open(index_path, IDENTITY) as again:
            assert "from-first" in again and "from-second" not in again

    def test_calls_from_several_threads_are_safe(self, index: VectorIndex) -> None:
        reference = self.filled(index, n=500, seed=21)
        extra = clustered(40, DIMS, seed=22)
        reference.add([f"t{i}" for i in range(40)], extra)  # what the writer thread adds
        problems: list[BaseException] = []

        def search(seed: int) -> None:
            try:
                for query in clustered(25, DIMS, seed=seed):
                    hits = index.search(query, 5)
                    scores = reference.scores(query)
                    assert len(hits) == 5 and len({h.id for h in hits}) == 5
                    assert all(h.score == pytest.approx(scores[h.id], abs=1e-4) for h in hits)
            except BaseException as exc:  # reported by the main thread
                problems.append(exc)

        def add() -> None:
            try:
                for i in range(40):
                    index.add([f"t{i}"], extra[i : i + 1])
            except BaseException as exc:
                problems.append(exc)

        threads = [threading.Thread(target=search, args=(seed,)) for seed in range(4)]
        threads.append(threading.Thread(target=add))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not problems, problems[0]
        assert len(index) == 540 and all(f"t{i}" in index for i in range(40))

    def test_another_embedder_is_refused_and_names_the_reindex_command(
        self, index_opener: VectorIndexOpener, index_path: Path
    ) -> None:
        with index_opener.open(index_path, IDENTITY) as index:
            self.filled(index, n=20)
        before = snapshot(index_path)
        for other in (
            EmbedderIdentity(IDENTITY.provider, "another-model", DIMS),
            EmbedderIdentity(IDENTITY.provider, IDENTITY.model, DIMS * 2),
            EmbedderIdentity("another-provider", IDENTITY.model, DIMS),
        ):
            with pytest.raises(EmbedderMismatchError) as info:
                index_opener.open(index_path, other)
            assert REINDEX_COMMAND in (info.value.hint or "")
            assert other.describe() in str(info.value) and IDENTITY.describe() in str(info.value)
        assert snapshot(index_path) == before
        with index_opener.open(index_path, IDENTITY) as again:
            assert len(again) == 20

    # -- bad input ------------------------------------------------------------------------------------

    BAD_ADDS: Mapping[str, tuple[Any, Any]] = {
        "NaN": (["a", "b"], [[float("nan")] + [1.0] * (DIMS - 1), [1.0] * DIMS]),
        "infinity": (["a", "b"], [[1.0] * DIMS, [float("inf")] + [1.0] * (DIMS - 1)]),
        "too few dimensions": (["a"], [[1.0] * (DIMS - 1)]),
        "too many dimensions": (["a"], [[1.0] * (DIMS + 1)]),
        "an empty id": (["a", ""], [[1.0] * DIMS] * 2),
        "a duplicate id": (["a", "a"], [[1.0] * DIMS] * 2),
        "an id that is not a string": (["a", 7], [[1.0] * DIMS] * 2),
        "a control character": (["a\nb"], [[1.0] * DIMS]),
        "an overlong id": (["x" * 5000], [[1.0] * DIMS]),
        "a single string of ids": ("ab", [[1.0] * DIMS] * 2),
        "fewer vectors than ids": (["a", "b"], [[1.0] * DIMS]),
        "a zero vector": (["a", "b"], [[0.0] * DIMS, [1.0] * DIMS]),
        "a flat vector": (["a"], [1.0] * DIMS),
        "text": (["a"], [["x"] * DIMS]),
        "ragged rows": (["a", "b"], [[1.0] * DIMS, [1.0] * 3]),
    }

    @pytest.mark.parametrize("case", sorted(BAD_ADDS))
    def test_a_bad_batch_is_refused_and_stores_nothing(
        self, index: VectorIndex, index_opener: VectorIndexOpener, index_path: Path, case: str
    ) -> None:
        reference = self.filled(index, n=40)
        index.persist()
        query = clustered(1, DIMS, seed=20)[0]
        before = index.search(query, 40)
        ids, vectors = self.BAD_ADDS[case]
        with pytest.raises(ValidationError):
            index.add(ids, vectors)
        assert len(index) == 40 and "a" not in index
        assert index.search(query, 40) == before
        index.close()
        with index_opener.open(index_path, IDENTITY) as again:
            assert len(again) == 40 and "a" not in again
            self.check_ranking(again.search(query, 10), reference, query, 10)

    @pytest.mark.parametrize(
        ("k", "query"),
        [
            (0, "ok"),
            (-1, "ok"),
            (MAX_K + 1, "ok"),
            (True, "ok"),
            (2.5, "ok"),
            ("3", "ok"),
            (3, "short"),
            (3, "long"),
            (3, "nan"),
            (3, "zero"),
            (3, "matrix"),
        ],
    )
    def test_a_bad_search_is_refused(self, index: VectorIndex, k: Any, query: str) -> None:
        self.filled(index, n=20)
        vectors = {
            "ok": np.ones(DIMS),
            "short": np.ones(DIMS - 1),
            "long": np.ones(DIMS + 1),
            "nan": np.full(DIMS, np.nan),
            "zero": np.zeros(DIMS),
            "matrix": np.ones((2, DIMS)),
        }
        with pytest.raises(ValidationError):
            index.search(vectors[query], k)
        assert len(index) == 20

    @pytest.mark.parametrize("bad", [[""], ["a", "a"], "a", [3]])
    def test_a_bad_remove_is_refused(self, index: VectorIndex, bad: Any) -> None:
        self.filled(index, n=20)
        with pytest.raises(ValidationError):
            index.remove(bad)
        assert len(index) == 20

    @settings(max_examples=25, deadline=None, suppress_health_check=_SHARED_BY_SUBCLASSES)
    @given(
        rows=st.integers(1, 6),
        position=st.tuples(st.integers(0, 5), st.integers(0, DIMS - 1)),
        value=st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    )
    def test_any_non_finite_component_is_refused(
        self, index_opener: VectorIndexOpener, rows: int, position: tuple[int, int], value: float
    ) -> None:
        with tempfile.TemporaryDirectory() as directory, index_opener.open(Path(directory) / "i", IDENTITY) as index:
            index.add(["keep"], np.ones((1, DIMS)))
            vectors = clustered(rows, DIMS, seed=rows)
            vectors[position[0] % rows, position[1]] = value
            with pytest.raises(ValidationError):
                index.add([f"v{i}" for i in range(rows)], vectors)
            assert len(index) == 1 and [h.id for h in index.search(np.ones(DIMS), 5)] == ["keep"]

    # -- any sequence of changes -------------------------------------------------------------------------

    @settings(max_examples=30, deadline=None, suppress_health_check=_SHARED_BY_SUBCLASSES)
    @given(
        operations=st.lists(
            st.one_of(
                st.tuples(
                    st.just("add"),
                    st.lists(st.integers(0, 30), min_size=1, max_size=12, unique=True),
                    st.integers(0, 10_000),
                ),
                st.tuples(st.just("remove"), st.lists(st.integers(0, 30), max_size=10, unique=True), st.just(0)),
                st.tuples(st.just("persist"), st.just([]), st.just(0)),
                st.tuples(st.just("reopen"), st.just([]), st.just(0)),
            ),
            max_size=14,
        ),
        k=st.integers(1, 40),
        id_text=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=6),
    )
    def test_any_sequence_of_changes_matches_a_reference(
        self, index_opener: VectorIndexOpener, operations: list[tuple[str, list[int], int]], k: int, id_text: str
    ) -> None:
        def name(number: int) -> str:
            return f"{id_text}/{number}"

        reference = Reference()
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "index"
            index = index_opener.open(path, IDENTITY)
            try:
                for operation, numbers, seed in operations:
                    if operation == "add":
                        ids = [name(n) for n in numbers]
                        vectors = clustered(len(ids), DIMS, seed=seed)
                        index.add(ids, vectors)
                        reference.add(ids, vectors)
                    elif operation == "remove":
                        ids = [name(n) for n in numbers]
                        assert index.remove(ids) == len(set(ids) & set(reference.vectors))
                        reference.remove(ids)
                    elif operation == "persist":
                        index.persist()
                    else:
                        index.close()
                        index = index_opener.open(path, IDENTITY)
                    assert len(index) == len(reference.vectors)
                assert all(i in index for i in reference.vectors)
                for query in clustered(3, DIMS, seed=k):
                    self.check_ranking(index.search(query, k), reference, query, k)
                    allowed = set(list(reference.vectors)[::2])
                    self.check_ranking(index.search(query, k, filter=allowed), reference, query, k, allowed)
            finally:
                index.close()

    # -- crashes ------------------------------------------------------------------------------------------

    def test_a_writer_killed_at_any_moment_leaves_an_index_that_opens(
        self, index_opener: VectorIndexOpener, tmp_path: Path
    ) -> None:
        context = multiprocessing.get_context("spawn")
        for attempt in range(4):
            path = tmp_path / f"crash-{attempt}"
            done = context.Queue()
            writer = context.Process(target=crash_writer, args=(index_opener, str(path), done), daemon=True)
            writer.start()
            acknowledged = 0
            try:
                target = 1 + attempt % 3
                deadline = time.monotonic() + 120
                while acknowledged < target and time.monotonic() < deadline:
                    try:
                        acknowledged = done.get(timeout=1)
                    except _queue.Empty:
                        assert writer.is_alive(), f"the writer died on its own (exit code {writer.exitcode})"
                time.sleep(random.Random(attempt).uniform(0.0, 0.05))  # land anywhere in the next add or persist
            finally:
                writer.kill()
                writer.join(30)
            assert acknowledged >= 1, "the writer never persisted"
            while True:
                try:
                    acknowledged = max(acknowledged, done.get_nowait())
                except (_queue.Empty, OSError, ValueError):
                    break
            self._check_recovered(index_opener, path, acknowledged)

    def _check_recovered(self, index_opener: VectorIndexOpener, path: Path, acknowledged: int) -> None:
        index = index_opener.open(path, IDENTITY)
        try:
            # Every acknowledged persist is kept; a persist the kill interrupted is all there or not at all.
            for steps in range(acknowledged, acknowledged + 50):
                reference = crash_state(steps)
                if len(index) == len(reference.vectors) and all(i in index for i in reference.vectors):
                    break
            else:
                raise AssertionError(f"after {acknowledged} acknowledged persists the index matches no completed step")
            for query in clustered(3, DIMS, seed=acknowledged):
                self.check_ranking(index.search(query, 10), reference, query, 10)
            # And it takes writes again.
            index.add(["after-the-crash"], np.ones((1, DIMS)))
            index.persist()
        finally:
            index.close()
        with index_opener.open(path, IDENTITY) as again:
            assert "after-the-crash" in again and len(again) == len(reference.vectors) + 1
        assert os.listdir(path)
