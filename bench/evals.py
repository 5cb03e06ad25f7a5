"""How fast an evaluation run scores and records, with the ledger write beside the scoring, and baselines.

1. A 10,000-sample dataset (half short text answers, half JSON answers,
   generated from a fixed seed) is scored by every deterministic evaluator
   of cairn-evals through ``cairn.evaluate.run_evaluation``: samples per
   second and single scores per second. Baseline in the same run: the same
   measures called directly on the same pairs in a tight loop (no kernel, no
   Score objects), so the difference is what the contract costs.
2. The run is recorded with ``record_evaluation`` on a SQLite store in a
   temporary directory: the whole record (events, manifest, one store write)
   and, inside it, the store write alone, each beside the scoring time and as
   a share of the run. Baseline: the same event rows inserted into a bare
   sqlite3 table in one transaction.
3. Comparing two such runs (paired by id, one evaluator) with the paired
   bootstrap, at ``--resamples`` resamples.

Needs cairn-sqlite and cairn-evals installed. Usage::

    python bench/evals.py [--samples 10000] [--resamples 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CITIES = [
    "Paris",
    "Canberra",
    "Ottawa",
    "Brasília",
    "Reykjavík",
    "New Delhi",
    "Washington, D.C.",
    "Wellington",
    "Tōkyō",
    "Cape Town",
    "Nay Pyi Taw",
    "Ankara",
]
WORDS = ["the", "capital", "is", "answer", "city", "of", "country", "I", "think", "probably", "its", "name"]

SCHEMA = {
    "type": "object",
    "required": ["city", "population"],
    "properties": {"city": {"type": "string"}, "population": {"type": "integer", "minimum": 0}},
}

SPECS = [
    "exact",
    "exact:ignore_case=true,strip_punctuation=true,collapse_whitespace=true,nfkc=true",
    "includes",
    r"regex:pattern=\b[A-Z][a-z]+\b",
    "numeric:rel_tol=0.01",
    "token_f1",
    "edit_distance",
    "rouge_l",
    "json_valid",
    "json_schema",
    "json_diff",
    "latency:max_ms=800",
    "cost:max_cost=0.00003",
]


def make_dataset(path: Path, count: int, seed: int = 7, drift: float = 0.0) -> None:
    """Half text answers, half JSON answers; ``drift`` makes a second system a little worse or better."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            city = rng.choice(CITIES)
            population = rng.randrange(10_000, 40_000_000)
            right = rng.random() < 0.7 + drift
            meta = {"latency_ms": rng.randrange(120, 1500), "cost": round(rng.uniform(1e-5, 5e-5), 8)}
            if i % 2 == 0:
                said = city if right else rng.choice(CITIES)
                filler = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(0, 12)))
                row = {
                    "id": f"t{i}",
                    "input": f"What is the capital? ({i})",
                    "expected": city,
                    "output": f"{filler} {said}. Population {population:,}".strip(),
                    "metadata": meta,
                }
            else:
                got = {
                    "city": city if right else rng.choice(CITIES),
                    "population": population if rng.random() < 0.8 else population + rng.randrange(1, 999),
                }
                row = {
                    "id": f"j{i}",
                    "input": f"Describe the capital as JSON ({i})",
                    "expected": {"city": city, "population": population},
                    "output": json.dumps(got, ensure_ascii=False),
                    "metadata": meta,
                }
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def baseline_scoring(evaluators: list[Any], samples: list[Any]) -> float:
    """The same evaluators' ``score`` called directly on every sample: seconds, without the kernel's runner
    (input checks, batching, exception capture, aggregates)."""
    from cairn.evaluate import ScoringContext

    context = ScoringContext()
    started = time.perf_counter()
    for configured in evaluators:
        score = configured.evaluator.score
        for sample in samples:
            score(sample, context)
    return time.perf_counter() - started


def bench(samples: int, resamples: int) -> dict[str, Any]:
    from cairn.config import load_config
    from cairn.evaluate import (
        build_evaluators,
        compare_runs,
        load_dataset,
        load_eval_run,
        record_evaluation,
        run_evaluation,
    )
    from cairn.ledger import Ledger
    from cairn.plugins import load_plugins

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "cairn.toml").write_text(
            '[cairn]\nstorage = "sqlite"\n\n[evaluators.json_schema]\nschema = '
            + json.dumps(SCHEMA).replace('": ', '" = ')
            + "\n",
            encoding="utf-8",
        )
        config = load_config(project, environ={"CAIRN_USER_CONFIG": ""})
        plugins = load_plugins()
        store = plugins.create("storage", "sqlite", config)
        writes: list[float] = []
        put_run = store.put_run

        def timed_put_run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return put_run(*args, **kwargs)
            finally:
                writes.append(time.perf_counter() - started)

        store.put_run = timed_put_run  # type: ignore[method-assign]
        ledger = Ledger(store, project_dir=project)

        make_dataset(project / "a.jsonl", samples)
        make_dataset(project / "b.jsonl", samples, drift=0.05)
        started = time.perf_counter()
        data = load_dataset(project / "a.jsonl")
        load_s = time.perf_counter() - started
        evaluators = build_evaluators(SPECS, plugins, config)

        evaluation = run_evaluation(data, evaluators)
        scoring_s = evaluation.scoring_s
        started = time.perf_counter()
        record_evaluation(ledger, evaluation, name="a", plugins=plugins, config=config)
        record_s = time.perf_counter() - started
        store_s = writes[-1]
        base_s = baseline_scoring(evaluators, list(data.samples))

        # Baseline of the write: the same event rows into a bare sqlite3 table, one transaction.
        rows = [
            (i, json.dumps(r.to_event(), ensure_ascii=False, sort_keys=True, separators=(",", ":")))
            for i, r in enumerate(evaluation.results)
        ]
        raw = sqlite3.connect(project / "raw.db")
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, fields TEXT NOT NULL)")
        started = time.perf_counter()
        with raw:
            raw.executemany("INSERT INTO events VALUES (?, ?)", rows)
        raw_s = time.perf_counter() - started
        raw.close()

        second = run_evaluation(load_dataset(project / "b.jsonl"), evaluators)
        record_evaluation(ledger, second, name="b", plugins=plugins, config=config)
        base_run, new_run = load_eval_run(ledger, "a"), load_eval_run(ledger, "b")
        started = time.perf_counter()
        comparison = compare_runs(base_run, new_run, resamples=resamples)
        compare_s = time.perf_counter() - started
        store.close()

    scores = samples * len(SPECS)
    return {
        "samples": samples,
        "evaluators": len(SPECS),
        "load_s": load_s,
        "scoring_s": scoring_s,
        "samples_per_s": samples / scoring_s,
        "scores_per_s": scores / scoring_s,
        "baseline_direct_s": base_s,
        "baseline_samples_per_s": samples / base_s,
        "record_s": record_s,
        "store_write_s": store_s,
        "raw_sqlite_insert_s": raw_s,
        "ledger_share": record_s / (scoring_s + record_s),
        "compare_s": compare_s,
        "compare_evaluators": len(comparison.evaluators),
        "compare_resamples": resamples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000, help="samples in the dataset")
    parser.add_argument("--resamples", type=int, default=1_000, help="paired bootstrap resamples for the compare")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    r = bench(args.samples, args.resamples)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(
        f"evaluation runs, Python {platform.python_version()}, SQLite store in a temp dir, "
        f"{r['samples']:,} samples x {r['evaluators']} deterministic evaluators"
    )
    print(f"  load and check the dataset    {r['load_s']:8.3f} s")
    print(
        f"  scoring (run_evaluation)      {r['scoring_s']:8.3f} s  {r['samples_per_s']:10,.0f} samples/s "
        f"({r['scores_per_s']:,.0f} scores/s)"
    )
    print(
        f"  baseline: score() directly    {r['baseline_direct_s']:8.3f} s  {r['baseline_samples_per_s']:10,.0f} "
        f"samples/s (the same evaluators, no runner)"
    )
    print(
        f"  ledger record (one write)     {r['record_s']:8.3f} s  beside {r['scoring_s']:.3f} s of scoring: "
        f"{r['ledger_share'] * 100:.1f}% of the run"
    )
    print(
        f"    of which the store write    {r['store_write_s']:8.3f} s  (one put_run: the run and "
        f"{r['samples']:,} events)"
    )
    print(f"    baseline: raw sqlite3       {r['raw_sqlite_insert_s']:8.3f} s  (the same event rows, one executemany)")
    print(
        f"  compare two runs              {r['compare_s']:8.3f} s  ({r['compare_evaluators']} evaluators, "
        f"{r['compare_resamples']:,} bootstrap resamples each)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
