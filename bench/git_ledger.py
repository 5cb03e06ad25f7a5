"""Recording and listing runs with cairn-git against the naive way, measured in the same run.

Three ways to record a run (three events each) in a repository with one commit:

- naive: a worktree on the ledger branch; per run, write run.json and
  events.jsonl there, ``git add``, ``git commit``, ``git tag -a`` (what a
  script would do);
- api: ``GitStore.put_run`` once per run;
- batch: ``GitStore.put_runs`` with ``--batch-size`` runs per call (one
  ledger commit per call).

The three take turns in rounds so that disk and CPU noise hits them alike;
the figures are runs per second over all rounds. Then ``Ledger.record`` (the
kernel's path: ids, redaction, ``code_ref`` from HEAD, the store) on a
GitStore in a project inside the repository, beside the raw floor a script
pays per run, ``git hash-object -w`` of the run's JSON and ``git update-ref``
of a ref to it, in turns: the target is >= 4x the raw rate. Then listing: a repository
holding ``--list`` runs, ``GitStore.list_runs()`` in a fresh store (cold:
nothing cached) and in a store that listed before (warm), beside the raw
``git for-each-ref`` that reads the same tags; medians of several calls,
with the refs and objects loose (as written) and after ``git gc``; and
``cairn runs list -n COUNT`` as a whole process in a project on that
repository, in turns with ``git for-each-ref`` (target: at most 2x).

Everything runs with no global or system git config, so the user's hooks,
signing settings and aliases do not change the figures.

    python bench/git_ledger.py [--rounds 5] [--naive 20] [--single 200] [--batch 600] [--batch-size 100] [--list 3000]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cairn.events import EventBus
from cairn.ledger import Ledger
from cairn.model import canonical_json
from cairn.model.ledger import Run, RunEvent, new_run_id, run_time

os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
_EMPTY_CONFIG = tempfile.NamedTemporaryFile(prefix="gitconfig-", delete=False)
os.environ["GIT_CONFIG_GLOBAL"] = _EMPTY_CONFIG.name

from cairn_git.store import GitStore  # noqa: E402  (after the environment is isolated)


def git(cwd: Path, *args: str, input: bytes | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, check=True).stdout.decode()


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Bench")
    git(path, "config", "user.email", "bench@example.invalid")
    (path / "README").write_text("bench\n")
    git(path, "add", "README")
    git(path, "commit", "-q", "-m", "first")
    return path


def make_runs(count: int) -> list[tuple[Run, list[RunEvent]]]:
    out = []
    for _ in range(count):
        run_id = new_run_id("bench")
        run = Run(
            run_id=run_id,
            type="bench",
            status="ok",
            started_at=run_time(),
            ended_at=run_time(),
            duration_ms=12,
            environment={"python": "3.11"},
            summary="a benchmark run",
        )
        out.append((run, [RunEvent(run_id, seq, run_time(), "step", {"seq": seq, "note": "ok"}) for seq in range(3)]))
    return out


class Naive:
    """The ledger branch checked out in a worktree: add, commit and tag -a per run."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.head = git(repo, "rev-parse", "HEAD").strip()
        # git 2.39's `worktree add` cannot start an orphan branch: make its first commit with plumbing.
        empty = git(repo, "mktree", input=b"").strip()
        root = git(repo, "commit-tree", "-m", "ledger", empty).strip()
        git(repo, "update-ref", "refs/heads/naive-ledger", root)
        self.worktree = repo.parent / "naive-worktree"
        git(repo, "worktree", "add", "-q", str(self.worktree), "naive-ledger")

    def record(self, run: Run, events: list[RunEvent]) -> None:
        shard = hashlib.sha256(run.run_id.encode()).hexdigest()[:2]
        directory = self.worktree / "ledger" / "runs" / shard / run.run_id
        directory.mkdir(parents=True)
        message = canonical_json(run.to_record())
        (directory / "run.json").write_bytes(message + b"\n")
        (directory / "events.jsonl").write_bytes(b"".join(canonical_json(e.to_record()) + b"\n" for e in events))
        relative = str(directory.relative_to(self.worktree))
        git(self.worktree, "add", relative)
        git(self.worktree, "commit", "-q", "-m", f"run {run.run_id}")
        git(self.worktree, "tag", "-a", "-m", message.decode(), f"naive/run/{run.run_id}", self.head)


def timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def median_ms(action: Callable[[], object], times: int = 7) -> float:
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def bench_recording(root: Path, rounds: int, naive_n: int, single_n: int, batch_n: int, batch_size: int) -> dict:
    naive = Naive(make_repo(root / "naive"))
    store = GitStore(make_repo(root / "api"))
    batch_store = GitStore(make_repo(root / "batch"))
    spent = {"naive": 0.0, "api": 0.0, "batch": 0.0}
    counts = {"naive": 0, "api": 0, "batch": 0}
    try:
        for _ in range(rounds):
            work = make_runs(naive_n)
            spent["naive"] += timed(lambda work=work: [naive.record(r, e) for r, e in work])
            counts["naive"] += naive_n
            work = make_runs(single_n)
            spent["api"] += timed(lambda work=work: [store.put_run(r, e) for r, e in work])
            counts["api"] += single_n
            work = make_runs(batch_n)
            spent["batch"] += timed(
                lambda work=work: [
                    batch_store.put_runs(work[i : i + batch_size]) for i in range(0, batch_n, batch_size)
                ]
            )
            counts["batch"] += batch_n
        assert len(store.list_runs()) == counts["api"] and len(batch_store.list_runs()) == counts["batch"]
        assert store.check() == [] and batch_store.check() == []
    finally:
        store.close()
        batch_store.close()
    return {k: counts[k] / spent[k] for k in spent}


def bench_ledger_record(root: Path, rounds: int, per_round: int) -> dict[str, float]:
    """Ledger.record on a GitStore against git hash-object + update-ref per run, in turns; rates over all rounds."""
    repo = make_repo(root / "ledger-record")
    raw_repo = make_repo(root / "ledger-raw")
    spent = {"ledger": 0.0, "raw": 0.0}
    ratios = []
    with GitStore(repo) as store:
        ledger = Ledger(store, bus=EventBus(), project_dir=repo)
        for _ in range(rounds):
            work = make_runs(per_round)
            took_ledger = timed(
                lambda: [
                    ledger.record(
                        "bench", summary="a benchmark run", events=[{"type": "step", "seq": s} for s in range(3)]
                    )
                    for _ in range(per_round)
                ]
            )

            def raw(work: list[tuple[Run, list[RunEvent]]] = work) -> None:
                for run, _ in work:
                    oid = git(raw_repo, "hash-object", "-w", "--stdin", input=canonical_json(run.to_record())).strip()
                    git(raw_repo, "update-ref", f"refs/raw/run/{run.run_id}", oid)

            took_raw = timed(raw)
            spent["ledger"] += took_ledger
            spent["raw"] += took_raw
            ratios.append(took_raw / took_ledger)
        assert len(store.list_runs()) == rounds * per_round
        head = git(repo, "rev-parse", "HEAD").strip()
        assert all(run.code_ref == head for run in store.list_runs(limit=5))
    return {
        "ledger": rounds * per_round / spent["ledger"],
        "raw": rounds * per_round / spent["raw"],
        "ratio": statistics.median(ratios),
    }


def file_create_us(root: Path, count: int = 300) -> float:
    """What creating one small file costs on this file system now (loose objects and ref locks are files)."""
    directory = root / "fs-probe"
    directory.mkdir()
    start = time.perf_counter()
    for i in range(count):
        fd = os.open(directory / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        os.write(fd, b"x" * 100)
        os.close(fd)
    return (time.perf_counter() - start) / count * 1e6


def cairn_script() -> list[str]:
    """The installed ``cairn`` script beside this interpreter, else ``python -m cairn``."""
    beside = Path(sys.executable).with_name("cairn")
    return [str(beside)] if beside.is_file() else [sys.executable, "-m", "cairn"]


def cli_listing(repo: Path, raw: list[str], count: int, rounds: int = 7) -> tuple[float, float, float]:
    """``cairn runs list -n COUNT`` as a whole process in a project on the repository, and the raw
    ``git for-each-ref``, in turns: (raw ms, cli ms, median of the per-round ratios)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN")}
    env["CAIRN_USER_CONFIG"] = ""
    command = [*cairn_script(), "runs", "list", "-n", str(count)]
    raws, clis = [], []
    for _ in range(rounds + 1):  # the first round warms the caches and is not counted
        start = time.perf_counter()
        subprocess.run(raw, capture_output=True, check=True)
        raws.append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run(command, cwd=repo, env=env, stdout=subprocess.DEVNULL, check=True)
        clis.append(time.perf_counter() - start)
    raws, clis = raws[1:], clis[1:]
    ratio = statistics.median(c / r for c, r in zip(clis, raws, strict=True))
    return statistics.median(raws) * 1000, statistics.median(clis) * 1000, ratio


def bench_listing(root: Path, count: int) -> list[tuple[str, float, float, float, tuple[float, float, float]]]:
    repo = make_repo(root / "listing")
    (repo / "cairn.toml").write_text('[cairn]\nstorage = "git"\n', encoding="utf-8")
    with GitStore(repo) as store:
        work = make_runs(count)
        for start in range(0, count, 500):
            store.put_runs(work[start : start + 500])
    raw = ["git", "-C", str(repo), "for-each-ref", "--format=%(objectname) %(contents)", "refs/cairn/runs/"]
    rows = []
    for state in ("loose refs and objects", "after git gc"):
        if state == "after git gc":
            git(repo, "gc", "--quiet")
        raw_ms = median_ms(lambda: subprocess.run(raw, capture_output=True, check=True))

        def cold() -> None:
            with GitStore(repo) as fresh:
                assert len(fresh.list_runs()) == count

        opened = GitStore(repo)
        opened.list_runs()
        try:
            cold_ms = median_ms(cold)
            warm_ms = median_ms(opened.list_runs)
        finally:
            opened.close()
        rows.append((state, raw_ms, cold_ms, warm_ms, cli_listing(repo, raw, count)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--naive", type=int, default=20, help="naive runs per round")
    parser.add_argument("--single", type=int, default=200, help="put_run calls per round")
    parser.add_argument("--batch", type=int, default=600, help="runs recorded with put_runs per round")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--record", type=int, default=100, help="Ledger.record calls (and raw runs) per round")
    parser.add_argument("--list", type=int, default=3000, help="runs in the listing repository")
    parser.add_argument("--dir", type=Path, default=None, help="where to make the repositories (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cairn-git-bench-", dir=args.dir) as tmp:
        root = Path(tmp)
        create_before = file_create_us(root)
        rates = bench_recording(root, args.rounds, args.naive, args.single, args.batch, args.batch_size)
        record = bench_ledger_record(root, args.rounds, args.record)
        listing = bench_listing(root, args.list)
    print(
        f"git {git(Path.cwd(), 'version').split()[-1]}, {args.rounds} rounds, 3 events per run; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
        f"creating a file took {create_before:.0f} us"
    )
    print()
    print("recording runs                               runs/s   vs naive")
    print(f"  naive: worktree, add, commit, tag -a    {rates['naive']:8.0f}      1.0x")
    print(
        f"  GitStore.put_run, one per run           {rates['api']:8.0f}   {rates['api'] / rates['naive']:6.1f}x"
        f"   (target >= 500 runs/s and >= 7x)"
    )
    print(
        f"  GitStore.put_runs, {args.batch_size} per call          {rates['batch']:8.0f}   "
        f"{rates['batch'] / rates['naive']:6.1f}x   (target >= 1500 runs/s)"
    )
    print()
    verdict = "ok" if record["ratio"] >= 4 else "UNDER TARGET"
    print("Ledger.record on git                         runs/s")
    print(f"  raw: git hash-object -w + update-ref    {record['raw']:8.0f}")
    print(
        f"  Ledger.record (3 events, code_ref)      {record['ledger']:8.0f}   "
        f"{record['ratio']:6.1f}x raw, median of rounds (target >= 4x: {verdict})"
    )
    print()
    print(f"listing {args.list} runs (median ms)   for-each-ref raw   list_runs cold   list_runs warm")
    for state, raw_ms, cold_ms, warm_ms, _ in listing:
        print(
            f"  {state:<26} {raw_ms:12.1f}      {cold_ms:8.1f} ({cold_ms / raw_ms:.1f}x)"
            f"   {warm_ms:8.1f} ({warm_ms / raw_ms:.1f}x)   (target <= 30 ms)"
        )
    print()
    print(f"`cairn runs list -n {args.list}`, whole process, beside for-each-ref in turns (median ms)")
    for state, *_, (raw_ms, cli_ms, ratio) in listing:
        verdict = "ok" if ratio <= 2 else "OVER TARGET"
        print(f"  {state:<26} raw {raw_ms:8.1f}   cli {cli_ms:8.1f}   {ratio:5.1f}x (target <= 2x: {verdict})")


if __name__ == "__main__":
    main()
