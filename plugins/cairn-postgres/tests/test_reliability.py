"""Reliability on a real server: racing migrations, many writers, killed writers and dropped connections.

Sizes follow the issue (16 processes x 500 writes); CAIRN_PG_RELIABILITY_WRITES
lowers the per-process count for a quick local run.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import psycopg
import pytest
from cairn_postgres.config import PostgresConfig
from cairn_postgres.schema import schema_version
from cairn_postgres.store import PostgresStore
from cairn_postgres.testing import SERVER_DSN, scratch_database

from cairn.errors import ConflictError, StorageError
from cairn.model import Commit, Operation, Run, RunEvent, now, sha256_hex
from cairn.model.chat import ChatMessage
from cairn.storage import RefUpdate
from cairn.testing.storage import Chain, content_bytes, derive

pytestmark = pytest.mark.slow

WRITERS = 16
WRITES = int(os.environ.get("CAIRN_PG_RELIABILITY_WRITES", "500"))
MAIN = "refs/heads/main"


def run_workers(target: Any, args: Any, workers: int, timeout: float = 3600) -> list[tuple[Any, ...]]:
    """Start ``workers`` spawned processes running ``target(*args(i, barrier, results))``; collect their reports.

    ``cairn.testing.storage.run_workers`` with a deadline for the whole run
    sized for 8,000 contended commits on a busy machine, not 180 s per worker.
    """
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    processes = [ctx.Process(target=target, args=args(i, barrier, results)) for i in range(workers)]
    for process in processes:
        process.start()
    outcomes: list[tuple[Any, ...]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(outcomes) < workers:
            outcomes.append(results.get(timeout=max(1.0, deadline - time.monotonic())))
    except queue.Empty:
        pytest.fail(f"only {len(outcomes)} of {workers} workers finished within {timeout:.0f} s")
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    errors = [f"worker {o[0]}: {o[-1]}" for o in outcomes if o[-1]]
    assert not errors, "; ".join(errors)
    return outcomes


def backoff(attempt: int) -> None:
    """Wait a random while, growing with each compare-and-swap lost in a row (capped at 50 ms).

    Without it, sixteen writers retrying at once on one branch spend most
    of their round trips on attempts that are bound to lose.
    """
    time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))


def _open(dsn: str, schema: str = "cairn") -> PostgresStore:
    return PostgresStore(PostgresConfig(dsn=dsn, schema=schema, pool_size=2))


# -- workers (module level: spawned processes import them) ----------------------------------------


def _open_worker(dsn: str, worker: int, barrier: Any, results: Any) -> None:
    try:
        barrier.wait(timeout=120)
        with _open(dsn) as store:
            results.put((worker, store.schema_version, None))
    except BaseException as exc:
        results.put((worker, None, f"{type(exc).__name__}: {exc}"))


def _commit_worker(dsn: str, worker: int, count: int, barrier: Any, results: Any) -> None:
    """Append ``count`` commits to main by read / compare-and-swap / retry; report the hashes acknowledged."""
    acked: list[str] = []
    conflicts = 0
    try:
        with _open(dsn) as store:
            barrier.wait(timeout=120)
            known: dict[str, Commit] = {}  # commits never change: read each once, as the context engine does

            def lookup(digest: str) -> Commit:
                if digest not in known:
                    known[digest] = store.get_commits([digest])[digest]
                return known[digest]

            conflicts_in_a_row = 0
            for i in range(count):
                while True:
                    head = store.get_ref(MAIN)
                    text = f"worker {worker} item {i}"
                    data = content_bytes(text)
                    commit = Commit.new(
                        parent=head,
                        operation=Operation.APPEND,
                        content_hash=sha256_hex(data),
                        metadata={"worker": worker, "item": i},
                        created_at=now(),
                        content_type="dialogue",
                        **derive(lookup(head) if head else None, lookup, len(text.split())),
                    )
                    try:
                        store.write(
                            blobs={sha256_hex(data): data}, commits=[commit], refs=[RefUpdate(MAIN, commit.hash, head)]
                        )
                    except ConflictError:
                        conflicts += 1
                        backoff(conflicts_in_a_row := conflicts_in_a_row + 1)
                        continue
                    conflicts_in_a_row = 0
                    acked.append(commit.hash)
                    break
        results.put((worker, acked, conflicts, None))
    except BaseException as exc:
        barrier.abort()
        results.put((worker, acked, conflicts, f"{type(exc).__name__}: {exc}"))


def _ledger_worker(dsn: str, worker: int, count: int, barrier: Any, results: Any) -> None:
    """Open, append to and close ``count`` runs, and post as many chat messages on them."""
    acked: list[str] = []
    try:
        with _open(dsn) as store:
            barrier.wait(timeout=120)
            for i in range(count):
                run_id = f"w{worker}-r{i:04d}"
                started = now()
                run = Run(run_id=run_id, type="job", status="open", started_at=started)
                store.put_run(run, [RunEvent(run_id, 0, started, "start", {"worker": worker})])
                store.append_events(run_id, [RunEvent(run_id, 1, now(), "step", {"i": i})])
                closed = Run(run_id=run_id, type="job", status="ok", started_at=started, ended_at=now())
                store.put_run(closed, [RunEvent(run_id, 2, now(), "end", {})], expected_status="open")
                store.add_chat_message(
                    ChatMessage(id=f"w{worker}-m{i:04d}", ts=now(), text=f"{worker}/{i}", run_id=run_id)
                )
                acked.append(run_id)
        results.put((worker, acked, None))
    except BaseException as exc:
        barrier.abort()
        results.put((worker, acked, f"{type(exc).__name__}: {exc}"))


# -- migrations -------------------------------------------------------------------------------------


def test_ten_processes_opening_an_empty_database_make_one_schema() -> None:
    with scratch_database(SERVER_DSN, prefix="cairn_race") as dsn:
        outcomes = run_workers(_open_worker, lambda i, barrier, results: (dsn, i, barrier, results), 10)
        assert sorted(o[1] for o in outcomes) == [schema_version()] * 10
        with psycopg.connect(dsn) as conn:
            versions = [v for (v,) in conn.execute("SELECT version FROM cairn.migrations ORDER BY version")]
            tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'cairn'").fetchone()
            schemas = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'cairn'").fetchone()
        assert versions == list(range(1, schema_version() + 1))
        assert schemas == (1,) and tables is not None and tables[0] == 21  # migrations + 20 tables


# -- many writers -------------------------------------------------------------------------------------


def test_sixteen_writers_on_one_branch_lose_no_commit() -> None:
    with scratch_database(SERVER_DSN, prefix="cairn_writers") as dsn:
        outcomes = run_workers(_commit_worker, lambda i, barrier, results: (dsn, i, WRITES, barrier, results), WRITERS)
        acked = [h for o in outcomes for h in o[1]]
        assert len(acked) == len(set(acked)) == WRITERS * WRITES
        with _open(dsn) as store:
            history = store.ancestors(store.get_ref(MAIN) or "")
            assert {c.hash for c in history} == set(acked)  # every acknowledged commit is on the branch
            assert [c.depth for c in history] == list(range(len(acked) - 1, -1, -1))
            assert store.check() == []


def test_sixteen_writers_of_runs_and_chat_lose_nothing() -> None:
    with scratch_database(SERVER_DSN, prefix="cairn_ledger") as dsn:
        outcomes = run_workers(_ledger_worker, lambda i, barrier, results: (dsn, i, WRITES, barrier, results), WRITERS)
        acked = {r for o in outcomes for r in o[1]}
        assert len(acked) == WRITERS * WRITES
        with _open(dsn) as store:
            runs = store.list_runs()
            assert {r.run_id for r in runs} == acked and {r.status for r in runs} == {"ok"}
            assert [e.seq for e in store.run_events(sorted(acked)[0])] == [0, 1, 2]
            messages = store.chat_messages()
            assert len(messages) == len(acked) and {m.run_id for m in messages} == acked


# -- crashes and dropped connections ----------------------------------------------------------------

_KILLED_WRITER = textwrap.dedent(
    """
    import sys
    from cairn_postgres.config import PostgresConfig
    from cairn_postgres.store import PostgresStore
    from cairn.storage import RefUpdate
    from cairn.testing.storage import Chain

    store = PostgresStore(PostgresConfig(dsn=sys.argv[1], schema="cairn"))
    chain, head = Chain(), None
    for batch in range(10_000):
        line = chain.line(400, parent=chain.commits.get(head) if head else None, prefix=f"batch {batch}")
        store.write(**chain.batch(*line), refs=[RefUpdate("refs/heads/main", line[-1].hash, head)])
        head = line[-1].hash
        print(batch, head, flush=True)  # acknowledged: write() returned
    """
)


def test_kill_9_mid_write_loses_no_acknowledged_batch_and_leaves_no_half() -> None:
    with scratch_database(SERVER_DSN, prefix="cairn_kill") as dsn:
        writer = subprocess.Popen(
            [sys.executable, "-c", _KILLED_WRITER, dsn], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert writer.stdout is not None
        acked = [writer.stdout.readline().split() for _ in range(3)]
        time.sleep(0.15)  # well inside the next 400-commit transaction
        writer.send_signal(signal.SIGKILL)
        rest, _ = writer.communicate(timeout=30)
        acked += [line.split() for line in rest.splitlines()]
        last = acked[-1][1]
        with _open(dsn) as store:
            head = store.get_ref(MAIN)
            history = store.ancestors(head or "")
            # Either the batch being written when the kill came was committed whole, or not at all.
            assert len(history) % 400 == 0 and len(history) >= 400 * len(acked)
            assert head == last or len(history) == 400 * (len(acked) + 1)
            assert store.stats().commits == len(history)  # nothing stored beside the branch: no half batch
            assert store.check() == []


def test_a_dropped_connection_reconnects_and_a_cut_write_is_all_or_nothing(pg_database: str) -> None:
    with _open(pg_database, "dropped") as store:
        chain = Chain()
        first = chain.append(None, "before the drop")
        store.write(**chain.batch(first), refs=[RefUpdate(MAIN, first.hash, None)])
        _terminate_others(pg_database)
        assert store.get_ref(MAIN) == first.hash  # the pooled connection was dead: the read reconnected
        second = chain.append(first, "after the drop")
        _terminate_others(pg_database)
        store.write(**chain.batch(second), refs=[RefUpdate(MAIN, second.hash, first.hash)])  # so did the write
        # Now cut a large write mid-way.
        line = chain.line(20_000, parent=second, prefix="cut")
        killer = threading.Timer(0.3, _terminate_others, (pg_database,))
        killer.start()
        try:
            # Cut before its COMMIT was sent, the write runs again on a fresh connection and is
            # acknowledged; cut while committing, it raises saying it may or may not be stored.
            store.write(**chain.batch(*line), refs=[RefUpdate(MAIN, line[-1].hash, second.hash)])
            acknowledged = True
        except StorageError as exc:
            acknowledged = False
            assert "while committing" in str(exc)
        finally:
            killer.join()
        head = store.get_ref(MAIN)
        stored = store.stats().commits
        if acknowledged or head == line[-1].hash:
            assert head == line[-1].hash and stored == 20_002  # all of it
        else:
            assert head == second.hash and stored == 2  # none of it
        assert store.check() == []


def _terminate_others(dsn: str) -> None:
    """``pg_terminate_backend`` every other connection to the database (what a DBA or a failover does)."""
    database = dsn.rsplit("/", 1)[1]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
    time.sleep(0.1)
