"""The vectors facet's conformance suite: content-addressed vectors per embedder, all or nothing."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.errors import ValidationError
from cairn.model.embedding import EmbedderIdentity, pack_vector, text_hash, unpack_vector
from cairn.testing.storage._support import FacetSuite, StoreOpener, run_workers

__all__ = ["VectorsConformance"]

SMALL = EmbedderIdentity("local", "hashing-v2", 4)
OTHER = EmbedderIdentity("local", "hashing-v2", 8)


def vec(*values: float) -> bytes:
    return pack_vector(values)


def _vector_worker(opener: StoreOpener, directory: str, worker: int, count: int, barrier: Any, results: Any) -> None:
    acked: list[str] = []
    try:
        store: Any = opener(Path(directory))
        try:
            barrier.wait(timeout=120)
            for i in range(count):
                digest = text_hash(f"worker {worker} text {i}")
                store.put_vectors(SMALL, {digest: vec(worker + 1, i + 1, 1, 0)})
                acked.append(digest)
        finally:
            store.close()
        results.put((worker, acked, None))
    except BaseException as exc:  # report, never hang the parent
        barrier.abort()
        results.put((worker, acked, f"{type(exc).__name__}: {exc}"))


_finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


class VectorsConformance(FacetSuite):
    """The ``vectors`` facet's contract as tests."""

    facet = "vectors"

    def test_round_trip_by_identity_and_hash(self, store: Any) -> None:
        a, b = text_hash("a"), text_hash("b")
        assert store.put_vectors(SMALL, {a: vec(1, 0, 0, 0), b: vec(0, 2.5, 0, -1)}) == 2
        assert store.get_vectors(SMALL, [a, b, text_hash("c")]) == {a: vec(1, 0, 0, 0), b: vec(0, 2.5, 0, -1)}
        assert store.get_vectors(OTHER, [a]) == {}
        assert store.stored_vectors(SMALL, [a, text_hash("c")]) == {a}
        assert store.vector_counts() == {SMALL: 2}

    def test_a_stored_vector_is_kept_once(self, store: Any) -> None:
        a = text_hash("a")
        assert store.put_vectors(SMALL, {a: vec(1, 0, 0, 0)}) == 1
        assert store.put_vectors(SMALL, {a: vec(0, 1, 0, 0)}) == 0
        assert store.get_vectors(SMALL, [a]) == {a: vec(1, 0, 0, 0)}
        assert store.vector_counts() == {SMALL: 1}

    def test_identities_are_separate(self, store: Any) -> None:
        a = text_hash("a")
        store.put_vectors(SMALL, {a: vec(1, 0, 0, 0)})
        store.put_vectors(OTHER, {a: pack_vector([1.0] * 8)})
        assert store.vector_counts() == {SMALL: 1, OTHER: 1}
        assert store.delete_vectors(SMALL) == 1
        assert store.vector_counts() == {OTHER: 1}
        assert store.get_vectors(SMALL, [a]) == {}
        assert store.get_vectors(OTHER, [a]) == {a: pack_vector([1.0] * 8)}

    @pytest.mark.parametrize(
        "bad",
        [
            vec(1, 0, 0),  # three components for four dimensions
            vec(1, math.nan, 0, 0),
            vec(1, math.inf, 0, 0),
            vec(0, 0, 0, 0),
            b"\x00" * 15,
        ],
    )
    def test_bad_vectors_store_nothing(self, store: Any, bad: bytes) -> None:
        good = text_hash("good")
        with pytest.raises(ValidationError):
            store.put_vectors(SMALL, {good: vec(1, 0, 0, 0), text_hash("bad"): bad})
        assert store.vector_counts() == {}
        assert store.get_vectors(SMALL, [good]) == {}

    def test_keys_must_be_text_hashes(self, store: Any) -> None:
        with pytest.raises(ValidationError):
            store.put_vectors(SMALL, {"not a hash": vec(1, 0, 0, 0)})
        with pytest.raises(ValidationError):
            store.put_vectors(SMALL, {text_hash("x").upper(): vec(1, 0, 0, 0)})
        assert store.vector_counts() == {}

    def test_iter_vectors_in_batches_in_hash_order(self, store: Any) -> None:
        stored = {text_hash(f"t{i}"): vec(i + 1, 1, 0, 0) for i in range(25)}
        store.put_vectors(SMALL, stored)
        batches = list(store.iter_vectors(SMALL, batch=10))
        assert [len(b) for b in batches] == [10, 10, 5]
        flat = [pair for b in batches for pair in b]
        assert flat == sorted(stored.items())
        assert list(store.iter_vectors(OTHER)) == []

    def test_every_finite_vector_round_trips_bit_for_bit(self, store: Any) -> None:
        counter = iter(range(10**9))

        @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
        @given(rows=st.lists(st.lists(_finite, min_size=4, max_size=4).filter(any), min_size=1, max_size=8))
        def check(rows: list[list[float]]) -> None:
            run = next(counter)
            stored = {text_hash(repr((run, i, row))): pack_vector(row) for i, row in enumerate(rows)}
            assert store.put_vectors(SMALL, stored) == len(stored)
            back = store.get_vectors(SMALL, stored)
            assert back == stored
            for digest, row in zip(stored, rows, strict=True):
                assert unpack_vector(back[digest]) == [struct.unpack("<f", struct.pack("<f", x))[0] for x in row]

        check()

    def test_vectors_survive_reopening(self, store_opener: StoreOpener, store_dir: Path) -> None:
        self._needs_persistence()
        a = text_hash("a")
        with store_opener(store_dir) as store:
            store.put_vectors(SMALL, {a: vec(1, 2, 3, 4)})
        with store_opener(store_dir) as store:
            assert store.get_vectors(SMALL, [a]) == {a: vec(1, 2, 3, 4)}

    def test_concurrent_writers_lose_nothing(self, store_opener: StoreOpener, store_dir: Path) -> None:
        self._needs_persistence()
        store_opener(store_dir).close()
        outcomes = run_workers(_vector_worker, lambda i, b, r: (store_opener, str(store_dir), i, 15, b, r), 3)
        acked = [d for o in outcomes for d in o[1]]
        with store_opener(store_dir) as store:
            assert store.stored_vectors(SMALL, acked) == set(acked)
            assert store.vector_counts() == {SMALL: len(acked)}
