"""``CodeRef`` reads HEAD from git's files and always agrees with ``git rev-parse HEAD``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.code_ref import CodeRef, rev_parse_head

_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@x",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@x",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "PATH": "/usr/bin:/bin",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=_ENV)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "code"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


def test_outside_git_and_before_the_first_commit(tmp_path: Path, repo: Path) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    # tmp_path may itself sit inside some repository: compare with git rather than assume.
    assert CodeRef(outside)() == rev_parse_head(outside)
    reader = CodeRef(repo)
    assert reader() is None  # an unborn branch
    git(repo, "commit", "-q", "--allow-empty", "-m", "first")
    assert reader() == git(repo, "rev-parse", "HEAD")  # seen by the same reader at once


def test_follows_commits_switches_detaching_and_packing(repo: Path) -> None:
    (repo / "sub").mkdir()
    reader = CodeRef(repo / "sub")  # from a subdirectory, as a project inside a repository
    git(repo, "commit", "-q", "--allow-empty", "-m", "one")
    first = git(repo, "rev-parse", "HEAD")
    assert reader() == first
    git(repo, "switch", "-q", "-c", "other")
    git(repo, "commit", "-q", "--allow-empty", "-m", "two")
    assert reader() == git(repo, "rev-parse", "HEAD") != first
    git(repo, "pack-refs", "--all")  # the branch now lives in packed-refs only
    assert not (repo / ".git" / "refs" / "heads" / "other").exists()
    assert reader() == git(repo, "rev-parse", "HEAD")
    git(repo, "commit", "-q", "--allow-empty", "-m", "three")  # a loose ref again, newer than the packed one
    assert reader() == git(repo, "rev-parse", "HEAD")
    git(repo, "switch", "-q", "--detach", first)
    assert reader() == first


def test_a_linked_worktree_reads_its_own_head(repo: Path, tmp_path: Path) -> None:
    git(repo, "commit", "-q", "--allow-empty", "-m", "one")
    git(repo, "branch", "side")
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", str(linked), "side")
    git(linked, "commit", "-q", "--allow-empty", "-m", "on side")
    assert CodeRef(linked)() == git(linked, "rev-parse", "HEAD") != git(repo, "rev-parse", "HEAD")
    assert CodeRef(repo)() == git(repo, "rev-parse", "HEAD")


def test_variables_that_move_the_repository_are_left_to_git(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git(repo, "commit", "-q", "--allow-empty", "-m", "one")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("GIT_DIR", str(repo / ".git"))
    assert CodeRef(elsewhere)() == git(repo, "rev-parse", "HEAD")


def test_files_in_an_unexpected_shape_fall_back_to_git(repo: Path) -> None:
    git(repo, "commit", "-q", "--allow-empty", "-m", "one")
    head = git(repo, "rev-parse", "HEAD")
    (repo / ".git" / "refs" / "heads" / "main").write_text("not an object id\n")
    # git itself finds the ref broken: both say there is no commit.
    assert CodeRef(repo)() == rev_parse_head(repo) is None
    (repo / ".git" / "refs" / "heads" / "main").write_text(head + "\n")
    assert CodeRef(repo)() == head


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.sampled_from(["commit", "branch", "switch", "detach", "pack"]), min_size=1, max_size=6))
def test_always_agrees_with_rev_parse(tmp_path_factory: pytest.TempPathFactory, steps: list[str]) -> None:
    repo = tmp_path_factory.mktemp("prop")
    git(repo, "init", "-q", "-b", "main")
    reader = CodeRef(repo)
    branches = ["main"]
    for number, step in enumerate(steps):
        has_commit = rev_parse_head(repo) is not None
        if step == "commit" or not has_commit:
            git(repo, "commit", "-q", "--allow-empty", "-m", f"c{number}")
        elif step == "branch":
            branches.append(f"b{number}")
            git(repo, "switch", "-q", "-c", branches[-1])
        elif step == "switch":
            git(repo, "switch", "-q", branches[number % len(branches)])
        elif step == "detach":
            git(repo, "switch", "-q", "--detach", "HEAD")
        else:
            git(repo, "pack-refs", "--all")
        assert reader() == rev_parse_head(repo)
