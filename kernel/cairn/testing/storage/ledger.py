"""The ledger facet's conformance suite: runs, events and spend."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from cairn.errors import ConflictError
from cairn.model import Run, RunEvent
from cairn.testing.storage._support import (
    FacetSuite,
    StoreOpener,
    at,
    run_workers,
)


def make_run(run_id: str, seconds: float, *, type: str = "job", status: str = "ok", **fields: Any) -> Run:
    """A run started ``seconds`` after the suite's epoch."""
    return Run(run_id=run_id, type=type, status=status, started_at=at(seconds), **fields)


def make_events(run_id: str, count: int, start: int = 0) -> list[RunEvent]:
    return [
        RunEvent(run_id, seq, at(seq), "step", {"n": seq, "text": f"étape {seq} ✓", "nested": {"ok": True}})
        for seq in range(start, start + count)
    ]


def _run_worker(opener: StoreOpener, directory: str, worker: int, count: int, barrier: Any, results: Any) -> None:
    """Record ``count`` runs with events in their own process; report the ids acknowledged."""
    acked: list[str] = []
    try:
        store = opener(Path(directory))
        try:
            barrier.wait(timeout=120)
            for i in range(count):
                run_id = f"w{worker}-r{i:03d}"
                store.put_run(make_run(run_id, i, metadata={"worker": worker}), make_events(run_id, 3))
                acked.append(run_id)
        finally:
            store.close()
        results.put((worker, acked, None))
    except BaseException as exc:
        barrier.abort()
        results.put((worker, acked, f"{type(exc).__name__}: {exc}"))


class LedgerConformance(FacetSuite):
    """The ``ledger`` facet's contract as tests: runs, their ordered events, closing by compare-and-swap, spend."""

    facet = "ledger"

    def test_run_round_trips_with_its_events(self, store: Any) -> None:
        run = make_run(
            "20260101T000000.000000Z_job_0a1b2c3d",
            5,
            subtype="nightly",
            user="ann",
            code_ref="a" * 40,
            ended_at=at(9),
            duration_ms=4000,
            environment={"python": "3.11", "nested": {"k": [1, 2]}},
            modules_affected=["kernel", "plugins/x"],
            summary="did the thing — ✓",
            metadata={"n": 1, "ünï": "cödé"},
        )
        events = make_events(run.run_id, 5)
        store.put_run(run, events)
        assert store.get_run(run.run_id) == run
        assert store.run_events(run.run_id) == events
        assert store.run_events(run.run_id, after_seq=2) == events[3:]
        assert store.get_run("20260101T000000.000000Z_job_ffffffff") is None
        assert store.run_events("20260101T000000.000000Z_job_ffffffff") == []

    def test_creating_an_existing_run_is_a_conflict_and_changes_nothing(self, store: Any) -> None:
        first = make_run("r-1", 1, summary="first")
        store.put_run(first, make_events("r-1", 2))
        with pytest.raises(ConflictError) as info:
            store.put_run(make_run("r-1", 2, summary="second"), make_events("r-1", 1, start=2))
        assert info.value.actual == "ok"
        assert store.get_run("r-1") == first
        assert [e.seq for e in store.run_events("r-1")] == [0, 1]

    def test_open_append_close(self, store: Any) -> None:
        opened = make_run("r-open", 1, status="open")
        store.put_run(opened)
        store.append_events("r-open", make_events("r-open", 2))
        store.append_events("r-open", make_events("r-open", 1, start=2))
        with pytest.raises(ConflictError):
            store.append_events("r-open", make_events("r-open", 1, start=1))  # seq 1 is taken
        closed = make_run("r-open", 1, status="failed", ended_at=at(3), duration_ms=2000)
        store.put_run(closed, make_events("r-open", 1, start=3), expected_status="open")
        assert store.get_run("r-open") == closed
        assert [e.seq for e in store.run_events("r-open")] == [0, 1, 2, 3]
        with pytest.raises(ConflictError) as info:  # closing twice: the status moved on
            store.put_run(closed, expected_status="open")
        assert info.value.actual == "failed"
        with pytest.raises(ConflictError):  # a closed run takes no more events
            store.append_events("r-open", make_events("r-open", 1, start=4))
        from cairn.errors import NotFoundError

        with pytest.raises(NotFoundError):
            store.append_events("r-missing", make_events("r-missing", 1))

    def test_a_failed_batch_writes_nothing(self, store: Any) -> None:
        store.put_run(make_run("r-taken", 1))
        with pytest.raises(ConflictError):
            store.put_runs([(make_run("r-new", 2), make_events("r-new", 2)), (make_run("r-taken", 3), [])])
        assert store.get_run("r-new") is None and store.run_events("r-new") == []

    def test_put_runs_records_many(self, store: Any) -> None:
        batch = [(make_run(f"b-{i:03d}", i), make_events(f"b-{i:03d}", i % 3)) for i in range(60)]
        store.put_runs(batch)
        assert len(store.list_runs()) == 60
        for run, events in batch[::7]:
            assert store.get_run(run.run_id) == run and store.run_events(run.run_id) == events

    def test_list_runs_filters_and_orders_newest_first(self, store: Any) -> None:
        store.put_runs(
            [
                (make_run("a", 10, type="eval"), []),
                (make_run("b", 20, type="job", status="failed"), []),
                (make_run("c", 30, type="eval", status="partial"), []),
                (make_run("d", 30, type="job"), []),  # same time as c: run id breaks the tie
                (make_run("e", 40, type="job", status="open"), []),
            ]
        )

        def ids(runs: Iterable[Run]) -> list[str]:
            return [r.run_id for r in runs]

        assert ids(store.list_runs()) == ["e", "d", "c", "b", "a"]
        assert ids(store.list_runs(type="eval")) == ["c", "a"]
        assert ids(store.list_runs(status="failed")) == ["b"]
        assert ids(store.list_runs(since=at(20), until=at(30))) == ["d", "c", "b"]
        assert ids(store.list_runs(limit=2)) == ["e", "d"]
        assert ids(store.list_runs(type="job", status="ok")) == ["d"]

    def test_delete_runs(self, store: Any) -> None:
        store.put_runs([(make_run(f"x-{i}", i), make_events(f"x-{i}", 2)) for i in range(4)])
        assert store.delete_runs(["x-1", "x-3", "x-missing"]) == 2
        assert [r.run_id for r in store.list_runs()] == ["x-2", "x-0"]
        assert store.run_events("x-1") == []
        # A deleted id can be used again.
        store.put_run(make_run("x-1", 9))
        assert store.get_run("x-1") is not None and store.run_events("x-1") == []

    def test_spend_records(self, store: Any) -> None:
        from cairn.model import SpendRecord

        records = [
            SpendRecord(at(1), "openai", "gpt-x", "ok", input_tokens=10, output_tokens=5, cost=0.25, run_id="r1"),
            SpendRecord(at(2), "openai", "gpt-x", "rate_limited", run_id="r2"),
            SpendRecord(at(3), "local", "hashing", "ok", input_tokens=7, cost=None),
        ]
        store.add_spend(records[1:])
        store.add_spend(records[:1])
        assert store.spend() == records  # oldest first, whatever the order of writing
        assert store.spend(since=at(2)) == records[1:]
        assert store.spend(until=at(2)) == records[:2]
        assert store.spend(run_id="r1") == records[:1]
        assert store.spend()[2].cost is None  # unknown stays unknown, never 0

    def test_ledger_survives_reopen(self, store_opener: StoreOpener, store_dir: Path) -> None:
        self._needs_persistence()
        first = store_opener(store_dir)
        try:
            first.put_run(make_run("keep", 1), make_events("keep", 3))
        finally:
            first.close()
        second = store_opener(store_dir)
        try:
            assert second.get_run("keep") is not None and len(second.run_events("keep")) == 3
        finally:
            second.close()

    def test_concurrent_run_writers_across_processes_lose_nothing(
        self, store_opener: StoreOpener, store_dir: Path
    ) -> None:
        self._needs_persistence()
        workers, per_worker = 4, 25
        outcomes = run_workers(
            _run_worker, lambda i, b, r: (store_opener, str(store_dir), i, per_worker, b, r), workers
        )
        acked = {run_id for _, ids, _ in outcomes for run_id in ids}
        assert len(acked) == workers * per_worker
        store = store_opener(store_dir)
        try:
            assert {r.run_id for r in store.list_runs()} == acked
            for run_id in sorted(acked)[::9]:
                assert [e.seq for e in store.run_events(run_id)] == [0, 1, 2]
        finally:
            store.close()


# -- chat ----------------------------------------------------------------------------------------
