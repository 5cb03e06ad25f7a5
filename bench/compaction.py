"""Materialize after a compaction on cairn-sqlite: its cost follows the budget, not what was compacted.

A branch of N turns (default 20,000) with an instruction and a pinned turn
is compacted keeping the last 20; then ``materialize(budget=2000)`` is timed
beside two baselines from the same run:

- the same history in another store, not compacted, materialized within the
  same budget (the walk stops at the budget: the cost a compaction must not
  exceed by much);
- the compacted branch materialized with ``compaction=False`` (the
  originals within the budget).

    python bench/compaction.py [--turns 20000] [--runs 9]

Runs alternate; medians and ratios to the first baseline are printed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from merge import open_project  # bench/ is the script's directory: the same project set-up

from cairn.repo import Repo


def fill(repo: Repo, turns: int) -> None:
    repo.append({"content_type": "instruction", "text": "You are a careful research assistant."})
    for i in range(turns):
        role = "user" if i % 2 == 0 else "assistant"
        commit = repo.append({"content_type": "dialogue", "role": role, "text": f"turn {i}: about the tool output"})
        if i == 10:
            repo.pin(commit.hash)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        compacted, plain = open_project(root, "compacted"), open_project(root, "plain")
        fill(compacted, args.turns)
        fill(plain, args.turns)
        start = time.perf_counter()
        result = compacted.compact(keep_last=20)
        took = time.perf_counter() - start
        print(f"compact: {result.replaced} items into {len(result.runs)} summaries in {took:.2f} s")
        cases = {
            "baseline: not compacted, budget 2000": lambda: plain.materialize(budget=2000),
            "compacted, budget 2000": lambda: compacted.materialize(budget=2000),
            "compacted, compaction=False, budget 2000": lambda: compacted.materialize(budget=2000, compaction=False),
        }
        timings: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, case in cases.items():
                t0 = time.perf_counter()
                case()
                timings[name].append(time.perf_counter() - t0)
        base = statistics.median(timings["baseline: not compacted, budget 2000"])
        for name, values in timings.items():
            median = statistics.median(values)
            print(f"{name:<44} {median * 1000:8.2f} ms  ratio {median / base:5.2f}")


if __name__ == "__main__":
    main()
