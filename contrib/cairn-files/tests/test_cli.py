"""The context commands work on a backend with only objects, refs and annotations; the ledger ones say why not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def cairn(project: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``cairn`` as a user would: a process of its own, in the project."""
    env = {**os.environ, "CAIRN_USER_CONFIG": "", "CAIRN__CAIRN__STORAGE": "files"}
    proc = subprocess.run([sys.executable, "-m", "cairn", *args], cwd=project, env=env, capture_output=True, text=True)
    assert "Traceback" not in proc.stderr, proc.stderr
    if ok:
        assert proc.returncode == 0, f"cairn {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
    return proc


@pytest.fixture
def project(tmp_path: Path) -> Path:
    cairn(tmp_path, "init")
    return tmp_path


def test_the_context_commands_work(project: Path) -> None:
    cairn(project, "commit", "-t", "instruction", "You are terse.")
    cairn(project, "commit", "What is 2+2?")
    cairn(project, "commit", "--role", "assistant", "5")
    cairn(project, "switch", "-c", "fix")
    cairn(project, "edit", "HEAD", "4")
    cairn(project, "pin", "HEAD~2", "-r", "the question")
    log = cairn(project, "log").stdout
    assert "What is 2+2?" in log and "4" in log
    messages = json.loads(cairn(project, "materialize", "--json").stdout)["messages"]
    assert [m["content"] for m in messages] == ["You are terse.", "What is 2+2?", "4"]
    assert "5" in cairn(project, "diff", "main", "fix").stdout
    assert (project / ".cairn" / "files" / "refs.json").is_file(), "the files backend was not the one used"
    assert "ok" in cairn(project, "fsck").stdout


def test_export_and_import_round_trip(project: Path, tmp_path: Path) -> None:
    cairn(project, "commit", "one")
    cairn(project, "commit", "two")
    out = tmp_path / "history.jsonl"
    cairn(project, "export", "-o", str(out))
    other = tmp_path / "other"
    other.mkdir()
    cairn(other, "init")
    cairn(other, "import", str(out))
    assert cairn(other, "log", "--json").stdout == cairn(project, "log", "--json").stdout


@pytest.mark.parametrize("command", [["runs", "list"], ["run", "--", "true"], ["chat", "list"], ["spend"]])
def test_ledger_and_chat_commands_name_the_missing_facet(project: Path, command: list[str]) -> None:
    proc = cairn(project, *command, ok=False)
    assert proc.returncode == 1
    assert "'files' storage backend does not keep" in proc.stderr and "facet)" in proc.stderr
    assert "hint:" in proc.stderr
