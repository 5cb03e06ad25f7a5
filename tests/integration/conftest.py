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


#: The key the fake OpenAI server of ``openai_project`` wants, and the variable that holds it.
FAKE_KEY = "sk-canary-fake-llm-5511"
FAKE_KEY_ENV = "CAIRN_IT_OPENAI_KEY"


@pytest.fixture
def fake_llm(monkeypatch: pytest.MonkeyPatch):
    """A loopback fake OpenAI server (``cairn.testing.fake_openai``) whose key is in ``$CAIRN_IT_OPENAI_KEY``."""
    from cairn.testing.fake_openai import FakeOpenAI

    monkeypatch.setenv(FAKE_KEY_ENV, FAKE_KEY)
    with FakeOpenAI(api_key=FAKE_KEY, model="gpt-4o-mini") as fake:
        yield fake


def ask_fake_llm(project: Path, server, *, storage: str | None = None) -> None:
    """Write a cairn.toml asking ``server`` (cairn-openai), on ``storage`` when given."""
    line = f'storage = "{storage}"\n' if storage else ""
    (project / "cairn.toml").write_text(
        f"""[cairn]
{line}llm = "openai"

[llm.openai]
base_url = "{server.url}"
api_key_env = "{FAKE_KEY_ENV}"
model = "gpt-4o-mini"
"""
    )
