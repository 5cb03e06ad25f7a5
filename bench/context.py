"""The context engine's speed targets, each printed beside a baseline from the same run.

1. Single commits through ``Repo`` (cairn-sqlite, WAL) vs raw sqlite3 with the
   same pragmas on the store's own schema, at synchronous=NORMAL and at FULL:
   one transaction per commit writing every row a commit writes (blob,
   commit, branch ref, token count): the targets are >= 0.8x the raw rate at
   NORMAL and >= 0.95x at FULL (where fsync dominates); and one transaction
   per insert of a lone commit row, for comparison.
2. Bulk import (one transaction) vs raw sqlite3 ``executemany`` of the same
   blob and commit rows into the same schema: target >= 0.6x.
3. Materialize a 10,000-commit branch at budget 8,000: target <= 15 ms; the
   same at 100,000 commits: target <= 1.5x the 10,000 time.
4. The CLI, ``cairn materialize --budget 8000 --json`` as a whole process, at
   1k / 10k / 100k commits, interleaved with ``python -c pass``: target 100k
   <= 1.3x the 1k time and <= 4x ``python -c pass``; its peak RSS at 100k
   (target <= 64 MiB).

    python bench/context.py [--commits 1000] [--quick] [--cli-only]

Medians throughout; the figures vary with the disk and the machine's load.
"""

from __future__ import annotations

import argparse
import io
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cairn.config import load_config
from cairn.plugins import load_plugins
from cairn.repo import Repo, open_repo
from cairn.testing.memory import MemoryStore

PLUGINS = load_plugins()
TOKENIZER = PLUGINS.create("tokenizers", "approx")


#: Commit rate targets against raw sqlite3 writing the same rows, by synchronous level.
COMMIT_TARGETS = {"normal": 0.8, "full": 0.95}


def project(root: Path, name: str, synchronous: str = "full") -> Path:
    path = root / name
    path.mkdir()
    (path / "cairn.toml").write_text(
        f'[cairn]\nstorage = "sqlite"\ntokenizer = "approx"\n[storage.sqlite]\nsynchronous = "{synchronous}"\n'
    )
    return path


def open_project(path: Path) -> Repo:
    return open_repo(config=load_config(path, environ={"CAIRN_USER_CONFIG": ""}), plugins=PLUGINS)


def text(i: int) -> str:
    return f"turn {i}: " + "the agent considered the tool output and wrote a short reply " * 2


def raw_connection(path: Path, synchronous: str = "full") -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def clone_schema(source: Path, target: Path, synchronous: str = "full") -> sqlite3.Connection:
    """A new database with the store's exact tables and indexes, empty."""
    conn = raw_connection(target, synchronous)
    with sqlite3.connect(source) as src:
        rows = src.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
            "ORDER BY type != 'table', type = 'index'"
        ).fetchall()
    # A virtual table (full-text search) makes its own shadow tables: create it, never them.
    virtual = [name for name, sql in rows if sql.upper().startswith("CREATE VIRTUAL TABLE")]
    statements = [sql for name, sql in rows if not any(name.startswith(f"{v}_") for v in virtual)]
    for sql in statements:
        conn.execute(sql)
    return conn


def commit_rows(repo: Repo) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """The blob, commit and token-count rows the store holds, in commit order, for raw baselines."""
    conn = sqlite3.connect(repo.store.path)  # type: ignore[attr-defined]
    commits = conn.execute("SELECT * FROM commits ORDER BY depth").fetchall()
    blob_of = dict(conn.execute("SELECT hash, data FROM blobs").fetchall())
    content = [c[0] for c in conn.execute("SELECT content_hash FROM commits ORDER BY depth")]
    count_of = {h: (t, h, c) for t, h, c in conn.execute("SELECT tokenizer, hash, count FROM token_counts")}
    conn.close()
    return [(h, blob_of[h]) for h in content], commits, [count_of[h] for h in content if h in count_of]


def bench_commits(root: Path, n: int, synchronous: str, rounds: int = 10) -> dict[str, float]:
    """Repo.append and the raw writers take turns, ``n / rounds`` commits each per round,
    so load on the machine hits them alike; rates are medians over rounds."""
    # The rows a commit writes, made once (untimed) so the raw writers insert exactly them.
    scratch = open_project(project(root, f"scratch-{synchronous}", synchronous))
    for i in range(n):
        scratch.append({"content_type": "dialogue", "role": "user", "text": text(i)})
    blobs, commits, counts = commit_rows(scratch)
    db_path = Path(scratch.store.path)  # type: ignore[attr-defined]
    scratch.close()

    repo = open_project(project(root, f"commits-{synchronous}", synchronous))
    same = clone_schema(db_path, root / f"raw-same-shape-{synchronous}.db", synchronous)
    blob_sql = f"INSERT INTO blobs VALUES ({', '.join('?' * len(blobs[0]))})"
    commit_sql = f"INSERT INTO commits VALUES ({', '.join('?' * len(commits[0]))})"
    count_sql = "INSERT OR REPLACE INTO token_counts (tokenizer, hash, count) VALUES (?, ?, ?)"
    same.execute("INSERT INTO refs (name, value) VALUES ('refs/heads/main', '')")
    one = clone_schema(db_path, root / f"raw-commit-row-{synchronous}.db", synchronous)
    one.execute("PRAGMA foreign_keys = OFF")  # a lone commit row, its blob not written
    per_round = n // rounds
    rates: dict[str, list[float]] = {"repo": [], "raw": [], "row": []}
    for r in range(rounds):
        part = range(r * per_round, (r + 1) * per_round)
        start = time.perf_counter()
        for i in part:
            repo.append({"content_type": "dialogue", "role": "user", "text": text(i)})
        rates["repo"].append(per_round / (time.perf_counter() - start))
        start = time.perf_counter()
        for i in part:
            same.execute("BEGIN IMMEDIATE")
            same.execute(blob_sql, blobs[i])
            same.execute(commit_sql, commits[i])
            same.execute("UPDATE refs SET value = ? WHERE name = 'refs/heads/main'", (commits[i][1],))
            if i < len(counts):
                same.execute(count_sql, counts[i])
            same.execute("COMMIT")
        rates["raw"].append(per_round / (time.perf_counter() - start))
        start = time.perf_counter()
        for i in part:
            one.execute("BEGIN IMMEDIATE")
            one.execute(commit_sql, commits[i])
            one.execute("COMMIT")
        rates["row"].append(per_round / (time.perf_counter() - start))
    repo.close()
    same.close()
    one.close()
    out = {k: statistics.median(v) for k, v in rates.items()}
    out["ratio_raw"] = statistics.median(a / b for a, b in zip(rates["repo"], rates["raw"], strict=True))
    out["ratio_row"] = statistics.median(a / b for a, b in zip(rates["repo"], rates["row"], strict=True))
    return out


def build_export(n: int) -> str:
    repo = Repo(MemoryStore(), TOKENIZER, PLUGINS.content_types)
    for i in range(n):
        repo.append({"content_type": "dialogue", "role": "assistant" if i % 2 else "user", "text": text(i)})
    out = io.StringIO()
    repo.export(out)
    return out.getvalue()


def bench_import(root: Path, dump: str, n: int, rounds: int = 5) -> dict[str, float]:
    """Import into a fresh store and raw executemany into a fresh copy of its schema, in turns."""
    lines = dump.splitlines()
    rates: dict[str, list[float]] = {"repo": [], "raw": []}
    for r in range(rounds):
        repo = open_project(project(root, f"import-{r}"))
        start = time.perf_counter()
        repo.import_(lines, batch_size=n + 1)  # one transaction
        rates["repo"].append(n / (time.perf_counter() - start))
        blobs, commits, _ = commit_rows(repo)
        db_path = Path(repo.store.path)  # type: ignore[attr-defined]
        repo.close()
        conn = clone_schema(db_path, root / f"raw-import-{r}.db")
        unique_blobs = list(dict.fromkeys(blobs))
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(f"INSERT INTO blobs VALUES ({', '.join('?' * len(blobs[0]))})", unique_blobs)
        conn.executemany(f"INSERT INTO commits VALUES ({', '.join('?' * len(commits[0]))})", commits)
        conn.execute("COMMIT")
        rates["raw"].append(n / (time.perf_counter() - start))
        conn.close()
    out = {k: statistics.median(v) for k, v in rates.items()}
    out["ratio"] = statistics.median(a / b for a, b in zip(rates["repo"], rates["raw"], strict=True))
    return out


def bench_materialize(root: Path, dump: str, name: str, budget: int, runs: int) -> dict[str, float]:
    repo = open_project(project(root, name))
    repo.import_(dump.splitlines(), batch_size=10**9)
    repo.materialize(budget=budget)  # counts tokens into the cache once, as any first use would
    timings = []
    for _ in range(runs):
        fresh = open_project(Path(repo.store.path).parent.parent)  # type: ignore[attr-defined]
        start = time.perf_counter()
        result = fresh.materialize(budget=budget)
        timings.append(time.perf_counter() - start)
        fresh.close()
    warm = []
    for _ in range(runs):
        start = time.perf_counter()
        result = repo.materialize(budget=budget)
        warm.append(time.perf_counter() - start)
    repo.close()
    return {
        "cold_ms": statistics.median(timings) * 1000,
        "warm_ms": statistics.median(warm) * 1000,
        "items": result.commit_count,
        "tokens": result.token_count,
    }


# Runs ``cairn ARGS`` as ``python -m cairn`` does and reports the process's own peak RSS (VmHWM) at exit.
# The child's rusage is no use here: a child forked from this process (which holds the histories
# built above) starts out with this process's pages, so ru_maxrss says what the bench used.
_PEAK_PROBE = """\
import atexit, sys

def _peak():
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    sys.stderr.write("bench-peak-kib %s\\n" % line.split()[1])
    except OSError:
        pass

atexit.register(_peak)
sys.argv = ["cairn", *sys.argv[1:]]
from cairn.cli import main
main()
"""


def _child(argv: list[str], cwd: Path) -> tuple[float, int]:
    """Wall time and peak RSS (bytes; 0 where /proc is missing) of one child process."""
    import os
    import subprocess

    env = {**os.environ, "CAIRN_USER_CONFIG": ""}
    start = time.perf_counter()
    child = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {child.returncode}:\n{child.stderr}")
    peaks = [int(line.split()[1]) for line in child.stderr.splitlines() if line.startswith("bench-peak-kib ")]
    return elapsed, (peaks[-1] * 1024 if peaks else 0)


def bench_cli(root: Path, sizes: tuple[int, ...], rounds: int = 7) -> dict[str, dict[str, float]]:
    """``cairn materialize --json`` as a whole process per history size, beside ``python -c pass``, interleaved."""
    paths = {}
    for n in sizes:
        repo = open_project(project(root, f"cli-{n}"))
        repo.import_(build_export(n).splitlines(), batch_size=10**9)
        repo.materialize(budget=8000)  # token counts cached, as after any first use
        paths[n] = Path(repo.store.path).parent.parent  # type: ignore[attr-defined]
        repo.close()
    times: dict[str, list[float]] = {"pass": [], **{str(n): [] for n in sizes}}
    rss: dict[str, list[int]] = {str(n): [] for n in sizes}
    for _ in range(rounds):
        times["pass"].append(_child([sys.executable, "-c", "pass"], root)[0])
        for n in sizes:
            elapsed, peak = _child(
                [sys.executable, "-c", _PEAK_PROBE, "materialize", "--budget", "8000", "--json"], paths[n]
            )
            times[str(n)].append(elapsed)
            rss[str(n)].append(peak)
    return {
        "ms": {k: statistics.median(v) * 1000 for k, v in times.items()},
        "rss_mib": {k: max(v) / 2**20 for k, v in rss.items()},
    }


def report_cli(root: Path, sizes: tuple[int, ...]) -> dict[str, dict[str, float]]:
    cli = bench_cli(root, sizes)
    ms, rss = cli["ms"], cli["rss_mib"]
    print("\n4. `cairn materialize --budget 8000 --json`, whole process (median of 7, interleaved):")
    print(f"   python -c pass        {ms['pass']:7.1f} ms")
    for n in sizes:
        print(f"   {n:>7,} commits       {ms[str(n)]:7.1f} ms, peak RSS {rss[str(n)]:5.1f} MiB")
    small, large = str(sizes[0]), str(sizes[-1])
    print(
        f"   {int(large):,}/{int(small):,}: {ms[large] / ms[small]:.2f}x (target <= 1.3x); "
        f"vs python -c pass: {ms[large] / ms['pass']:.2f}x (target <= 4x); peak RSS {rss[large]:.1f} MiB (target <= 64)"
    )
    return cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=1000, help="single commits to time")
    parser.add_argument("--quick", action="store_true", help="smaller histories (1k / 10k) for a fast check")
    parser.add_argument(
        "--synchronous",
        action="append",
        choices=sorted(COMMIT_TARGETS),
        help="synchronous levels for the commit figures (repeatable; default: normal and full)",
    )
    parser.add_argument("--commits-only", action="store_true", help="print the commit figures and stop")
    parser.add_argument("--cli-only", action="store_true", help="only the whole-process CLI figures (4)")
    args = parser.parse_args()
    args.synchronous = args.synchronous or ["normal", "full"]
    small, large = (1_000, 10_000) if args.quick else (10_000, 100_000)
    sizes = (1_000, 10_000) if args.quick else (1_000, 10_000, 100_000)
    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp:
        root = Path(tmp)
        print(f"cairn context benchmarks (python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version})")
        if args.cli_only:
            print(json.dumps({"cli": report_cli(root, sizes)}))
            return

        c = {}
        for level in args.synchronous:
            c[level] = bench_commits(root, args.commits, level)
            target = COMMIT_TARGETS[level]
            print(
                f"\n1. single commits at synchronous={level.upper()} "
                f"({args.commits}, in 10 interleaved rounds; median rates):"
            )
            print(f"   Repo.append                                   {c[level]['repo']:8.0f} commits/s")
            print(f"   raw sqlite3, the same rows (blob, commit, ref, count) {c[level]['raw']:8.0f} commits/s")
            print(f"   raw sqlite3, one commit row into commits       {c[level]['row']:8.0f} rows/s")
            verdict = "ok" if c[level]["ratio_raw"] >= target else "UNDER TARGET"
            print(
                f"   ratio vs the same rows: {c[level]['ratio_raw']:.2f}x (target >= {target}x: {verdict}); "
                f"vs one commit row per transaction: {c[level]['ratio_row']:.2f}x"
            )
        if args.commits_only:
            return

        dump_small = build_export(small)
        i = bench_import(root, dump_small, small)
        print(f"\n2. bulk import of {small} commits in one transaction:")
        print(f"   Repo.import_ (verifies every hash) {i['repo']:8.0f} commits/s")
        print(f"   raw sqlite3 executemany            {i['raw']:8.0f} commits/s")
        print(f"   ratio (median of 5 rounds): {i['ratio']:.2f}x (target >= 0.6x)")

        m_small = bench_materialize(root, dump_small, "mat-small", 8000, 15)
        dump_large = build_export(large)
        m_large = bench_materialize(root, dump_large, "mat-large", 8000, 15)
        print("\n3. materialize at budget 8,000 (median of 15; cold = fresh Repo, warm = same Repo):")
        for label, m in ((f"{small:>7,} commits", m_small), (f"{large:>7,} commits", m_large)):
            print(
                f"   {label}: cold {m['cold_ms']:6.2f} ms, warm {m['warm_ms']:6.2f} ms "
                f"({m['items']} items, {m['tokens']} tokens)"
            )
        print(
            f"   target: <= 15 ms at 10,000; ratio {large:,}/{small:,} cold "
            f"{m_large['cold_ms'] / m_small['cold_ms']:.2f}x, warm {m_large['warm_ms'] / m_small['warm_ms']:.2f}x "
            "(target <= 1.5x)"
        )
        cli = report_cli(root, sizes)
        print(
            json.dumps(
                {"commits": c, "import": i, "materialize_small": m_small, "materialize_large": m_large, "cli": cli}
            )
        )


if __name__ == "__main__":
    main()
