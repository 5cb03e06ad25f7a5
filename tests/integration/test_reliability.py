"""Crashes and concurrent writers never lose an acknowledged write or corrupt the store."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import cairn

WRITER = textwrap.dedent(
    """
    import sys
    import cairn

    worker, count = sys.argv[1], int(sys.argv[2])
    with cairn.open(sys.argv[3]) as repo:
        for i in range(count):
            commit = repo.append({"content_type": "dialogue", "role": "user", "text": f"w{worker} #{i}"})
            print(commit.hash, flush=True)  # acknowledged: durable before this line
    """
)


def _env() -> dict[str, str]:
    return {**os.environ, "CAIRN_USER_CONFIG": ""}


@pytest.mark.slow
def test_eight_processes_two_hundred_commits_each_lose_nothing(cairn):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(n), "200", str(cairn.project)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for n in range(8)
    ]
    acknowledged: set[str] = set()
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        acknowledged.update(out.split())
    assert len(acknowledged) == 1600
    with cairn_open(cairn.project) as repo:
        on_branch = {c.hash for c in repo.walk(repo.head())}
        assert on_branch == acknowledged
        assert repo.head().depth == 1599
        assert repo.store.check() == []


def cairn_open(project: Path):
    return cairn.open(project)


def _collect(stream, acks: list[int]) -> None:
    """Record each count the importer reports durable, as it reports it."""
    for line in stream:
        if line.startswith("durable "):
            acks.append(int(line.split()[1]))


def _export_of(commits: int, path: Path, tmp: Path) -> list[str]:
    """An export of one branch of ``commits`` items; returns the commit hashes in file order."""
    from cairn.plugins import load_plugins
    from cairn.repo import Repo
    from cairn.testing.fakes import WordTokenizer
    from cairn.testing.memory import MemoryStore

    repo = Repo(MemoryStore(), WordTokenizer(), load_plugins(entry_points=False).content_types)
    for i in range(commits):
        repo.append({"content_type": "dialogue", "role": "user", "text": f"item {i} " + "lorem ipsum " * 20})
    with path.open("w", encoding="utf-8") as handle:
        repo.export(handle)
    return [json.loads(line)["hash"] for line in path.read_text().splitlines() if '"type":"commit"' in line]


@pytest.mark.slow
def test_import_killed_at_random_points_keeps_exactly_the_acknowledged(cairn, tmp_path):
    dump = tmp_path / "dump.jsonl"
    order = _export_of(3000, dump, tmp_path)
    batch = 200
    rng = random.Random(20261122)
    outcomes = []
    for attempt in range(20):
        project = tmp_path / f"p{attempt}"
        project.mkdir()
        subprocess.run(
            [sys.executable, "-m", "cairn", "-C", str(project), "init"], check=True, capture_output=True, env=_env()
        )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cairn",
                "-C",
                str(project),
                "import",
                str(dump),
                "--batch-size",
                str(batch),
                "--progress",
                "lines",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        acks: list[int] = []
        reader = threading.Thread(target=_collect, args=(proc.stderr, acks), daemon=True)
        reader.start()
        if attempt % 4 == 0:
            time.sleep(rng.uniform(0.05, 0.6))  # early: maybe before the first batch lands
        else:
            # Mid-import: after a random number of durable batches, a moment into the next.
            wanted = rng.randrange(1, len(order) // batch - 1)
            deadline = time.monotonic() + 120
            while len(acks) < wanted and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.02))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reader.join(timeout=10)
        acked = max(acks, default=0)
        with cairn_open(project) as repo:
            assert repo.store.check() == [], f"attempt {attempt}: store damaged"
            stored = repo.store.stats().commits
            # Everything acknowledged is there; at most the one batch in flight when the
            # process died may be there too (durable, but killed before it could say so).
            assert acked <= stored <= acked + batch
            assert stored % batch == 0 or stored == len(order)
            present = repo.store.get_commits(order)
            assert set(present) == set(order[:stored])
        outcomes.append((acked, stored))
    # The kills landed at different points, including mid-import.
    assert len({stored for _, stored in outcomes}) >= 3
    assert any(0 < stored < len(order) for _, stored in outcomes)
