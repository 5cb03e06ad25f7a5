from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cairn.cli import cli


class Cairn:
    """Runs `cairn` commands in one project directory, in process (fast) or as a subprocess."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, ok: bool = True):
        result = self.runner.invoke(cli, ["-C", str(self.project), *args], input=input, catch_exceptions=False)
        if ok and result.exit_code != 0:
            raise AssertionError(f"cairn {' '.join(args)} exited {result.exit_code}:\n{result.output}")
        return result

    def json(self, *args: str):
        return json.loads(self(*args, "--json").stdout)

    def run(self, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        env = {**os.environ, "CAIRN_USER_CONFIG": ""}
        proc = subprocess.run(
            [sys.executable, "-m", "cairn", *args], cwd=self.project, env=env, capture_output=True, text=True, **kwargs
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"cairn {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc


@pytest.fixture
def cairn(cairn_env: Path) -> Cairn:
    tool = Cairn(cairn_env)
    tool("init")
    return tool
