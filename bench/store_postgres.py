"""cairn-postgres against raw psycopg on the same server, in the same run.

1. Durable single commits: ``PostgresStore.write`` (blob + commit + ref
   compare-and-swap, one transaction) against raw psycopg writing the same
   rows with the same statements' effect (INSERT blob, INSERT commit, UPDATE
   ref) in one transaction per commit, in a schema of its own with the same
   tables. Rounds interleave the two. Target: >= 0.7x.
2. Bulk import of N commits (default 100,000): ``PostgresStore.write`` in
   batches of 5,000 (what ``cairn import`` and ``cairn store copy`` issue)
   and the whole ``Repo.import_`` (which also verifies every hash and
   recomputes derived fields), against raw psycopg ``COPY`` and raw
   ``executemany`` of the same rows into empty tables; the baseline is the
   faster raw one. Target: >= 0.6x.
3. Materialize the N-commit branch at budget 8,000, warm (same Repo):
   target <= 30 ms; cairn-sqlite materializing the same history, interleaved,
   beside it. List 3,000 runs: target <= 20 ms; raw psycopg fetching
   the same rows (tuples, no ``Run`` built) beside it, and the ratio.
4. Throughput of 1, 4 and 16 writer processes on one branch (compare-and-swap
   retries) and on separate branches, commits per second and retries.
5. ``cairn store copy`` of the N-commit history from cairn-sqlite, every
   commit and blob read back and verified, against ``store.write`` of the
   same batches into an empty schema (the writes alone).

    python bench/store_postgres.py [--commits 100000] [--quick] [--server postgresql://postgres@127.0.0.1/postgres]

A database is created for the run and dropped afterwards. Medians throughout;
the figures move with the machine's load (the server shares its cores).
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import statistics
import time
from typing import Any

import psycopg
from cairn_postgres.config import PostgresConfig
from cairn_postgres.objects import _COMMIT_TYPES, COMMIT_COLUMNS, _commit_row
from cairn_postgres.run_rows import RUN_COLUMNS
from cairn_postgres.store import PostgresStore
from cairn_postgres.testing import SERVER_DSN, scratch_database

from cairn.model import Commit, Operation, Run, now, sha256_hex
from cairn.plugins import load_plugins
from cairn.repo import Repo
from cairn.storage import RefUpdate
from cairn.testing.memory import MemoryStore
from cairn.testing.storage import Chain, content_bytes, derive

PLUGINS = load_plugins()
TOKENIZER = PLUGINS.create("tokenizers", "approx")
MAIN = "refs/heads/main"
COLS = ", ".join(COMMIT_COLUMNS)
PLACEHOLDERS = ", ".join(["%s"] * len(COMMIT_COLUMNS))
#: The rows ``list_runs`` reads, as raw psycopg fetches them (tuples, no ``Run`` built).
RAW_RUNS = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs ORDER BY started_at DESC, run_id DESC"


def open_store(dsn: str, schema: str, pool_size: int = 2) -> PostgresStore:
    return PostgresStore(PostgresConfig(dsn=dsn, schema=schema, pool_size=pool_size))


def median_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


# -- 1. single commits ------------------------------------------------------------------------------


def bench_single(dsn: str, writes: int, rounds: int = 10) -> dict[str, float]:
    store = open_store(dsn, "single_store")
    open_store(dsn, "single_raw").close()  # the same tables, written by hand below
    raw = psycopg.connect(dsn, autocommit=True, options="-c search_path=single_raw")
    chain = Chain()
    # Both start from a branch that exists, so every write is a move.
    first = chain.append(None, "root")
    store_commits = chain.line(writes, parent=first)
    store.write(**chain.batch(first), refs=[RefUpdate(MAIN, first.hash, None)])
    raw_chain = Chain(10**6)
    raw_root = raw_chain.append(None, "root")
    raw_commits = raw_chain.line(writes, parent=raw_root)
    raw.execute("INSERT INTO blobs VALUES (%s, %s)", (raw_root.content_hash, raw_chain.blobs[raw_root.content_hash]))
    raw.execute(f"INSERT INTO commits ({COLS}) VALUES ({PLACEHOLDERS})", _commit_row(raw_root))
    raw.execute("INSERT INTO refs VALUES (%s, %s)", (MAIN, raw_root.hash))
    store_head, raw_head = first.hash, raw_root.hash
    rates: dict[str, list[float]] = {"store": [], "raw": []}
    per_round = writes // rounds
    for r in range(rounds):
        part = range(r * per_round, (r + 1) * per_round)
        start = time.perf_counter()
        for i in part:
            commit = store_commits[i]
            store.write(blobs={commit.content_hash: chain.blobs[commit.content_hash]}, commits=[commit],  # type: ignore[dict-item]
                        refs=[RefUpdate(MAIN, commit.hash, store_head)])  # fmt: skip
            store_head = commit.hash
        rates["store"].append(per_round / (time.perf_counter() - start))
        start = time.perf_counter()
        for i in part:
            commit = raw_commits[i]
            with raw.transaction():
                raw.execute("UPDATE refs SET value = %s WHERE name = %s AND value = %s", (commit.hash, MAIN, raw_head))
                raw.execute(
                    "INSERT INTO blobs (hash, data) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (commit.content_hash, raw_chain.blobs[commit.content_hash]),  # type: ignore[index]
                )
                raw.execute(f"INSERT INTO commits ({COLS}) VALUES ({PLACEHOLDERS})", _commit_row(commit))
            raw_head = commit.hash
        rates["raw"].append(per_round / (time.perf_counter() - start))
    store.close()
    raw.close()
    return {
        "store_per_s": statistics.median(rates["store"]),
        "raw_per_s": statistics.median(rates["raw"]),
        "ratio": median_ratio(rates["store"], rates["raw"]),
    }


# -- 2. bulk import ---------------------------------------------------------------------------------


def build_history(n: int) -> tuple[str, list[Commit], dict[str, bytes]]:
    """An N-commit branch made by the context engine: its export, its commits (parents first) and blobs."""
    repo = Repo(MemoryStore(), TOKENIZER, PLUGINS.content_types)
    for i in range(n):
        role = "assistant" if i % 2 else "user"
        repo.append({"content_type": "dialogue", "role": role, "text": f"message {i}: " + "word " * (5 + i % 40)})
    out = io.StringIO()
    repo.export(out)
    store = repo.store
    head = store.get_ref(MAIN)  # type: ignore[attr-defined]
    commits = list(reversed(store.ancestors(head)))  # type: ignore[attr-defined]
    blobs = store.get_blobs({c.content_hash for c in commits if c.content_hash})  # type: ignore[attr-defined]
    return out.getvalue(), commits, blobs


def write_history(dsn: str, commits: list[Commit], blobs: dict[str, bytes]) -> None:
    """The history in schema ``import_write_0``, as part 2's first round leaves it."""
    store = open_store(dsn, "import_write_0")
    for i in range(0, len(commits), 5000):
        batch = commits[i : i + 5000]
        store.write(blobs={c.content_hash: blobs[c.content_hash] for c in batch if c.content_hash}, commits=batch)
    store.update_refs([RefUpdate(MAIN, commits[-1].hash, None)])
    store.close()


def bench_import(dsn: str, dump: str, commits: list[Commit], blobs: dict[str, bytes], rounds: int) -> dict[str, float]:
    n = len(commits)
    rates: dict[str, list[float]] = {"write": [], "repo": [], "copy": [], "executemany": []}
    blob_rows = list(blobs.items())
    commit_rows = [_commit_row(c) for c in commits]
    for r in range(rounds):
        store = open_store(dsn, f"import_write_{r}")
        start = time.perf_counter()
        for i in range(0, n, 5000):
            batch = commits[i : i + 5000]
            store.write(blobs={c.content_hash: blobs[c.content_hash] for c in batch if c.content_hash}, commits=batch)
        store.update_refs([RefUpdate(MAIN, commits[-1].hash, None)])
        rates["write"].append(n / (time.perf_counter() - start))
        store.close()

        store = open_store(dsn, f"import_repo_{r}")
        repo = Repo(store, TOKENIZER, PLUGINS.content_types)
        start = time.perf_counter()
        repo.import_(dump.splitlines(), batch_size=5000)
        rates["repo"].append(n / (time.perf_counter() - start))
        store.close()

        for how in ("copy", "executemany"):
            schema = f"import_{how}_{r}"
            open_store(dsn, schema).close()
            with psycopg.connect(dsn, autocommit=True, options=f"-c search_path={schema}") as conn:
                start = time.perf_counter()
                with conn.transaction():
                    if how == "copy":
                        with conn.cursor().copy("COPY blobs (hash, data) FROM STDIN (FORMAT BINARY)") as copy:
                            copy.set_types(["text", "bytea"])
                            for row in blob_rows:
                                copy.write_row(row)
                        with conn.cursor().copy(f"COPY commits ({COLS}) FROM STDIN (FORMAT BINARY)") as copy:
                            copy.set_types(list(_COMMIT_TYPES))
                            for row in commit_rows:
                                copy.write_row(row)
                    else:
                        conn.cursor().executemany("INSERT INTO blobs (hash, data) VALUES (%s, %s)", blob_rows)
                        conn.cursor().executemany(f"INSERT INTO commits ({COLS}) VALUES ({PLACEHOLDERS})", commit_rows)
                    conn.execute("INSERT INTO refs VALUES (%s, %s)", (MAIN, commits[-1].hash))
                rates[how].append(n / (time.perf_counter() - start))
    out = {f"{k}_per_s": statistics.median(v) for k, v in rates.items()}
    best = "copy" if out["copy_per_s"] >= out["executemany_per_s"] else "executemany"
    out["baseline"] = best  # type: ignore[assignment]
    out["ratio_write"] = median_ratio(rates["write"], rates[best])
    out["ratio_repo"] = median_ratio(rates["repo"], rates[best])
    return out


# -- 3. reads -------------------------------------------------------------------------------------------


def bench_reads(dsn: str, commits: list[Commit], blobs: dict[str, bytes], runs: int = 15) -> dict[str, float]:
    import tempfile

    store = open_store(dsn, "import_write_0")
    repo = Repo(store, TOKENIZER, PLUGINS.content_types)
    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as directory:
        local = sqlite_history(directory, commits, blobs)  # the baseline: the embedded default, same history
        local_repo = Repo(local, TOKENIZER, PLUGINS.content_types)
        # The first use counts tokens into the cache and fills the reader's caches, as any first use would.
        repo.materialize(budget=8000)
        local_repo.materialize(budget=8000)
        warm, local_warm = [], []
        for _ in range(runs):  # interleaved
            start = time.perf_counter()
            result = repo.materialize(budget=8000)
            warm.append(time.perf_counter() - start)
            start = time.perf_counter()
            local_result = local_repo.materialize(budget=8000)
            local_warm.append(time.perf_counter() - start)
        assert [i.item for i in result.items] == [i.item for i in local_result.items]
        local.close()
    started = "2026-01-01T00:00:00.000000Z"
    store.put_runs([(Run(run_id=f"run-{i:05d}", type="job", status="ok", started_at=now()), []) for i in range(3000)])
    listing, raw_listing = [], []
    raw = psycopg.connect(dsn, autocommit=True, options="-c search_path=import_write_0")
    for _ in range(runs):
        start = time.perf_counter()
        listed = store.list_runs(since=started)
        listing.append(time.perf_counter() - start)
        start = time.perf_counter()
        raw.execute(RAW_RUNS, prepare=True).fetchall()
        raw_listing.append(time.perf_counter() - start)
    raw.close()
    store.close()
    assert len(listed) == 3000
    return {
        "materialize_warm_ms": statistics.median(warm) * 1000,
        "sqlite_materialize_warm_ms": statistics.median(local_warm) * 1000,
        "materialize_over_sqlite": median_ratio(warm, local_warm),
        "materialized_items": result.commit_count,
        "materialized_tokens": result.token_count,
        "list_3000_runs_ms": statistics.median(listing) * 1000,
        "raw_read_3000_runs_ms": statistics.median(raw_listing) * 1000,
        "list_over_raw": median_ratio(listing, raw_listing),
    }


def sqlite_history(directory: str, commits: list[Commit], blobs: dict[str, bytes]) -> Any:
    """A cairn-sqlite store in ``directory`` holding the history (refs/heads/main at its head)."""
    from cairn_sqlite.store import open_in_directory

    local = open_in_directory(directory)
    for i in range(0, len(commits), 5000):
        batch = commits[i : i + 5000]
        local.write(blobs={c.content_hash: blobs[c.content_hash] for c in batch if c.content_hash}, commits=batch)
    local.update_refs([RefUpdate(MAIN, commits[-1].hash, None)])
    return local


# -- 5. store copy ------------------------------------------------------------------------------------


def bench_copy(dsn: str, commits: list[Commit], blobs: dict[str, bytes]) -> dict[str, float]:
    """``copy_store`` of the whole history from SQLite, every hash verified, against ``store.write`` of the
    same batches (what the copy writes, with nothing read or verified)."""
    import tempfile

    from cairn_postgres.store_copy import copy_store

    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as directory:
        local = sqlite_history(directory, commits, blobs)
        baseline = open_store(dsn, "copy_baseline")
        start = time.perf_counter()
        for i in range(0, len(commits), 5000):
            batch = commits[i : i + 5000]
            baseline.write(
                blobs={c.content_hash: blobs[c.content_hash] for c in batch if c.content_hash}, commits=batch
            )
        write_s = time.perf_counter() - start
        baseline.close()
        target = open_store(dsn, "copy_target")
        start = time.perf_counter()
        report = copy_store(local, target)
        copy_s = time.perf_counter() - start
        assert report.verified == len(commits) and target.list_refs() == local.list_refs()
        target.close()
        local.close()
    return {"copy_s": copy_s, "verified": report.verified, "write_s": write_s, "ratio": write_s / copy_s}


# -- 4. concurrent writers -----------------------------------------------------------------------------


def _writer(dsn: str, schema: str, ref: str, count: int, barrier: Any, results: Any) -> None:
    store = open_store(dsn, schema)
    lookup = lambda digest: store.get_commits([digest])[digest]  # noqa: E731
    barrier.wait()
    retries = 0
    start = time.perf_counter()
    for i in range(count):
        while True:
            head = store.get_ref(ref)
            text = f"{ref} {i} {time.perf_counter_ns()}"
            data = content_bytes(text)
            commit = Commit.new(parent=head, operation=Operation.APPEND, content_hash=sha256_hex(data), created_at=now(),
                                content_type="dialogue", **derive(lookup(head) if head else None, lookup, 3))  # fmt: skip
            try:
                store.write(blobs={sha256_hex(data): data}, commits=[commit], refs=[RefUpdate(ref, commit.hash, head)])
                break
            except Exception:
                retries += 1
    results.put((time.perf_counter() - start, retries))
    store.close()


def bench_writers(dsn: str, count: int) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    out = []
    for writers in (1, 4, 16):
        for shared in (True, False):
            if writers == 1 and not shared:
                continue
            schema = f"writers_{writers}_{'one' if shared else 'many'}"
            open_store(dsn, schema).close()
            barrier, results = ctx.Barrier(writers + 1), ctx.Queue()
            procs = [
                ctx.Process(
                    target=_writer, args=(dsn, schema, MAIN if shared else f"refs/heads/w{w}", count, barrier, results)
                )
                for w in range(writers)
            ]
            for p in procs:
                p.start()
            barrier.wait()
            start = time.perf_counter()
            reports = [results.get(timeout=600) for _ in procs]
            elapsed = time.perf_counter() - start
            for p in procs:
                p.join()
            out.append({
                "writers": writers, "branches": 1 if shared else writers,
                "commits_per_s": writers * count / elapsed, "retries_per_commit": sum(r[1] for r in reports) / (writers * count),
            })  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=100_000, help="history size for import and materialize")
    parser.add_argument("--writes", type=int, default=500, help="single commits to time")
    parser.add_argument("--per-writer", type=int, default=100, help="commits per process in the writers test")
    parser.add_argument("--rounds", type=int, default=3, help="import rounds")
    parser.add_argument("--quick", action="store_true", help="10k history, fewer writes")
    parser.add_argument("--server", default=SERVER_DSN)
    parser.add_argument("--parts", default="12345", help="which parts to run (digits 1-5)")
    args = parser.parse_args()
    if args.quick:
        args.commits, args.writes, args.per_writer, args.rounds = 10_000, 200, 30, 2
    with scratch_database(args.server, prefix="cairn_bench") as dsn:
        single: dict[str, Any] = {}
        bulk: dict[str, Any] = {}
        reads: dict[str, Any] = {}
        writers: list[dict[str, Any]] = []
        if "1" in args.parts:
            single = bench_single(dsn, args.writes)
            print(f"1. single durable commits: store {single['store_per_s']:.0f}/s, raw psycopg {single['raw_per_s']:.0f}/s"
              f" -> {single['ratio']:.2f}x (target >= 0.7x)")  # fmt: skip
        if "2" in args.parts or "3" in args.parts or "5" in args.parts:
            print(f"   building a {args.commits:,}-commit history ...", flush=True)
            dump, commits, blobs = build_history(args.commits)
        if "2" not in args.parts and "3" in args.parts:
            write_history(dsn, commits, blobs)  # what part 3 reads, without timing the imports
        if "2" in args.parts:
            bulk = bench_import(dsn, dump, commits, blobs, args.rounds)
            print(f"2. bulk import of {args.commits:,} commits: store.write {bulk['write_per_s']:.0f}/s, "
              f"Repo.import_ {bulk['repo_per_s']:.0f}/s; raw COPY {bulk['copy_per_s']:.0f}/s, "
              f"raw executemany {bulk['executemany_per_s']:.0f}/s -> store.write {bulk['ratio_write']:.2f}x, "
              f"import {bulk['ratio_repo']:.2f}x of raw {bulk['baseline']} (target >= 0.6x)")  # fmt: skip
        if "3" in args.parts:
            reads = bench_reads(dsn, commits, blobs)
            print(f"3. materialize {args.commits:,} commits at budget 8,000, warm: {reads['materialize_warm_ms']:.1f} ms "
              f"({reads['materialized_items']} items; target <= 30 ms; SQLite on the same history "
              f"{reads['sqlite_materialize_warm_ms']:.1f} ms, {reads['materialize_over_sqlite']:.2f}x its time); list 3,000 runs: {reads['list_3000_runs_ms']:.1f} ms "
              f"(raw psycopg fetch of the same rows {reads['raw_read_3000_runs_ms']:.1f} ms, "
              f"{reads['list_over_raw']:.2f}x its time; target <= 20 ms)")  # fmt: skip
        copied: dict[str, Any] = {}
        if "5" in args.parts:
            copied = bench_copy(dsn, commits, blobs)
            print(f"5. cairn store copy of {args.commits:,} commits SQLite -> PostgreSQL, every commit and blob verified: "
              f"{copied['copy_s']:.1f} s ({args.commits / copied['copy_s']:.0f} commits/s); store.write of the same "
              f"batches {copied['write_s']:.1f} s -> {copied['ratio']:.2f}x its rate")  # fmt: skip
        if "4" in args.parts:
            writers = bench_writers(dsn, args.per_writer)
            print("4. concurrent writers (processes, each its own pool):")
        for w in writers:
            print(f"   {w['writers']:>2} writers on {w['branches']:>2} branch(es): {w['commits_per_s']:.0f} commits/s, "
                  f"{w['retries_per_commit']:.2f} compare-and-swap retries per commit")  # fmt: skip
        print(json.dumps({"single": single, "import": bulk, "reads": reads, "copy": copied, "writers": writers}))


if __name__ == "__main__":
    main()
