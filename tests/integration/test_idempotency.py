"""Idempotency keys over the default store: a repeat never acts twice, in one process or across four."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from cairn_sqlite.store import open_in_directory
from hypothesis import given, settings
from hypothesis import strategies as st

import cairn
from cairn.errors import ConflictError, ValidationError
from cairn.idempotency import Idempotency
from cairn.model.governance import NonceRecord


@pytest.fixture
def store(tmp_path: Path):
    opened = open_in_directory(tmp_path)
    yield opened
    opened.close()


def test_a_repeat_returns_the_recorded_result_without_acting(store) -> None:
    acted: list[int] = []

    def act() -> dict:
        acted.append(1)
        return {"deployed": len(acted)}

    once = Idempotency(store)
    first = once.run("deploy-42", act)
    again = Idempotency(store).run("deploy-42", act)  # another caller, same store
    assert (first.result, first.replayed) == ({"deployed": 1}, False)
    assert (again.result, again.replayed) == ({"deployed": 1}, True)
    assert acted == [1]
    assert cairn.idempotent("deploy-42", act, store=store) == {"deployed": 1}
    assert acted == [1]


def test_a_failed_action_gives_the_key_back(store) -> None:
    def boom() -> None:
        raise RuntimeError("network down")

    with pytest.raises(RuntimeError):
        Idempotency(store).run("k", boom)
    assert store.get_nonce("k") is None
    assert Idempotency(store).run("k", lambda: 5).result == 5


def test_a_key_reused_for_another_action_is_refused_and_changes_nothing(store) -> None:
    Idempotency(store).run("k", lambda: "first", fingerprint="a" * 64)
    with pytest.raises(ValidationError, match="was used for a different action"):
        Idempotency(store).run("k", lambda: "second", fingerprint="b" * 64)
    assert store.get_nonce("k").result == "first"


def test_a_key_held_by_an_unfinished_caller_is_a_conflict(store) -> None:
    store.claim_nonce(NonceRecord("k", "someone-else", "2026-01-01T00:00:00.000000Z", "2999-01-01T00:00:00.000000Z"))
    with pytest.raises(ConflictError, match="another caller has been acting on it"):
        Idempotency(store).run("k", lambda: 1)


def test_results_that_cannot_be_stored_are_refused(store) -> None:
    with pytest.raises(ValidationError):
        Idempotency(store).run("k", lambda: object())
    assert store.get_nonce("k") is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None)
@given(value=json_values, key=st.text(min_size=1, max_size=40).filter(lambda k: all(32 <= ord(c) != 127 for c in k)))
def test_any_json_result_replays_as_recorded(value, key) -> None:
    with tempfile.TemporaryDirectory() as directory:
        with open_in_directory(directory) as opened:
            assert Idempotency(opened).run(key, lambda: value).result == value
            replay = Idempotency(opened).run(key, lambda: "acted again")
            assert replay.replayed and replay.result == value


WORKER = """
import sys, cairn
from pathlib import Path
def act():
    with open(sys.argv[1], "a") as log:
        log.write("acted\\n")
    return {"by": sys.argv[2]}
print(cairn.idempotent("ship-it", act)["by"])
"""


def test_four_processes_with_one_key_act_once(cairn_env: Path) -> None:
    from click.testing import CliRunner

    from cairn.cli import cli

    assert CliRunner().invoke(cli, ["init"]).exit_code == 0
    log = cairn_env / "acted.log"
    env = {**os.environ, "CAIRN_USER_CONFIG": ""}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(log), str(n)], cwd=cairn_env, env=env, stdout=subprocess.PIPE, text=True
        )
        for n in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert log.read_text() == "acted\n"
    codes = [p.returncode for p in procs]
    # every caller that finished saw the one result; one that came while it ran was told to retry
    winners = {o for o, c in zip(outputs, codes, strict=True) if c == 0}
    assert len(winners) == 1 and codes.count(0) >= 1


def test_cairn_run_with_a_key_runs_once(cairn, capsys) -> None:
    from test_directives import fails

    marker = cairn.project / "ran.txt"
    script = f"open({str(marker)!r}, 'a').write('x')"
    first = cairn("run", "--idempotency-key", "nightly-1", "--", sys.executable, "-c", script)
    again = cairn("run", "--idempotency-key", "nightly-1", "--", sys.executable, "-c", script)
    assert marker.read_text() == "x"
    assert "was done already" in again.stderr and "nothing was run" in again.stderr
    assert len(cairn.json("runs", "list")) == 1
    assert "recorded" in first.stderr
    err = fails(cairn, capsys, "run", "--idempotency-key", "nightly-1", "--", sys.executable, "-c", "pass")
    assert "was used for a different action" in err
    assert marker.read_text() == "x" and len(cairn.json("runs", "list")) == 1
