"""What governance costs, against raw SQLite measured in the same run, interleaved and repeated.

Two figures, each beside its baseline as a ratio:

1. claiming and completing an idempotency key on cairn-sqlite
   (``claim_nonce`` + ``complete_nonce``, two ``BEGIN IMMEDIATE`` writes with
   ``synchronous=FULL``), against raw sqlite3 doing the same two statements in
   two transactions on a table of the same shape;
2. moving a directive's status (``transition_directive``: a compare-and-swap
   and a history row in one write) against raw sqlite3 doing the same
   ``UPDATE ... WHERE status = ?`` and ``INSERT`` in one transaction.

Also printed, with no baseline: ``cairn.policy.evaluate`` per action over
``--rules`` rules (the gate's own cost on every gated call).

The contenders take turns in each of ``--rounds`` rounds; figures are medians.

    python bench/governance.py [--rounds 5] [--n 300] [--rules 20]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from cairn_sqlite.store import SqliteStore

from cairn.model import format_time, now
from cairn.model.governance import Directive, DirectiveEvent, NonceRecord
from cairn.policy import Action, Context, Policy, Rule, evaluate

FAR = "2999-01-01T00:00:00.000000Z"


def raw_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE nonces (key TEXT PRIMARY KEY, owner TEXT, state TEXT, expires_at TEXT, record TEXT)")
    conn.execute("CREATE TABLE directives (id TEXT PRIMARY KEY, status TEXT, record TEXT)")
    conn.execute("CREATE TABLE events (id TEXT, seq INTEGER, record TEXT, PRIMARY KEY (id, seq))")
    return conn


def raw_nonces(conn: sqlite3.Connection, n: int, tag: str) -> None:
    for i in range(n):
        key = f"{tag}-{i}"
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT expires_at FROM nonces WHERE key = ?", (key,)).fetchone()
        if row is None:
            conn.execute("INSERT INTO nonces VALUES (?, 'me', 'pending', ?, ?)", (key, FAR, json.dumps({"k": key})))
        conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE nonces SET state = 'done', record = ? WHERE key = ? AND owner = 'me'", ('{"r":1}', key))
        conn.execute("COMMIT")


def cairn_nonces(store: SqliteStore, n: int, tag: str) -> None:
    for i in range(n):
        key = f"{tag}-{i}"
        store.claim_nonce(NonceRecord(key, "me", now(), FAR))
        store.complete_nonce(key, "me", {"r": 1}, done_at=now(), expires_at=FAR)


def status(i: int) -> str:
    return "draft" if i == 0 else f"s{i}"  # a stored directive starts as draft


def raw_moves(conn: sqlite3.Connection, n: int, tag: str) -> None:
    conn.execute("INSERT INTO directives VALUES (?, 'draft', '{}')", (tag,))
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        moved = conn.execute(
            "UPDATE directives SET status = ? WHERE id = ? AND status = ?", (status(i + 1), tag, status(i))
        )
        assert moved.rowcount == 1
        seq = conn.execute("SELECT coalesce(max(seq), -1) + 1 FROM events WHERE id = ?", (tag,)).fetchone()[0]
        conn.execute("INSERT INTO events VALUES (?, ?, ?)", (tag, seq, json.dumps({"to": i})))
        conn.execute("COMMIT")


def cairn_moves(store: SqliteStore, n: int, tag: str) -> None:
    directive = Directive(intent=f"bench {tag}", created_by="bench", created_at=now())
    store.add_directive(directive, DirectiveEvent(directive.id, 0, now(), "created", "bench", None, "draft"))
    for i in range(n):
        event = DirectiveEvent(directive.id, -1, now(), "transition", "bench", status(i), status(i + 1))
        store.transition_directive(directive.id, status(i), status(i + 1), event)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--rules", type=int, default=20)
    args = parser.parse_args()
    times: dict[str, list[float]] = {k: [] for k in ("cairn nonce", "raw nonce", "cairn move", "raw move")}
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteStore(Path(directory) / "cairn.db")
        conn = raw_db(Path(directory) / "raw.db")
        for r in range(args.rounds):
            tag = f"r{r}"
            for name, run, target in (
                ("cairn nonce", cairn_nonces, store),
                ("raw nonce", raw_nonces, conn),
                ("cairn move", cairn_moves, store),
                ("raw move", raw_moves, conn),
            ):
                started = time.perf_counter()
                run(target, args.n, tag)  # type: ignore[operator]
                times[name].append(time.perf_counter() - started)
        store.close()
        conn.close()
    for what in ("nonce", "move"):
        mine, base = statistics.median(times[f"cairn {what}"]), statistics.median(times[f"raw {what}"])
        label = "claim + complete a key" if what == "nonce" else "move a directive (CAS + history)"
        print(
            f"{label:36} cairn {mine / args.n * 1e6:8.1f} us   raw sqlite3 {base / args.n * 1e6:8.1f} us   "
            f"ratio {mine / base:.2f}x"
        )
    rules = tuple(
        Rule(
            f"r{i}", "needs-approval" if i % 3 else "deny", "r", actions=("provider",), cost_over=float(i), hours=(2, 3)
        )
        for i in range(args.rules)
    )
    policy = Policy(1, "allow", rules)
    action = Action("provider", "openai", model="gpt-4o-mini", tokens=1000, cost=0.01)
    context = Context(format_time(_dt.datetime.now(_dt.timezone.utc)))
    samples = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        for _ in range(2000):
            evaluate(policy, action, context)
        samples.append((time.perf_counter() - started) / 2000)
    print(f"{'evaluate one action, ' + str(args.rules) + ' rules':36} {statistics.median(samples) * 1e6:8.1f} us")


if __name__ == "__main__":
    main()
