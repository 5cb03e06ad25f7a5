"""Plugins whose notification hooks raise, through the command line: the user's data is kept, the failure is
warned about once per command, counted, and shown by `cairn plugins` in later commands until the hook works.

The plugin is a real distribution found through its entry point (``plugin_site``); the commands run
through ``cairn.cli.main``, the ``cairn`` script's entry point, on the sqlite store.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from cairn.cli import cli, main
from cairn.testing.sites import FakeSite


@pytest.fixture
def isolated_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plugins add commands to the process-wide ``cli`` group; give each test its own copy of the table."""
    monkeypatch.setattr(cli, "commands", dict(cli.commands))


FAULTY = """
    import os

    from cairn.hookspecs import hookimpl

    @hookimpl
    def cairn_commit_created(commit):
        if os.environ.get("CAIRN_TEST_FAULTY"):
            raise RuntimeError("listener down")

    @hookimpl
    def cairn_run_recorded(run):
        if os.environ.get("CAIRN_TEST_FAULTY"):
            raise RuntimeError("ledger listener down")
"""


def _main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the `cairn` script's entry point in process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), out, err


def _listed(name: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out, _ = _main(["plugins", "--json"], capsys)
    assert code == 0
    return next(p for p in json.loads(out) if p["name"] == name)


def test_a_failing_notification_hook_is_reported_counted_and_remembered(
    plugin_site: FakeSite, isolated_cli: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin_site.install("cairn-fake-faulty", {"faulty": FAULTY})
    monkeypatch.setenv("CAIRN_LOAD_PLUGINS", "faulty,sqlite,tokenizers")
    assert _main(["init"], capsys)[0] == 0
    monkeypatch.setenv("CAIRN_TEST_FAULTY", "1")

    code, out, err = _main(["commit", "hello"], capsys)
    assert code == 0 and "append" in out
    assert [line for line in err.splitlines() if line.startswith("warning:")] == [
        "warning: plugin faulty failed in cairn_commit_created: RuntimeError: listener down; the commit was stored"
    ]
    assert "CAIRN_DISABLE_PLUGINS=faulty" in err and "Traceback" not in err
    code, out, _ = _main(["log", "--json"], capsys)
    assert code == 0 and len(json.loads(out)) == 1  # the user's data is kept

    # A later command still shows it; a second failure adds to the count.
    faulty = _listed("faulty", capsys)
    assert faulty["status"] == "failing" and faulty["reason"].endswith("RuntimeError: listener down")
    assert faulty["failures"]["cairn_commit_created"]["count"] == 1
    assert _main(["commit", "again"], capsys)[0] == 0
    assert _listed("faulty", capsys)["failures"]["cairn_commit_created"]["count"] == 2
    code, out, err = _main(["plugins"], capsys)
    assert "failing: cairn_commit_created failed 2 times" in out

    # The same for runs: the run is recorded, the warning says so.
    code, _, err = _main(["run", "--", sys.executable, "-c", "pass"], capsys)
    assert code == 0
    assert (
        "warning: plugin faulty failed in cairn_run_recorded: RuntimeError: ledger listener down; the run was stored"
        in err
    )
    code, out, _ = _main(["runs", "list", "--json"], capsys)
    assert [r["status"] for r in json.loads(out)] == ["ok"]

    # Once the hook works again, the plugin is ok again (for commits; runs have not been recorded since).
    monkeypatch.delenv("CAIRN_TEST_FAULTY")
    code, _, err = _main(["commit", "fixed"], capsys)
    assert code == 0 and "warning:" not in err
    faulty = _listed("faulty", capsys)
    assert set(faulty["failures"]) == {"cairn_run_recorded"} and faulty["status"] == "failing"
    assert _main(["run", "--", sys.executable, "-c", "pass"], capsys)[0] == 0
    assert _listed("faulty", capsys)["status"] == "ok"


def test_a_failing_hook_warns_once_per_command(
    plugin_site: FakeSite, isolated_cli: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cairn.cli import State

    plugin_site.install("cairn-fake-faulty", {"faulty": FAULTY})
    monkeypatch.setenv("CAIRN_LOAD_PLUGINS", "faulty,sqlite,tokenizers")
    monkeypatch.setenv("CAIRN_TEST_FAULTY", "1")
    assert _main(["init"], capsys)[0] == 0
    state = State()  # what every command shares; the CLI reports at the end of each command like this
    for text in ("one", "two", "three"):
        state.repo.append({"content_type": "dialogue", "role": "user", "text": text})
    state.close()
    state.report_hook_failures()
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: plugin faulty failed in cairn_commit_created (3 times): RuntimeError: listener down; "
        "the commit was stored"
    ]
    assert _listed("faulty", capsys)["failures"]["cairn_commit_created"]["count"] == 3


def test_strict_mode_fails_on_a_notification_hook_but_keeps_the_commit(
    plugin_site: FakeSite, isolated_cli: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin_site.install("cairn-fake-faulty", {"faulty": FAULTY})
    monkeypatch.setenv("CAIRN_LOAD_PLUGINS", "faulty,sqlite,tokenizers")
    assert _main(["init"], capsys)[0] == 0
    monkeypatch.setenv("CAIRN_TEST_FAULTY", "1")
    code, _, err = _main(["--strict", "commit", "hello"], capsys)
    assert code == 1 and "Traceback" not in err
    assert (
        "error: plugin 'faulty': cairn_commit_created raised RuntimeError: listener down; the commit was stored" in err
    )
    code, out, _ = _main(["log", "--json"], capsys)
    assert len(json.loads(out)) == 1


def test_an_unreadable_failure_record_counts_as_none(
    plugin_site: FakeSite, isolated_cli: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cairn.plugin_failures import FILE_NAME

    plugin_site.install("cairn-fake-faulty", {"faulty": FAULTY})
    monkeypatch.setenv("CAIRN_LOAD_PLUGINS", "faulty,sqlite,tokenizers")
    assert _main(["init"], capsys)[0] == 0
    record = Path(".cairn") / FILE_NAME
    for text in ("{not json", '[1, {"plugin": 3}]', '{"a": 1}'):
        record.write_text(text, encoding="utf-8")
        assert _listed("faulty", capsys)["status"] == "ok"
