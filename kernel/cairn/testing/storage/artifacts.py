"""The artifact-metadata facet's conformance suite: artifact and snapshot records, inline bytes, deletion."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from cairn.errors import IntegrityError, ValidationError
from cairn.model import sha256_hex
from cairn.model.artifacts import ArtifactRecord, SnapshotRecord
from cairn.testing.storage._support import FacetSuite, StoreOpener, at, run_workers

__all__ = ["ArtifactMetaConformance", "make_artifact_record", "make_snapshot_record"]


def make_artifact_record(
    data: bytes,
    n: int,
    *,
    name: str | None = None,
    mime: str = "text/plain",
    inline: bool = False,
    referrer: str | None = None,
) -> ArtifactRecord:
    """A record of ``data`` put at ``at(n)``."""
    return ArtifactRecord(
        sha256_hex(data),
        name if name is not None else f"file-{n}.txt",
        mime,
        len(data),
        at(n),
        inline=inline,
        user="ann",
        referrer=referrer,
    )


def make_snapshot_record(tree_seed: str, n: int, *, referrer: str | None = None) -> SnapshotRecord:
    """A record of a (made-up) tree taken at ``at(n)``."""
    return SnapshotRecord(sha256_hex(tree_seed.encode()), f"/work/{tree_seed}", at(n), n, n * 100, 0, "ann", referrer)


def _artifact_worker(opener: StoreOpener, directory: str, worker: int, count: int, barrier: Any, results: Any) -> None:
    acked: list[str] = []
    try:
        store: Any = opener(Path(directory))  # a store with the artifact_meta facet
        try:
            barrier.wait(timeout=120)
            for i in range(count):
                data = f"worker {worker} file {i}".encode()
                record = make_artifact_record(data, worker * 1000 + i, inline=True)
                store.add_artifact_records([record], inline={record.hash: data})
                store.add_snapshot_records([make_snapshot_record(f"w{worker}-{i}", worker * 1000 + i)])
                acked.append(record.id)
        finally:
            store.close()
        results.put((worker, acked, None))
    except BaseException as exc:  # report, never hang the parent
        barrier.abort()
        results.put((worker, acked, f"{type(exc).__name__}: {exc}"))


class ArtifactMetaConformance(FacetSuite):
    """The ``artifact_meta`` facet's contract as tests: records newest first, each once; inline bytes
    checked against their hash, all or nothing; deletion for gc; reopening; concurrent writers."""

    facet = "artifact_meta"

    def test_artifact_records_round_trip_newest_first(self, store: Any) -> None:
        first = make_artifact_record(b"one", 1, name="report ✓.pdf", mime="application/pdf")
        second = make_artifact_record(b"two", 2, referrer="run:20260101T000000.000000Z_command_abc")
        again = make_artifact_record(b"one", 3, name="the same bytes, another name", referrer="chat:m-1")
        store.add_artifact_records([first, second])
        store.add_artifact_records([again])
        assert store.artifact_records() == [again, second, first]
        assert store.artifact_records(hash=first.hash) == [again, first]
        assert store.artifact_records(hash=sha256_hex(b"never")) == []
        assert store.artifact_records(limit=1) == [again]
        assert store.artifact_records(hash=first.hash, limit=1) == [again]
        store.add_artifact_records([first])  # the same record again is kept once
        store.add_artifact_records([])
        assert len(store.artifact_records()) == 3

    def test_records_of_the_same_time_come_in_id_order(self, store: Any) -> None:
        records = [make_artifact_record(f"tie {i}".encode(), 7) for i in range(5)]
        store.add_artifact_records(records)
        assert store.artifact_records() == sorted(records, key=lambda r: r.id, reverse=True)

    def test_inline_bytes_live_beside_their_records(self, store: Any) -> None:
        small, empty = b"\x00\x01 small file \xff", b""
        a = make_artifact_record(small, 1, inline=True)
        b = make_artifact_record(empty, 2, inline=True)
        store.add_artifact_records([a, b], inline={a.hash: small, b.hash: empty})
        assert store.get_inline([a.hash, b.hash, sha256_hex(b"absent")]) == {a.hash: small, b.hash: empty}
        assert store.get_inline(iter([a.hash, a.hash])) == {a.hash: small}
        assert store.get_inline([]) == {}
        assert store.inline_sizes() == {a.hash: len(small), b.hash: 0}
        store.add_artifact_records([make_artifact_record(small, 3, inline=True)], inline={a.hash: small})
        assert store.inline_sizes() == {a.hash: len(small), b.hash: 0}

    def test_bytes_that_do_not_match_their_hash_write_nothing(self, store: Any) -> None:
        good = make_artifact_record(b"good", 1, inline=True)
        liar = make_artifact_record(b"claimed", 2, inline=True)
        with pytest.raises(IntegrityError):
            store.add_artifact_records([good, liar], inline={good.hash: b"good", liar.hash: b"actual"})
        assert store.artifact_records() == []
        assert store.get_inline([good.hash, liar.hash]) == {}
        assert store.inline_sizes() == {}

    def test_what_is_not_a_record_is_refused(self, store: Any) -> None:
        record = make_artifact_record(b"x", 1)
        with pytest.raises(ValidationError):
            store.add_artifact_records([record.to_record()])
        with pytest.raises(ValidationError):
            store.add_snapshot_records([record])
        assert store.artifact_records() == [] and store.snapshot_records() == []

    def test_snapshot_records_round_trip_newest_first(self, store: Any) -> None:
        a = make_snapshot_record("src", 1)
        b = make_snapshot_record("docs", 2, referrer="run:r-1")
        c = make_snapshot_record("src", 3)
        store.add_snapshot_records([a, b])
        store.add_snapshot_records([c, a])
        assert store.snapshot_records() == [c, b, a]
        assert store.snapshot_records(tree=a.tree) == [c, a]
        assert store.snapshot_records(limit=2) == [c, b]
        assert store.snapshot_records(tree=sha256_hex(b"none")) == []

    def test_delete_forgets_hashes_records_and_trees(self, store: Any) -> None:
        keep, drop = b"keep me", b"drop me"
        kept = make_artifact_record(keep, 1, inline=True)
        dropped = [make_artifact_record(drop, 2, inline=True), make_artifact_record(drop, 3, name="again")]
        store.add_artifact_records([kept, *dropped], inline={kept.hash: keep, dropped[0].hash: drop})
        big = make_artifact_record(b"in the artifact store", 4)  # a record without inline bytes
        store.add_artifact_records([big])
        tree_kept, tree_dropped = make_snapshot_record("kept", 5), make_snapshot_record("dropped", 6)
        store.add_snapshot_records([tree_kept, tree_dropped])
        removed = store.delete_artifacts([dropped[0].hash, big.hash, tree_dropped.tree, sha256_hex(b"unknown")])
        assert removed == 5  # two records and the inline bytes of `drop`, the record of `big`, one snapshot
        assert store.artifact_records() == [kept]
        assert store.get_inline([kept.hash, dropped[0].hash]) == {kept.hash: keep}
        assert store.inline_sizes() == {kept.hash: len(keep)}
        assert store.snapshot_records() == [tree_kept]
        assert store.delete_artifacts([]) == 0
        assert store.delete_artifacts([dropped[0].hash]) == 0

    def test_records_survive_reopening(self, store_opener: StoreOpener, store_dir: Path) -> None:
        self._needs_persistence()
        data = b"durable"
        record = make_artifact_record(data, 1, inline=True)
        snap = make_snapshot_record("durable", 2)
        first: Any = store_opener(store_dir)
        try:
            first.add_artifact_records([record], inline={record.hash: data})
            first.add_snapshot_records([snap])
        finally:
            first.close()
        second: Any = store_opener(store_dir)
        try:
            assert second.artifact_records() == [record]
            assert second.get_inline([record.hash]) == {record.hash: data}
            assert second.snapshot_records() == [snap]
        finally:
            second.close()

    def test_concurrent_writers_across_processes_lose_nothing(self, store_opener: StoreOpener, store_dir: Path) -> None:
        self._needs_persistence()
        workers, per_worker = 4, 15
        outcomes = run_workers(
            _artifact_worker, lambda i, b, r: (store_opener, str(store_dir), i, per_worker, b, r), workers
        )
        acked = {record_id for _, ids, _ in outcomes for record_id in ids}
        store: Any = store_opener(store_dir)
        try:
            records = store.artifact_records()
            assert {r.id for r in records} == acked and len(records) == workers * per_worker
            assert len(store.inline_sizes()) == workers * per_worker
            assert len(store.snapshot_records()) == workers * per_worker
        finally:
            store.close()

    def test_any_name_and_bytes_round_trip(self, store: Any) -> None:
        pytest.importorskip("hypothesis", reason="install cairn[test] to run the property tests")
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st

        names = st.text(alphabet=st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=60).filter(
            lambda s: s.strip()
        )
        counter = itertools.count(1)

        @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
        @given(data=st.binary(max_size=2048), name=names)
        def round_trip(data: bytes, name: str) -> None:
            record = make_artifact_record(data, next(counter), name=name, inline=True)
            store.add_artifact_records([record], inline={record.hash: data})
            assert store.artifact_records(hash=record.hash)[0] == record
            assert store.get_inline([record.hash]) == {record.hash: data}

        round_trip()
