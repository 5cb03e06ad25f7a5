"""The README's tour runs as written, and does what its comments say."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def tour_commands() -> list[list[str]]:
    """The first shell block under "## A tour" in README.md, one argv per line, comments dropped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## A tour", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [argv for argv in commands if argv]


def cairn(project: Path, *args: str) -> str:
    env = {**os.environ, "CAIRN_USER_CONFIG": ""}
    done = subprocess.run(
        [sys.executable, "-m", "cairn", *args], cwd=project, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"cairn {shlex.join(args)} exited {done.returncode}:\n{done.stderr}"
    return done.stdout


def cairn_json(project: Path, *args: str) -> Any:
    return json.loads(cairn(project, *args, "--json"))


def test_the_readme_tour_runs_as_written(cairn_env: Path) -> None:
    commands = tour_commands()
    assert commands[0] == ["cairn", "init"] and all(argv[0] == "cairn" for argv in commands)
    for argv in commands:
        cairn(cairn_env, *argv[1:])
    # "cairn pin ... -r 'the question'" pinned the question, not the answer.
    log = cairn_json(cairn_env, "log", "main")
    question = next(e for e in log if e["content"].get("text", "").startswith("What is the boiling point"))
    annotations = cairn_json(cairn_env, "show", question["hash"])["annotations"]
    assert [(a["priority"], a["reason"]) for a in annotations] == [("pinned", "the question")]
    # The edit was made on fact-check.
    assert "71 °C" in cairn(cairn_env, "materialize", "fact-check", "--format", "text")
    # the tour merges fact-check into main (a fast-forward), so main now says the same
    assert "71 °C" in cairn(cairn_env, "materialize", "main", "--format", "text")
    # The session's compaction was committed (its summary is shorter than what it replaced); the restore
    # then moved the branch back before it, keeping the old tip as an automatic checkpoint.
    checkpoints = cairn_json(cairn_env, "checkpoint", "list", "--json")
    [auto] = [c for c in checkpoints if c["name"].startswith("auto-")]
    compacted = cairn(cairn_env, "materialize", auto["commit"], "--format", "text")
    assert "[Summary of " in compacted and "About 101.4" in compacted
