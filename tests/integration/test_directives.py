"""Directives end to end on the default store: the single mutator, the CLI, and processes racing to start one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.cli import main
from cairn.model.governance import Directive


def fails(cairn, capsys, *args: str, status: int = 1) -> str:
    """Run a command in process that must fail with ``status``; its stderr (one error, never a traceback)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(["-C", str(cairn.project), *args])
    err = capsys.readouterr().err
    assert exited.value.code == status, err
    assert err.startswith("error: ") and "Traceback" not in err, err
    return err


def test_lifecycle_through_the_cli(cairn) -> None:
    made = cairn.json("directive", "new", "summarize the logs", "--tool", "grep", "--max-cost", "0.5")
    did = made["id"]
    assert made["status"] == "draft" and made["scope"] == {"tools": ["grep"]} and made["budget"] == {"cost": 0.5}
    assert cairn.json("directive", "approve", did, "--reason", "looks fine")["to_status"] == "approved"
    assert cairn.json("directive", "start", did)["to_status"] == "running"
    assert cairn.json("directive", "finish", did, "--status", "failed")["to_status"] == "failed"
    shown = cairn.json("directive", "show", did)
    assert shown["status"] == "failed"
    assert [(e["from_status"], e["to_status"]) for e in shown["events"]] == [
        (None, "draft"),
        ("draft", "approved"),
        ("approved", "running"),
        ("running", "failed"),
    ]
    assert [e["reason"] for e in cairn.json("directive", "history", did)][1] == "looks fine"
    assert [d["id"] for d in cairn.json("directive", "list", "--status", "failed")] == [did]


def test_a_move_not_allowed_changes_nothing(cairn, capsys) -> None:
    did = cairn.json("directive", "new", "x")["id"]
    cairn("directive", "approve", did)
    assert "is approved; it cannot become rejected" in fails(cairn, capsys, "directive", "reject", did)
    assert cairn.json("directive", "show", did)["status"] == "approved"
    assert len(cairn.json("directive", "history", did)) == 2


def test_bad_ids_and_values_are_clear_errors(cairn, capsys) -> None:
    for args, message in [
        (("directive", "show", "../../etc"), "is not a directive id"),
        (("directive", "show", "dir_0000000000000000"), "no directive 'dir_0000000000000000'"),
        (("directive", "list", "--status", "nope"), "is not a directive status"),
        (("directive", "new", "   "), "needs an intent"),
    ]:
        assert message in fails(cairn, capsys, *args), args


def test_a_new_directive_supersedes_and_cancels_the_old(cairn) -> None:
    old = cairn.json("directive", "new", "first try")["id"]
    cairn("directive", "approve", old)
    new = cairn.json("directive", "new", "second try", "--supersedes", old)
    assert new["supersedes"] == old and new["id"] != old
    old_state = cairn.json("directive", "show", old)
    assert old_state["status"] == "cancelled"
    assert old_state["events"][-1]["reason"] == f"superseded by {new['id']}"


def test_four_processes_racing_to_start_a_directive_start_it_once(cairn) -> None:
    did = cairn.json("directive", "new", "race")["id"]
    cairn("directive", "approve", did)
    env = {**os.environ, "CAIRN_USER_CONFIG": ""}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cairn", "directive", "start", did],
            cwd=cairn.project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 1, 1, 1]
    for code, err in results:
        if code:
            # lost the compare-and-swap, or came late enough to find it running already
            assert "moved it to running first" in err or "is running; it cannot become running" in err, err
    history = cairn.json("directive", "history", did)
    assert [e["to_status"] for e in history] == ["draft", "approved", "running"]


@settings(max_examples=60, deadline=None)
@given(
    intent=st.text(min_size=1).filter(str.strip),
    constraints=st.lists(st.text(min_size=1), max_size=3),
    tools=st.lists(st.text(min_size=1), max_size=3),
    cost=st.floats(min_value=1e-6, max_value=1e6),
)
def test_a_directive_round_trips_and_its_id_is_its_content(intent, constraints, tools, cost) -> None:
    made = Directive(
        intent=intent,
        created_by="ann",
        created_at="2026-01-01T00:00:00.000000Z",
        constraints=constraints,
        scope={"tools": tools} if tools else {},
        budget={"cost": cost},
    )
    again = Directive.from_record(made.to_record())
    assert again == made and again.id == made.id == "dir_" + made.content_hash[:16]
    changed = Directive.from_record({**made.to_record(), "intent": intent + "!", "content_hash": ""})
    assert changed.id != made.id


def test_tampered_content_is_refused() -> None:
    made = Directive(intent="x", created_by="ann", created_at="2026-01-01T00:00:00.000000Z")
    with pytest.raises(Exception, match="does not match its hash"):
        Directive.from_record({**made.to_record(), "intent": "y"})
