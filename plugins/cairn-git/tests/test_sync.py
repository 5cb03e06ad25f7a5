"""Push and pull between clones through a bare remote: nothing is lost, whatever the order."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from cairn_git.store import GitStore
from helpers import events, fsck, git, make_repo, run, two_clones, user_state

from cairn.errors import StorageError
from cairn.model import Annotation, Priority
from cairn.plugins import load_plugins
from cairn.repo import Repo
from cairn.testing.fakes import WordTokenizer
from cairn.testing.storage import at


@pytest.fixture(scope="module")
def content_types():  # type: ignore[no-untyped-def]
    return load_plugins(entry_points=False).content_types


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A bare remote holding one commit, and two clones of it."""
    a, b = two_clones(tmp_path)
    return tmp_path / "remote.git", a, b


def say(repo: Repo, text: str) -> str:
    return repo.append({"content_type": "dialogue", "role": "user", "text": text}).hash


def record_apart(store: GitStore, name: str, content_types) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """100 runs (half one by one, half in batches) and context commits on main and on a branch of its own."""
    for i in range(50):
        store.put_run(run(f"{name}-single-{i:02d}", i), events(f"{name}-single-{i:02d}", 2))
    for start in range(0, 50, 25):
        store.put_runs(
            [(run(f"{name}-batch-{i:02d}", i), events(f"{name}-batch-{i:02d}", 3)) for i in range(start, start + 25)]
        )
    repo = Repo(store, WordTokenizer(), content_types)
    main = [say(repo, f"{name} on main {i}") for i in range(3)]
    repo.create_branch(f"notes-{name}")
    repo.switch(f"notes-{name}")
    notes = [say(repo, f"{name} notes {i}") for i in range(2)]
    repo.switch("main")
    return {"main": main, f"notes-{name}": notes}


def reachable(store: GitStore) -> set[str]:
    found: set[str] = set()
    for value in store.list_refs("refs/heads/").values():
        found.update(c.hash for c in store.ancestors(value))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("first_pusher", ["a", "b"])
def test_clones_apart_then_synced_both_ways_lose_nothing(world, content_types, first_pusher: str) -> None:  # type: ignore[no-untyped-def]
    remote, a_dir, b_dir = world
    before = {d: user_state(d) for d in (a_dir, b_dir)}
    with GitStore(a_dir) as a, GitStore(b_dir) as b:
        made = {"a": record_apart(a, "a", content_types), "b": record_apart(b, "b", content_types)}
        assert a.sync_status().ahead > 0
        first, second = (a, b) if first_pusher == "a" else (b, a)
        # Each created its ledger before the first sync: unrelated histories.
        assert first.push().pushed > 0
        report = second.push()
        assert report.merged >= 2 and "conflict/origin/main" in report.message
        assert first.pull().fetched > 0
        for store in (a, b):  # a second round finds nothing to do
            assert store.push().pushed == 0 and store.pull().merged == 0
            status = store.sync_status()
            assert (status.ahead, status.behind) == (0, 0), status
        all_runs = {f"{n}-{kind}-{i:02d}" for n in "ab" for kind in ("single", "batch") for i in range(50)}
        for store in (a, b):
            runs = store.list_runs()
            assert {r.run_id for r in runs} == all_runs and len(runs) == 200
            for run_id in sorted(all_runs):
                expected = 2 if "single" in run_id else 3
                assert [e.seq for e in store.run_events(run_id)] == list(range(expected)), run_id
            assert store.check() == []
        refs_a = {k: v for k, v in a.list_refs().items() if k != "HEAD"}
        assert refs_a == {k: v for k, v in b.list_refs().items() if k != "HEAD"}
        assert set(refs_a) == {
            "refs/heads/main",
            "refs/heads/notes-a",
            "refs/heads/notes-b",
            "refs/heads/conflict/origin/main",
        }
        made_hashes = {h for lines in made.values() for hashes in lines.values() for h in hashes}
        assert made_hashes <= reachable(a) and made_hashes <= reachable(b), "a context commit was dropped"
        winner = made[first_pusher if first_pusher == "b" else "a"]
        # The second pusher kept its own main; the first pusher's line is on the conflict branch.
        second_name = "b" if first_pusher == "a" else "a"
        assert refs_a["refs/heads/main"] == made[second_name]["main"][-1]
        assert refs_a["refs/heads/conflict/origin/main"] == made[first_pusher]["main"][-1]
        assert winner  # both lines kept, checked above
    for directory in (remote, a_dir, b_dir):
        assert fsck(directory) == ""
    for directory in (a_dir, b_dir):
        after = user_state(directory)
        assert after == before[directory]
        assert git(directory, "for-each-ref", "--format=%(refname)", "refs/cairn/remotes/origin/ledger").strip()
        # The user's view stays clean: the ledger is one branch; no run shows up as a remote branch.
        assert [b.strip() for b in git(directory, "branch", "-a", "--format=%(refname:short)").split()] == [
            "cairn-ledger",
            "main",
            "origin/HEAD",
            "origin/cairn-ledger",
            "origin/main",
        ]


@pytest.mark.slow
def test_shared_history_then_both_change_the_same_run(world, content_types) -> None:  # type: ignore[no-untyped-def]
    _, a_dir, b_dir = world
    with GitStore(a_dir) as a, GitStore(b_dir) as b:
        a.put_run(run("shared", 1, status="open"), events("shared", 1))
        a.put_runs([(run("gone", 2), events("gone", 1)), (run("kept", 3), [])])
        repo = Repo(a, WordTokenizer(), content_types)
        root = say(repo, "root")
        repo.create_branch("old")
        a.push()
        assert b.pull().fetched > 0
        assert b.get_run("shared").status == "open"  # type: ignore[union-attr]
        assert b.list_refs("refs/heads/old")
        # Apart again: a closes the run with events 1-2 and deletes things; b appends event 3.
        a.append_events("shared", events("shared", 2, start=1))
        a.put_run(run("shared", 1, status="failed"), expected_status="open")
        assert a.delete_runs(["gone"]) == 1
        repo.delete_branch("old")
        b.append_events("shared", events("shared", 1, start=3))
        b.put_run(run("b-only", 9), events("b-only", 1))
        # Annotations and token counts on the same commit from both sides: a union, nothing lost.
        content = a.get_commits([root])[root].content_hash
        a.add_annotations([Annotation(root, Priority.PINNED, "a pins it", at(500))])
        b.add_annotations([Annotation(root, Priority.SKIP, "b skips it", at(600))])
        a.put_token_counts("tok-a", {content: 3})  # type: ignore[dict-item]
        b.put_token_counts("tok-b", {content: 4})  # type: ignore[dict-item]
        a.push()
        b.push()
        a.pull()
        for store in (a, b):
            shared = store.get_run("shared")
            assert shared is not None and shared.status == "failed"
            assert [e.seq for e in store.run_events("shared")] == [0, 1, 2, 3]
            assert store.get_run("gone") is None and store.run_events("gone") == []
            assert {r.run_id for r in store.list_runs()} == {"shared", "kept", "b-only"}
            assert "refs/heads/old" not in store.list_refs()
            assert [n.reason for n in store.annotation_history(root)] == ["a pins it", "b skips it"]
            assert store.latest_annotations([root])[root].priority is Priority.SKIP
            assert store.get_token_counts("tok-a", [content]) == {content: 3}  # type: ignore[list-item]
            assert store.get_token_counts("tok-b", [content]) == {content: 4}  # type: ignore[list-item]
            assert store.check() == []


def test_racing_pushers_lose_nothing(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Three clones record and push at once: every push that returned has all its runs on the remote."""
    remote, a_dir, b_dir = world
    git(tmp_path, "clone", "-q", str(remote), "c")
    errors: list[BaseException] = []
    pushed: dict[str, set[str]] = {}

    def work(directory: Path, name: str) -> None:
        try:
            with GitStore(directory) as store:
                for round_ in range(4):
                    store.put_runs(
                        [(run(f"{name}-{round_}-{i}", i), events(f"{name}-{round_}-{i}", 1)) for i in range(5)]
                    )
                    store.push()
                    pushed[name] = {r.run_id for r in store.list_runs() if r.run_id.startswith(name)}
        except BaseException as exc:  # reported below
            errors.append(exc)

    dirs = ((a_dir, "a"), (b_dir, "b"), (tmp_path / "c", "c"))
    threads = [threading.Thread(target=work, args=pair) for pair in dirs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    on_remote = git(remote, "ls-tree", "-r", "--name-only", "cairn-ledger").split()
    assert len({f.split("/")[3] for f in on_remote if f.endswith("/run.json")}) == 60
    assert len(git(remote, "for-each-ref", "refs/cairn/runs/").splitlines()) == 60
    assert sum(len(ids) for ids in pushed.values()) == 60
    for directory, _ in dirs:
        with GitStore(directory) as store:
            store.pull()
            assert len(store.list_runs()) == 60
            assert store.check() == []


def test_tags_mode_syncs_and_closes_runs_across_clones(world) -> None:  # type: ignore[no-untyped-def]
    remote, a_dir, b_dir = world
    with GitStore(a_dir, run_refs="tags") as a, GitStore(b_dir, run_refs="tags") as b:
        a.put_run(run("long", 1, status="open"), events("long", 1))
        a.push()
        b.pull()
        assert b.get_run("long").status == "open"  # type: ignore[union-attr]
        a.put_run(run("long", 1, status="ok"), events("long", 1, start=1), expected_status="open")
        a.push()  # moves an existing tag: the lease allows it, nothing else would
        b.pull()
        assert b.get_run("long").status == "ok" and len(b.run_events("long")) == 2  # type: ignore[union-attr]
    assert git(remote, "tag", "--list").split() == ["cairn/run/long"]
    assert git(b_dir, "tag", "--list").split() == ["cairn/run/long"]


def test_refs_that_are_not_runs_are_left_alone(world) -> None:  # type: ignore[no-untyped-def]
    remote, a_dir, b_dir = world
    with GitStore(a_dir) as a, GitStore(b_dir) as b:
        a.put_run(run("real", 1))
        a.push()
        head = git(remote, "rev-parse", "main").strip()
        git(remote, "update-ref", "refs/cairn/runs/not/a-run", head)  # someone else's ref in our namespace
        b.pull()
        b.put_run(run("more", 2))
        b.push()
        assert [r.run_id for r in b.list_runs()] == ["more", "real"]
    assert git(remote, "rev-parse", "refs/cairn/runs/not/a-run").strip() == head


def test_no_remote_is_a_successful_no_op(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "alone")
    with GitStore(repo) as store:
        store.put_run(run("r", 1))
        for report in (store.push(), store.pull()):
            assert report.remote is None and report.pushed == report.fetched == 0
            assert "no git remote 'origin'" in report.message and "git remote add" in report.message
        status = store.sync_status()
        assert (status.remote, status.ahead, status.behind) == (None, 0, 0)
        assert store.push(remote="elsewhere").remote is None


def test_git_failures_are_storage_errors_with_gits_message(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "lost")
    git(repo, "remote", "add", "origin", str(tmp_path / "nowhere.git"))
    with GitStore(repo) as store:
        store.put_run(run("r", 1))
        with pytest.raises(StorageError) as info:
            store.push()
        assert "nowhere.git" in str(info.value) and info.value.hint and "origin" in info.value.hint


def test_git_messages_never_show_a_password_from_a_remote_url() -> None:
    from cairn_git._git import GitCommandError

    said = "fatal: unable to access 'https://ann:hunter2@example.org/x.git/': Could not resolve host"
    error = GitCommandError(["push", "origin"], 128, said)
    assert "hunter2" not in str(error) and "hunter2" not in error.stderr
    assert "https://ann:***@example.org/x.git/" in str(error)


def test_sync_status_counts_what_each_side_lacks(world) -> None:  # type: ignore[no-untyped-def]
    _, a_dir, b_dir = world
    with GitStore(a_dir) as a, GitStore(b_dir) as b:
        a.put_run(run("one", 1))
        a.put_run(run("two", 2))
        status = a.sync_status()
        assert (status.ahead, status.behind) == (2, 0) and status.details["runs"]["only_here"] == 2
        a.push()
        status = b.sync_status()
        assert (status.ahead, status.behind) == (0, 2) and status.details["runs"]["only_there"] == 2
        b.pull()
        assert (b.sync_status().ahead, b.sync_status().behind) == (0, 0)
