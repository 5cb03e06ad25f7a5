"""Run-attached chat messages are git notes on the run's tag: plain-git readable, concurrent-safe, synced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cairn_git.store import GitStore
from helpers import add_run_messages, fsck, git, make_repo, run, user_state

from cairn.errors import ConflictError
from cairn.model.chat import ChatMessage
from cairn.testing.storage import at, run_workers

NOTES = "refs/notes/cairn-chat"


def note_lines(repo: Path, ref: str) -> list[dict]:
    tag = git(repo, "rev-parse", ref).strip()
    text = git(repo, "notes", "--ref=cairn-chat", "show", tag)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def message(n: int, run_id: str | None = "r-1", thread_id: str | None = None) -> ChatMessage:
    return ChatMessage(id=f"m-{n:03d}", ts=at(n), text=f"message {n} ✓", user="ann", run_id=run_id, thread_id=thread_id)


def test_run_messages_are_a_note_on_the_runs_tag(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    before = user_state(repo)
    with GitStore(repo) as store:
        store.put_run(run("r-1", 1, status="open"))
        store.add_chat_message(message(2))
        store.add_chat_message(message(1, thread_id="t-1"))  # both: a note line and a thread file
        store.add_chat_message(message(3, run_id="r-unknown"))  # no such run here: a ledger file
        tag = git(repo, "rev-parse", "refs/cairn/runs/r-1").strip()
        assert git(repo, "cat-file", "-t", tag).strip() == "tag"  # the tag object, not the shared commit
        text = git(repo, "notes", "--ref=cairn-chat", "show", tag)
        assert [line[:7] for line in text.splitlines()] == ['{"ts":"'] * 2
        assert [r["id"] for r in note_lines(repo, "refs/cairn/runs/r-1")] == ["m-001", "m-002"]
        assert git(repo, "notes", "--ref=cairn-chat", "show", "HEAD", check=False) == ""
        files = git(repo, "ls-tree", "-r", "--name-only", "cairn-ledger").split()
        assert any(f.endswith("/m-001.json") for f in files) and any(f.endswith("/m-003.json") for f in files)
        assert not any(f.endswith("/m-002.json") for f in files)
        assert [m.id for m in store.chat_messages()] == ["m-003", "m-002", "m-001"]
        assert [m.id for m in store.chat_messages(run_id="r-1")] == ["m-002", "m-001"]
        assert [m.id for m in store.chat_messages(thread_id="t-1")] == ["m-001"]
        assert store.chat_messages(run_id="r-1")[0] == message(2)
        with pytest.raises(ConflictError):
            store.add_chat_message(message(2))
        # Closing the run gives it a new tag: its messages follow.
        store.put_run(run("r-1", 1, status="ok"), expected_status="open")
        store.add_chat_message(message(4))
        assert git(repo, "rev-parse", "refs/cairn/runs/r-1").strip() != tag
        assert [r["id"] for r in note_lines(repo, "refs/cairn/runs/r-1")] == ["m-001", "m-002", "m-004"]
        assert [m.id for m in store.chat_messages(run_id="r-1")] == ["m-004", "m-002", "m-001"]
        assert store.check() == []
    assert fsck(repo) == ""
    assert user_state(repo) == before


@pytest.mark.slow
def test_four_processes_appending_to_one_runs_note_lose_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "busy")
    with GitStore(repo) as store:
        store.put_run(run("r-busy", 1, status="open"))
    workers, per_worker = 4, 25
    # cairn.testing's runner: spawned workers, a barrier, reports collected, failures surfaced.
    outcomes = run_workers(add_run_messages, lambda w, b, r: (str(repo), w, per_worker, "r-busy", b, r), workers)
    acked = {m for _, ids, _ in outcomes for m in ids}
    assert len(acked) == workers * per_worker
    ids = [r["id"] for r in note_lines(repo, "refs/cairn/runs/r-busy")]
    assert len(ids) == len(set(ids)) and set(ids) == acked
    with GitStore(repo) as store:
        assert sorted(m.id for m in store.chat_messages(run_id="r-busy")) == sorted(acked)
    assert fsck(repo) == ""


@pytest.mark.slow
@pytest.mark.parametrize("first_pusher", ["a", "b"])
def test_clones_adding_to_one_run_apart_converge(tmp_path: Path, first_pusher: str) -> None:
    seed = make_repo(tmp_path / "seed")
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(remote))
    dirs = {}
    for name in ("a", "b"):
        git(tmp_path, "clone", "-q", str(remote), name)
        dirs[name] = tmp_path / name
    with GitStore(dirs["a"]) as a, GitStore(dirs["b"]) as b:
        a.put_run(run("r-1", 1, status="open"))
        a.add_chat_message(message(1))
        a.push()
        b.pull()
        assert [m.id for m in b.chat_messages(run_id="r-1")] == ["m-001"]
        # Apart: each adds messages to the same run; a also closes it (a new tag) and adds after that.
        for n in (2, 4, 6):
            a.add_chat_message(message(n))
        a.put_run(run("r-1", 1, status="ok"), expected_status="open")
        a.add_chat_message(message(8, thread_id="t-a"))
        for n in (3, 5, 7):
            b.add_chat_message(message(n))
        b.add_chat_message(message(9, thread_id="t-b"))
        first, second = (a, b) if first_pusher == "a" else (b, a)
        first.push()
        assert second.push().merged >= 1
        first.pull()
        want = [f"m-{n:03d}" for n in range(9, 0, -1)]
        for store, name in ((a, "a"), (b, "b")):
            assert [m.id for m in store.chat_messages(run_id="r-1")] == want, name
            assert [m.id for m in store.chat_messages()] == want, name
            assert store.get_run("r-1").status == "ok"
            lines = note_lines(dirs[name], "refs/cairn/runs/r-1")
            assert [r["id"] for r in lines] == want[::-1], name  # one note, every message once, in ts order
            # no message left in a second note
            every = git(dirs[name], "notes", "--ref=cairn-chat", "list").splitlines()
            assert len(every) == 1, every
        assert (
            git(dirs["a"], "rev-parse", NOTES) == git(dirs["b"], "rev-parse", NOTES) == git(remote, "rev-parse", NOTES)
        )
        assert "merge the chat notes" in git(dirs["a"], "log", "--merges", "--format=%s", NOTES)
        assert a.push().pushed == 0 and b.pull().merged == 0
    for name in ("a", "b"):
        assert fsck(dirs[name]) == ""
