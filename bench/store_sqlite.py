"""Single-commit writes through SqliteStore against raw sqlite3 with the same pragmas.

Three writers, all WAL, the same ``synchronous`` level, one ``BEGIN IMMEDIATE``
transaction per write, on the same file system:

- raw: one INSERT of a blob row per transaction (the floor);
- raw, same SQL: the statements SqliteStore issues for one commit, by hand, on
  a database with its schema (what the schema's rows and indexes cost);
- store: ``SqliteStore.write`` of blob + commit + ref compare-and-swap + token
  count, as the context engine writes a commit.

The writers take turns in rounds so disk noise hits them alike. The figures
are medians of per-write latency.

    python bench/store_sqlite.py [--writes 2000] [--dir PATH] [--synchronous full]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cairn_sqlite.store import COMMIT_COLUMNS, SqliteStore

from cairn.model import Commit
from cairn.storage import RefUpdate
from cairn.testing.storage import Chain

MAIN = "refs/heads/main"


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    return conn


def raw_writer(path: Path, synchronous: str, payloads: list[tuple[str, bytes]]) -> Callable[[int], None]:
    conn = connect(path, synchronous)
    conn.execute("CREATE TABLE blobs (hash TEXT PRIMARY KEY, data BLOB NOT NULL)")

    def write(i: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR IGNORE INTO blobs (hash, data) VALUES (?, ?)", payloads[i])
        conn.execute("COMMIT")

    return write


def same_sql_writer(path: Path, synchronous: str, commits: list[Commit], chain: Chain) -> Callable[[int], None]:
    SqliteStore(path).close()  # create the schema
    conn = connect(path, synchronous)
    columns = ", ".join(f'"{c}"' for c in COMMIT_COLUMNS)
    insert_commit = f"INSERT OR IGNORE INTO commits ({columns}) VALUES ({', '.join('?' * len(COMMIT_COLUMNS))})"
    rows = []
    for c in commits:
        record = c.to_record()
        record["metadata"] = json.dumps(record["metadata"], sort_keys=True, separators=(",", ":"))
        rows.append(tuple(record[k] for k in COMMIT_COLUMNS))

    def write(i: int) -> None:
        commit = commits[i]
        conn.execute("BEGIN IMMEDIATE")
        if i == 0:
            conn.execute(
                "INSERT INTO refs (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (MAIN, commit.hash)
            )
        else:
            conn.execute("UPDATE refs SET value = ? WHERE name = ? AND value = ?", (commit.hash, MAIN, commit.parent))
        conn.execute(
            "INSERT OR IGNORE INTO blobs (hash, data) VALUES (?, ?)",
            (commit.content_hash, chain.blobs[commit.content_hash]),
        )  # type: ignore[index]
        conn.execute(insert_commit, rows[i])
        conn.execute(
            "INSERT INTO token_counts (tokenizer, hash, count) VALUES (?, ?, ?) "
            "ON CONFLICT (tokenizer, hash) DO UPDATE SET count = excluded.count",
            ("approx", commit.content_hash, commit.token_count),
        )
        conn.execute("COMMIT")

    return write


def store_writer(
    path: Path, synchronous: str, commits: list[Commit], chain: Chain
) -> tuple[Callable[[int], None], SqliteStore]:
    store = SqliteStore(path, synchronous=synchronous)
    batches = [chain.batch(c) for c in commits]

    def write(i: int) -> None:
        commit = commits[i]
        store.write(
            **batches[i],
            refs=[RefUpdate(MAIN, commit.hash, commit.parent)],
            token_counts={"approx": {commit.content_hash: commit.token_count}},  # type: ignore[dict-item]
        )

    return write, store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10, help="turns each writer takes")
    parser.add_argument("--dir", type=Path, default=None, help="where the databases go (default: a temp dir)")
    parser.add_argument("--synchronous", default="full", choices=["off", "normal", "full", "extra"])
    args = parser.parse_args()

    chain = Chain()
    commits = chain.line(args.writes, prefix="a benchmark message of a few words")
    payloads = [(digest, chain.blobs[digest]) for digest in (c.content_hash for c in commits) if digest]
    timings: dict[str, list[float]] = {"raw": [], "same": [], "store": []}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        writers = {
            "raw": raw_writer(Path(tmp) / "raw.db", args.synchronous, payloads),
            "same": same_sql_writer(Path(tmp) / "same.db", args.synchronous, commits, chain),
        }
        writers["store"], store = store_writer(Path(tmp) / "store.db", args.synchronous, commits, chain)
        per_round = -(-args.writes // args.rounds)
        for start in range(0, args.writes, per_round):
            for name, write in writers.items():
                for i in range(start, min(start + per_round, args.writes)):
                    begin = time.perf_counter()
                    write(i)
                    timings[name].append(time.perf_counter() - begin)
        assert len(store.ancestors(commits[-1].hash)) == args.writes and store.check() == []
        store.close()

    medians = {name: statistics.median(values) for name, values in timings.items()}
    print(
        f"{args.writes} single writes each, WAL, synchronous={args.synchronous.upper()}, in {args.dir or 'a temp dir'}"
    )
    labels = {
        "raw": "raw sqlite3, 1 INSERT per txn",
        "same": "raw sqlite3, the store's SQL",
        "store": "SqliteStore.write",
    }
    for name, label in labels.items():
        p95 = statistics.quantiles(timings[name], n=20)[-1]
        print(
            f"  {label:32s} median {medians[name] * 1e6:7.1f} us = {1 / medians[name]:7.0f} writes/s"
            f"   p95 {p95 * 1e6:7.1f} us"
        )
    print(f"  ratio store / raw (1 INSERT):      {medians['store'] / medians['raw']:.2f}x")
    print(f"  ratio store / raw (same SQL):      {medians['store'] / medians['same']:.2f}x")


if __name__ == "__main__":
    main()
