"""A project with something on every page, and `cairn serve` running over it on a free loopback port.

The project is built once per session through the real CLI: commits on two
branches with an edit, a delete and annotations; a command run and an agent
run with events; chat in a thread, one message sealed with a key the server
is not given; two `cairn ask` calls against the fake OpenAI server (calls and
spend); two eval runs of cairn-evals' sample datasets (a comparison).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cairn.chat import generate_key
from cairn.cli import cli
from cairn.testing.fake_openai import FakeOpenAI, Reply

#: A secret the server's environment holds: no response may contain it.
CANARY_ENV = "CAIRN_SERVE_TEST_API_KEY"
CANARY = "sk-serve-canary-4f1d0c9e7b2a"
CHAT_KEY_ENV = "CAIRN_CHAT_KEY"
OPENAI_KEY_ENV = "CAIRN_SERVE_TEST_OPENAI_KEY"
BASELINE = "cairn_evals:datasets/capitals-baseline.jsonl"
CANDIDATE = "cairn_evals:datasets/capitals-candidate.jsonl"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN")}
    env.update({"CAIRN_USER_CONFIG": "", "PYTHONUNBUFFERED": "1", **extra})
    return env


class Project:
    """Runs `cairn` in one project directory, in process, with the environment given."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.runner = CliRunner()

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = self.runner.invoke(cli, ["-C", str(self.path), *args], env=env, catch_exceptions=False)
        assert result.exit_code == 0, f"cairn {' '.join(args)} exited {result.exit_code}:\n{result.output}"
        return result.stdout

    def json(self, *args: str, env: dict[str, str] | None = None):
        return json.loads(self(*args, "--json", env=env))


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("serve") / "project"
    root.mkdir()
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(clean_env())
    try:
        yield _build(Project(root))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _build(cairn: Project) -> Project:
    cairn("init")
    cairn("commit", "-t", "instruction", "You are a careful research assistant.")
    cairn("commit", "What is the boiling point of water on Everest?")
    cairn("commit", f"a note that quotes a key by accident: {CANARY}")
    cairn("commit", "An answer that will be edited.")
    cairn("edit", "HEAD", "An answer, edited: about 70 °C.")
    cairn("switch", "-c", "experiment")
    cairn("commit", "A side question on the experiment branch.")
    cairn("delete", "HEAD~2")
    cairn("switch", "main")
    cairn("pin", "HEAD~3", "-r", "the question itself")
    cairn("skip", "HEAD~2", "-r", "a note we do not send")

    # memory: the offline hashing embedder, two facts (one superseded), episodes of each branch
    toml = cairn.path / "cairn.toml"
    toml.write_text(toml.read_text().replace('embeddings = "noop"', 'embeddings = "hashing"'))
    water = cairn.json("memory", "remember", "Water boils at 100 °C at sea level", "--subject", "physics")
    cairn("memory", "remember", "The summit of Everest is 8849 m high", "--subject", "geography")
    cairn(
        "memory", "remember", "Water boils at 100 °C at sea level and lower with altitude", "--supersedes", water["id"]
    )
    cairn("memory", "consolidate")

    key = generate_key()
    with FakeOpenAI(api_key="sk-fake-serve-key-123456", model="gpt-4o-mini") as server:
        toml = cairn.path / "cairn.toml"
        toml.write_text(
            toml.read_text().replace('llm = "noop"', 'llm = "openai"')
            + f'\n[llm.openai]\nbase_url = "{server.url}"\napi_key_env = "{OPENAI_KEY_ENV}"\nmodel = "gpt-4o-mini"\n'
        )
        server.script(Reply("About 70 °C at the summit."), Reply("Around 68 to 71 °C."))
        env = {OPENAI_KEY_ENV: "sk-fake-serve-key-123456"}
        cairn("ask", "And in Fahrenheit?", "--no-stream", env=env)
        cairn("ask", "Any other sources?", "--no-stream", "--model", "gpt-4.1-mini", env=env)

    cairn("run", "--", sys.executable, "-c", "print('step one'); print('step two')")
    thread = cairn.json("thread", "new", "Boiling points")["thread_id"]
    cairn("chat", "send", "Plain words anyone may read.", "--thread", thread)
    cairn("chat", "send", "Sealed words for key holders.", "--thread", thread, "--encrypt", env={CHAT_KEY_ENV: key})
    cairn("chat", "send", "A note on the last run.", "--run", "@last")
    for dataset, name in ((BASELINE, "baseline"), (CANDIDATE, "candidate")):
        cairn("eval", "run", dataset, "-e", "exact", "-e", "token_f1", "-e", "latency:max_ms=600", "--name", name)
    cairn("memory", "index")
    return cairn


class Server:
    """A `cairn serve` (or any command printing its URL first) in a subprocess, stopped by the test."""

    def __init__(self, project: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cairn", "-C", str(project), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(**(env or {})),
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        match = re.search(r"http://\S+", line)
        if not match:
            self.stop()
            raise AssertionError(f"no URL printed: {line!r}\n{self.proc.stderr.read() if self.proc.stderr else ''}")
        self.url = match.group(0)
        self.base = self.url.split("?", 1)[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


@pytest.fixture(scope="session")
def server(project: Project) -> Iterator[Server]:
    running = Server(project.path, "serve", "--port", "0", env={CANARY_ENV: CANARY})
    try:
        yield running
    finally:
        running.stop()
