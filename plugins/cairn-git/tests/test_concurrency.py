"""Four processes recording runs in one repository at once lose nothing and leave git consistent."""

from __future__ import annotations

from pathlib import Path

import pytest
from cairn_git.store import GitStore
from helpers import fsck, git, make_repo, record_runs, user_state

from cairn.testing.storage import run_workers


@pytest.mark.slow
def test_four_processes_fifty_runs_each(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "busy")
    before = user_state(repo)
    workers, per_worker = 4, 50
    # cairn.testing's runner: spawned workers, a barrier, reports collected, failures surfaced.
    outcomes = run_workers(record_runs, lambda w, b, r: (str(repo), w, per_worker, b, r), workers)
    acked = {run_id for _, ids, _ in outcomes for run_id in ids}
    assert len(acked) == workers * per_worker
    with GitStore(repo) as store:
        runs = store.list_runs()
        assert {r.run_id for r in runs} == acked and len(runs) == 200
        assert all(r.status == "ok" for r in runs)
        for run_id in sorted(acked):
            assert [e.seq for e in store.run_events(run_id)] == [0, 1, 2], run_id
        assert store.check() == []
    files = git(repo, "ls-tree", "-r", "--name-only", "cairn-ledger").split()
    assert len([f for f in files if f.endswith("/run.json")]) == 200
    assert len(git(repo, "for-each-ref", "refs/cairn/runs/").splitlines()) == 200
    assert fsck(repo) == ""
    assert user_state(repo) == before
