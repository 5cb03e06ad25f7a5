"""Sessions and checkpoints end to end, on SQLite and on git: the CLI, the Python API, interrupted asks."""

from __future__ import annotations

import subprocess

import pytest
from conftest import ask_fake_llm

import cairn as cairn_api
from cairn.asking import INTERRUPTED_REPLY
from cairn.checkpoints import Checkpoints
from cairn.errors import ValidationError
from cairn.sessions import Sessions, summary
from cairn.testing.fake_openai import FakeOpenAI, Fault, Reply


@pytest.fixture(params=["sqlite", "git"])
def project(request, cairn, fake_llm: FakeOpenAI):
    """A project asking the fake server, its context on SQLite or in a git repository."""
    if request.param == "git":
        subprocess.run(["git", "init", "-q", "-b", "work", str(cairn.project)], check=True)
    ask_fake_llm(cairn.project, fake_llm, storage=request.param)
    return cairn


def roles(cairn) -> list[str]:
    """The dialogue roles of the current branch, oldest first."""
    return [e["content"]["role"] for e in reversed(cairn.json("log")) if e["content"]["content_type"] == "dialogue"]


def test_a_session_from_the_cli_asks_checkpoints_restores_and_closes(project, fake_llm: FakeOpenAI):
    cairn = project
    cairn("commit", "-t", "instruction", "Answer in one short sentence.")
    made = cairn.json("session", "new", "--title", "Trip planning")
    sid = made["id"]
    assert made["branch"] == f"sessions/{sid}" and made["status"] == "open" and made["provider"] == "openai"
    assert [b["name"] for b in cairn.json("branch") if b["current"]] == [made["branch"]]

    fake_llm.script(Reply("Take the train.", chunk_chars=4), Reply("Leave at nine."))
    first = cairn.json("ask", "How do I get to Lyon?")
    cairn("checkpoint", "create", "after-route", "-m", "route decided")
    second = cairn.json("ask", "When should I leave?")
    # The instruction the session started from is sent with the questions.
    assert [m["role"] for m in fake_llm.calls("chat")[1].json["messages"]] == ["system", "user", "assistant", "user"]

    shown = cairn.json("session", "show")
    totals = shown["totals"]
    assert totals["turns"] == 2 and totals["partial"] == 0 and totals["runs"] == 2
    assert totals["input_tokens"] == first["usage"]["input_tokens"] + second["usage"]["input_tokens"]
    assert totals["output_tokens"] == first["usage"]["output_tokens"] + second["usage"]["output_tokens"]
    assert totals["cost"] == pytest.approx(first["cost"] + second["cost"])
    assert shown["runs"] == [first["run_id"], second["run_id"]]
    assert [c["id"] for c in cairn.json("logs")][:2] == [second["run_id"], first["run_id"]]

    [point] = cairn.json("checkpoint", "list")
    assert (point["name"], point["session"], point["branch"], point["commit"]) == (
        "after-route",
        sid,
        made["branch"],
        first["reply"],
    )
    assert point["tokens"] > 0 and point["message"] == "route decided" and point["auto"] is False
    assert cairn.json("checkpoint", "show", "after-route") == point

    out = cairn("checkpoint", "restore", "after-route").stdout
    assert "saved as checkpoint auto-" in out
    assert cairn.json("log")[0]["hash"] == first["reply"]
    auto = [c for c in cairn.json("checkpoint", "list") if c["auto"]]
    assert [c["commit"] for c in auto] == [second["reply"]]  # the old tip is kept, nothing lost
    assert cairn.json("session", "show")["totals"]["turns"] == 1  # totals follow the branch's turns
    cairn("checkpoint", "restore", auto[0]["name"], "--as-branch", "second-try")
    assert {b["name"]: b["commit"] for b in cairn.json("branch")}["second-try"] == second["reply"]

    cairn("session", "close")
    refused = cairn.run("ask", "one more?", check=False)
    assert refused.returncode == 1 and "is closed" in refused.stderr and "session resume" in refused.stderr
    cairn("switch", "second-try")
    cairn("session", "delete", sid)  # closed: no --force needed
    assert cairn.json("session", "list") == []
    assert made["branch"] not in {b["name"] for b in cairn.json("branch")}
    # The checkpoints still name their commits after the session's branch is gone.
    assert cairn.json("checkpoint", "show", "after-route")["commit"] == first["reply"]
    cairn("checkpoint", "delete", "after-route")
    assert [c["name"] for c in cairn.json("checkpoint", "list")] == [auto[0]["name"]]
    cairn("fsck")


def test_resume_delete_and_bad_names_are_clear(project):
    cairn = project
    cairn("commit", "hello")
    one = cairn.json("session", "new", "--title", "one")
    two = cairn.json("session", "new", "--title", "two", "--from", "main", "--no-switch")
    assert two["start"] == one["start"]  # both start from main's tip
    listed = cairn.json("session", "list")
    assert {s["id"] for s in listed} == {one["id"], two["id"]}
    refused = cairn.run("session", "delete", two["id"], check=False)
    assert refused.returncode == 1 and "is open" in refused.stderr and "--force" in refused.stderr
    cairn("session", "close", two["id"])
    assert "resumed session" in cairn("session", "resume", two["id"]).stdout
    assert cairn.json("session", "show")["id"] == two["id"] and cairn.json("session", "show")["status"] == "open"
    cairn("switch", "main")
    cairn("session", "delete", two["id"], "--force")
    for bad in ("../etc", "refs/heads/main", "abc123"):
        result = cairn.run("checkpoint", "create", bad, check=False)
        assert result.returncode in (1, 2) and "error:" in result.stderr and "Traceback" not in result.stderr, bad
    for bad in ("s-../x",):
        result = cairn.run("session", "show", bad, check=False)
        assert result.returncode == 1 and "not a session id" in result.stderr
    missing = cairn.run("checkpoint", "restore", "nowhere", check=False)
    assert missing.returncode == 1 and "checkpoint list" in missing.stderr
    cairn("checkpoint", "create", "p1")
    again = cairn.run("checkpoint", "create", "p1", check=False)
    assert again.returncode == 1 and "checkpoint p1 already exists" in again.stderr


def test_an_ask_that_failed_never_leaves_two_user_turns_in_a_row(project, fake_llm: FakeOpenAI):
    cairn = project
    fake_llm.script(Fault.openai(400, "bad request"), Reply("Fine now."))
    failed = cairn.run("ask", "first question", check=False)
    assert failed.returncode == 1 and "question is kept" in failed.stderr
    assert roles(cairn) == ["user", "assistant"]  # nothing arrived: the reply is the interruption marker
    [marker, question] = cairn.json("log")[:2]
    assert marker["content"]["text"] == INTERRUPTED_REPLY and marker["metadata"]["partial"] is True
    assert question["content"]["text"] == "first question"
    cairn("ask", "second question")
    assert roles(cairn) == ["user", "assistant", "user", "assistant"]


def test_a_reply_cut_mid_stream_is_committed_partial_with_its_usage(project, fake_llm: FakeOpenAI):
    cairn = project
    cairn("session", "new", "--title", "cut")
    fake_llm.script(Reply("This answer will be cut off", chunk_chars=5, cut_after=3), Reply("Whole."))
    result = cairn.run("ask", "tell me", check=False)
    assert result.returncode == 1 and "partial reply as" in result.stderr
    reply = cairn.json("log")[0]
    assert reply["content"]["text"] == "This answe"
    meta = reply["metadata"]
    assert meta["partial"] is True and meta["usage"]["estimated"] is True and meta["usage"]["output_tokens"] > 0
    totals = cairn.json("session", "show")["totals"]
    assert (totals["turns"], totals["partial"], totals["unpriced"]) == (1, 1, 1)
    assert totals["output_tokens"] == meta["usage"]["output_tokens"]
    cairn("ask", "again")
    assert roles(cairn) == ["user", "assistant", "user", "assistant"]
    assert cairn.json("session", "show")["totals"]["turns"] == 2


def test_a_question_whose_process_died_is_answered_by_the_marker_on_the_next_ask(project, fake_llm: FakeOpenAI):
    cairn = project
    repo = cairn_api.open(cairn.project)
    try:
        session = repo.session(title="api")
        # What a kill -9 between the question and the reply leaves: a question at the tip.
        session.view.append({"content_type": "dialogue", "role": "user", "text": "lost?"}, message="cairn ask")
        fake_llm.script(Reply("Here."))
        result = session.ask("still there?")
        assert result.content == "Here."
        texts = [e.content.text for e in reversed(session.view.log()) if e.content is not None]
        assert texts == ["lost?", INTERRUPTED_REPLY, "still there?", "Here."]
        totals = session.totals()
        assert (totals.turns, totals.partial, totals.runs) == (2, 1, 1)
        assert repo.branch == "main"  # the API never moved HEAD
    finally:
        repo.store.close()


def test_the_python_api_and_summary(project, fake_llm: FakeOpenAI):
    cairn = project
    cairn("commit", "base")
    repo = cairn_api.open(cairn.project)
    try:
        assert summary(repo) == {"count": 0, "open": 0, "last_active": None, "checkpoints": 0}
        session = repo.session(title="From Python", model="gpt-4o-mini", tools=["search"])
        pieces: list[str] = []
        fake_llm.script(Reply("One.", chunk_chars=2), Reply("Two."))
        first = session.ask("first?", stream=True, on_text=pieces.append)
        assert "".join(pieces) == "One." and first.content == "One."
        session.ask("second?")
        again = repo.session(session.id)
        assert again.totals().turns == 2 and again.record.tools == ["search"]
        assert again.to_dict(runs=True)["runs"] == again.run_ids() and len(again.run_ids()) == 2
        Checkpoints(repo).create("py-point", "from the API", rev=f"sessions/{session.id}")
        stats = summary(repo)
        assert stats["count"] == 1 and stats["open"] == 1 and stats["checkpoints"] == 1
        assert stats["last_active"] == again.last_active()
        Sessions(repo).close(session.id)
        with pytest.raises(ValidationError, match="closed"):
            Sessions(repo).get(session.id).ask("third?")
        assert summary(repo)["open"] == 0
    finally:
        repo.store.close()
