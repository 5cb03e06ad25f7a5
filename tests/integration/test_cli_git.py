"""The git store through the command line: record, list, chat, and share between two clones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ann",
    "GIT_AUTHOR_EMAIL": "ann@example.org",
    "GIT_COMMITTER_NAME": "Ann",
    "GIT_COMMITTER_EMAIL": "ann@example.org",
}


def git(cwd: Path, *args: str) -> str:
    import os

    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **GIT_ENV})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def git_project(cairn):
    git(cairn.project, "init", "-q", "-b", "work")
    (cairn.project / "cairn.toml").write_text('[cairn]\nstorage = "git"\n')
    return cairn


def test_runs_land_on_the_ledger_branch_without_touching_the_worktree(git_project):
    cairn = git_project
    status_before = git(cairn.project, "status", "--porcelain")
    cairn.run("run", "--", sys.executable, "-c", "print('hi')")
    cairn("commit", "a context item on git")
    cairn("chat", "send", "--run", "@last", "noted")
    (run,) = cairn.json("runs", "list")
    assert run["status"] == "ok"
    assert [m["text"] for m in cairn.json("chat", "list", "--run", "@last")] == ["noted"]
    assert git(cairn.project, "for-each-ref", "--format=%(refname)", "refs/cairn/runs").split() == [
        f"refs/cairn/runs/{run['run_id']}"
    ]
    files = git(cairn.project, "ls-tree", "-r", "--name-only", "cairn-ledger").split()
    assert any(f.endswith(f"{run['run_id']}/run.json") for f in files)
    assert git(cairn.project, "status", "--porcelain") == status_before  # no worktree, index or HEAD change
    status = cairn.json("ledger", "status")
    assert (status["remote"], status["ahead"], status["behind"]) == (None, 0, 0)
    assert "no git remote 'origin'" in status["message"]
    assert "nothing to push" in cairn("ledger", "push").stdout  # no remote: a no-op that says so


def test_two_clones_share_runs_and_context_through_a_bare_remote(tmp_path, git_project):
    first = git_project
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(first.project, "remote", "add", "origin", str(remote))
    first.run("run", "--", sys.executable, "-c", "pass")
    first("commit", "from the first machine")
    first("ledger", "push")

    second_dir = tmp_path / "second"
    second_dir.mkdir()
    second = type(first)(second_dir)
    git(second_dir, "init", "-q", "-b", "work")
    git(second_dir, "remote", "add", "origin", str(remote))
    (second_dir / "cairn.toml").write_text('[cairn]\nstorage = "git"\n')
    second.run("run", "--", sys.executable, "-c", "pass")  # written apart: unrelated ledger histories
    pulled = second("ledger", "pull").stdout
    assert pulled.startswith("pulled from origin: ") and "pushed" not in pulled  # a pull says nothing of pushing
    second("ledger", "push")
    first("ledger", "pull")
    ids_first = {r["run_id"] for r in first.json("runs", "list")}
    ids_second = {r["run_id"] for r in second.json("runs", "list")}
    assert ids_first == ids_second and len(ids_first) == 2
    assert "from the first machine" in second("materialize", "--format", "text").stdout
