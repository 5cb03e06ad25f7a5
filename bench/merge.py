"""Merge and an item's history on cairn-sqlite, each printed beside a raw sqlite3 baseline from the same run.

1. ``Repo.merge`` of two branches of N commits each (default 10,000) that
   diverged from a shared base, with conflicts resolved by ``theirs``
   (target: <= 50 ms). Baseline: raw sqlite3 reading both sides' commit
   rows (a recursive walk over ``parent_seq``), the least a merge must read.
2. ``Repo.edit_history`` of an item with 100 edits in a history of H commits
   (default 100,000; target: <= 5 ms). Baseline: raw sqlite3 selecting the
   item's edits by target and their blobs.

    python bench/merge.py [--side 10000] [--history 100000] [--runs 7]

Runs alternate between cairn and the baseline; medians are printed.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from cairn.config import load_config
from cairn.plugins import load_plugins
from cairn.repo import Repo, open_repo

PLUGINS = load_plugins()


def open_project(root: Path, name: str) -> Repo:
    path = root / name
    path.mkdir()
    (path / "cairn.toml").write_text('[cairn]\nstorage = "sqlite"\ntokenizer = "approx"\n')
    return open_repo(config=load_config(path, environ={"CAIRN_USER_CONFIG": ""}), plugins=PLUGINS)


def say(i: int, where: str) -> dict:
    return {
        "content_type": "dialogue",
        "role": "user",
        "text": f"{where} turn {i}: a short reply about the tool output",
    }


_WALK = """
WITH RECURSIVE chain(n, seq) AS (
    SELECT 0, seq FROM commits WHERE hash = ?
    UNION ALL
    SELECT chain.n + 1, c.parent_seq FROM chain JOIN commits AS c ON c.seq = chain.seq
    WHERE c.parent_seq IS NOT NULL LIMIT ?
)
SELECT c.* FROM chain JOIN commits AS c ON c.seq = chain.seq
"""


def bench_merge(root: Path, side: int, runs: int) -> dict[str, float]:
    repo = open_project(root, "merge")
    base = [repo.append(say(i, "base")).hash for i in range(100)]
    repo.create_branch("side")
    for branch in ("side", "main"):
        repo.switch(branch)
        for i in range(side):
            if i % 1000 == 0:  # the same base items edited on both sides: conflicts
                repo.edit(base[i // 1000], say(i, f"{branch} edit"))
            else:
                repo.append(say(i, branch))
    main_head = repo.branches()["main"]
    side_head = repo.branches()["side"]
    db = Path(repo.store.path)  # type: ignore[attr-defined]
    raw = sqlite3.connect(db)
    timings: dict[str, list[float]] = {"merge": [], "raw": []}
    for r in range(runs):
        repo.create_branch(f"m{r}", main_head)
        repo.switch(f"m{r}")
        fresh = open_repo(config=load_config(db.parent.parent, environ={"CAIRN_USER_CONFIG": ""}), plugins=PLUGINS)
        start = time.perf_counter()
        result = fresh.merge("side", strategy="theirs")
        timings["merge"].append(time.perf_counter() - start)
        assert result.kind == "merge" and len(result.conflicts) == side // 1000
        fresh.close()
        start = time.perf_counter()
        rows = (
            raw.execute(_WALK, (main_head, side + 1)).fetchall() + raw.execute(_WALK, (side_head, side + 1)).fetchall()
        )
        timings["raw"].append(time.perf_counter() - start)
        assert len(rows) == 2 * (side + 1)
        repo.switch("main")
    raw.close()
    repo.close()
    out = {k: statistics.median(v) * 1000 for k, v in timings.items()}
    out["ratio"] = out["merge"] / out["raw"]
    return out


def bench_history(root: Path, history: int, runs: int) -> dict[str, float]:
    repo = open_project(root, "history")
    item = repo.append(say(0, "item")).hash
    every = max(1, history // 101)
    for i in range(1, history):
        if i % every == 0 and i // every <= 100:
            repo.edit(item, say(i, "edit"))
        else:
            repo.append(say(i, "main"))
    db = Path(repo.store.path)  # type: ignore[attr-defined]
    repo.close()
    raw = sqlite3.connect(db)
    timings: dict[str, list[float]] = {"history": [], "raw": []}
    for _ in range(runs):
        fresh = open_repo(config=load_config(db.parent.parent, environ={"CAIRN_USER_CONFIG": ""}), plugins=PLUGINS)
        fresh.commit(item)  # opening and the first read are not the history's cost
        start = time.perf_counter()
        entries = fresh.edit_history(item)
        timings["history"].append(time.perf_counter() - start)
        assert len(entries) == 101
        fresh.close()
        start = time.perf_counter()
        edits = raw.execute("SELECT * FROM commits WHERE target = ? ORDER BY created_at", (item,)).fetchall()
        hashes = [row[4] for row in edits]
        raw.execute(f"SELECT hash, data FROM blobs WHERE hash IN ({', '.join('?' * len(hashes))})", hashes).fetchall()
        timings["raw"].append(time.perf_counter() - start)
    raw.close()
    out = {k: statistics.median(v) * 1000 for k, v in timings.items()}
    out["ratio"] = out["history"] / out["raw"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        merge = bench_merge(root, args.side, args.runs)
        print(
            f"merge of two {args.side}-commit branches: {merge['merge']:.1f} ms "
            f"(raw sqlite3 walk of both sides {merge['raw']:.1f} ms, {merge['ratio']:.1f}x; target <= 50 ms)"
        )
        if not args.history:
            return
        history = bench_history(root, args.history, args.runs)
        print(
            f"edit_history, 100 edits in {args.history} commits: {history['history']:.2f} ms "
            f"(raw sqlite3 {history['raw']:.2f} ms, {history['ratio']:.1f}x; target <= 5 ms)"
        )


if __name__ == "__main__":
    main()
