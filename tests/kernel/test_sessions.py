"""Sessions and checkpoints over the in-memory store: records, totals, restore, names (no provider needed)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.checkpoints import Checkpoints
from cairn.errors import NotFoundError, ValidationError
from cairn.model.session import validate_checkpoint_name, validate_session_id
from cairn.repo import Repo
from cairn.sessions import CHECKPOINT_PREFIX, SESSION_PREFIX, Sessions, summary
from cairn.storage import check_store, ref_problem
from cairn.testing.fakes import WordTokenizer
from cairn.testing.memory import MemoryStore


def say(repo: Repo, role: str, text: str, **meta) -> str:  # type: ignore[no-untyped-def]
    return repo.append({"content_type": "dialogue", "role": role, "text": text}, metadata=meta).hash


def test_a_new_session_is_a_record_and_a_branch_made_together(repo: Repo) -> None:
    base = say(repo, "user", "instructions first")
    session = Sessions(repo).new("Plans", tools=["b", "a", "b"])
    assert repo.refs.get_ref(f"refs/heads/{session.branch}") == base
    assert repo.refs.get_ref(SESSION_PREFIX + session.id) == session.version.hash
    assert (session.record.start, session.record.tools, session.record.status) == (base, ["a", "b"], "open")
    assert repo.branch == "main"  # new() leaves HEAD alone unless asked to switch
    assert check_store(repo.store) == []


def test_an_empty_repository_gets_an_empty_session_branch_and_switch_names_it(repo: Repo) -> None:
    session = Sessions(repo).new(switch=True)
    assert session.record.start is None and repo.branch == session.branch and repo.head() is None
    say(repo, "user", "first words")
    assert Sessions(repo).current() is not None
    assert Sessions(repo).current().id == session.id  # type: ignore[union-attr]


def test_totals_are_the_newest_replys_and_concurrent_writers_keep_them_exact(content_types) -> None:  # type: ignore[no-untyped-def]
    store = MemoryStore()
    repo = Repo(store, WordTokenizer(), content_types)
    session = Sessions(repo).new("busy")
    usage = {"input_tokens": 3, "output_tokens": 2}

    def writer() -> None:
        mine = Repo(store, WordTokenizer(), content_types)
        view = mine.on_branch(session.branch)
        handle = Sessions(mine).get(session.id)
        for _ in range(25):
            meta = {"usage": usage, "cost": 0.5, "run_id": "r"}
            view.append(
                {"content_type": "dialogue", "role": "assistant", "text": "x"},
                metadata=meta,
                derive_metadata=lambda head, meta=meta: handle.totals_after(head, meta),
            )

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    totals = Sessions(repo).get(session.id).totals()
    assert (totals.turns, totals.input_tokens, totals.output_tokens, totals.runs) == (100, 300, 200, 100)
    assert totals.cost == pytest.approx(50.0) and totals.unpriced == 0


def test_totals_stop_where_the_session_started(repo: Repo) -> None:
    first = Sessions(repo).new("first", switch=True)
    view = first.view
    meta = {"usage": {"input_tokens": 1, "output_tokens": 1}, "cost": None}
    view.append(
        {"content_type": "dialogue", "role": "assistant", "text": "hi"},
        metadata=meta,
        derive_metadata=lambda head: first.totals_after(head, meta),
    )
    second = Sessions(repo).new("forked", start=first.branch)
    assert first.totals().turns == 1 and first.totals().unpriced == 1
    assert second.totals().turns == 0  # the first session's replies are not the fork's


def test_close_resume_and_delete(repo: Repo) -> None:
    say(repo, "user", "x")
    sessions = Sessions(repo)
    session = sessions.new("s")
    with pytest.raises(ValidationError, match="is open"):
        sessions.delete(session.id)
    closed = sessions.close(session.id)
    assert closed.record.status == "closed" and closed.version.parent == session.version.hash
    with pytest.raises(ValidationError, match="closed"):
        closed.check_open()
    resumed = sessions.resume(session.id)
    assert resumed.is_open and repo.branch == session.branch
    with pytest.raises(ValidationError, match="current session"):
        sessions.delete(session.id, force=True)
    repo.switch("main")
    sessions.delete(session.id, force=True)
    assert sessions.list() == [] and repo.refs.get_ref(f"refs/heads/{session.branch}") is None
    with pytest.raises(NotFoundError):
        sessions.get(session.id)
    assert check_store(repo.store) == []


def test_a_stale_record_version_is_updated_on_the_newest(repo: Repo) -> None:
    sessions = Sessions(repo)
    stale = sessions.new("old title")
    sessions.rename(stale.id, "new title")
    closed = sessions._update(stale, "session close", status="closed")  # read before the rename
    assert (closed.record.title, closed.record.status) == ("new title", "closed")


def test_checkpoint_create_restore_and_auto_save(repo: Repo) -> None:
    one = say(repo, "user", "one")
    points = Checkpoints(repo)
    made = points.create("one", "the first")
    assert made.target.hash == one and made.record.tokens == repo.commit(one).cumulative_tokens
    assert made.version.parent == one  # the record sits on the commit, so gc keeps it
    with pytest.raises(ValidationError, match="already exists"):
        points.create("one")
    two = say(repo, "user", "two")
    done = points.restore("one")
    assert repo.head().hash == one  # type: ignore[union-attr]
    assert done.saved is not None and done.saved.target.hash == two and done.saved.record.auto
    assert {c.name for c in points.list()} == {"one", done.saved.name}
    other = points.restore(done.saved.name, as_branch="again")
    assert repo.branches()["again"] == two and other.saved is None
    points.delete("one")
    with pytest.raises(NotFoundError):
        points.get("one")
    assert check_store(repo.store) == []


def test_restore_loses_the_race_cleanly(repo: Repo) -> None:
    say(repo, "user", "one")
    points = Checkpoints(repo)
    points.create("p")
    tip = say(repo, "user", "two")
    checkpoint = points.get("p")
    mover = Repo(repo.store, repo.tokenizer, repo.content_types)
    original = points._auto_name

    def race(commit):  # type: ignore[no-untyped-def]
        say(mover, "user", "meanwhile")  # another writer moves the branch before the swap
        return original(commit)

    points._auto_name = race  # type: ignore[method-assign]
    from cairn.errors import ConflictError

    with pytest.raises(ConflictError, match="run the restore again"):
        points.restore(checkpoint.name)
    assert repo.head().parent == tip  # type: ignore[union-attr]  # the writer's commit stands
    assert [c.name for c in points.list()] == ["p"]  # and no automatic checkpoint was left behind


def test_summary_shape(repo: Repo) -> None:
    assert summary(repo) == {"count": 0, "open": 0, "last_active": None, "checkpoints": 0}
    say(repo, "user", "x")
    session = Sessions(repo).new("s")
    Checkpoints(repo).create("c")
    Sessions(repo).close(session.id)
    found = summary(repo)
    assert (found["count"], found["open"], found["checkpoints"]) == (1, 0, 1)
    assert isinstance(found["last_active"], str) and found["last_active"].endswith("Z")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_a_checkpoint_name_is_refused_or_safe_as_a_ref(name: str) -> None:
    try:
        validate_checkpoint_name(name)
    except ValidationError:
        return
    assert "/" not in name and 0 < len(name) <= 100
    assert ref_problem(CHECKPOINT_PREFIX + name, "0" * 64) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_a_session_id_is_refused_or_safe_as_a_ref(value: str) -> None:
    try:
        validate_session_id(value)
    except ValidationError:
        return
    assert ref_problem(SESSION_PREFIX + value, "0" * 64) is None
    assert ref_problem(f"refs/heads/sessions/{value}", "0" * 64) is None
