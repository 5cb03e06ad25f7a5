"""Actual usage on the reply's commit and `cairn status` comparing it with the estimate, on SQLite and on git."""

from __future__ import annotations

import os
import subprocess

import pytest

from cairn.testing.fake_openai import FakeOpenAI, Reply

KEY = "sk-calibration-test-5521"
KEY_ENV = "CAIRN_IT_CALIBRATION_KEY"


@pytest.fixture(params=["sqlite", "git"])
def project(request, cairn, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeOpenAI(api_key=KEY, model="gpt-4o-mini") as server:
        path = cairn.project / "cairn.toml"
        text = path.read_text().replace('llm = "noop"', 'llm = "openai"')
        if request.param == "git":
            env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
            subprocess.run(["git", "init", "-q", "-b", "work"], cwd=cairn.project, check=True, env=env)
            text = text.replace('storage = "sqlite"', 'storage = "git"')
            assert 'storage = "git"' in text
        path.write_text(
            text + f'\n[llm.openai]\nbase_url = "{server.url}"\napi_key_env = "{KEY_ENV}"\nmodel = "gpt-4o-mini"\n'
        )
        yield cairn, server


def test_status_shows_the_last_estimate_against_the_reported_prompt_tokens(project):
    cairn, server = project
    assert cairn.json("status")["calibration"] is None
    assert "last call" not in cairn("status").stdout

    cairn("commit", "-t", "instruction", "Answer in one short sentence please.")
    server.script(Reply("About seventy degrees."))
    cairn("ask", "--no-stream", "How hot does water boil on Everest?")
    reply = cairn.json("log")[0]
    meta = reply["metadata"]
    assert meta["usage"]["estimated"] is False
    reported = meta["usage"]["input_tokens"]
    estimated = meta["context_tokens"]
    assert reported > 0 and estimated > 0 and meta["context_tokenizer"] == cairn.json("status")["tokenizer"]

    calibration = cairn.json("status")["calibration"]
    assert calibration["commit"] == reply["hash"]
    assert (calibration["estimated_prompt_tokens"], calibration["actual_prompt_tokens"]) == (estimated, reported)
    assert calibration["error"] == pytest.approx((estimated - reported) / reported, abs=1e-4)
    [line] = [row for row in cairn("status").stdout.splitlines() if row.startswith("last call: ")]
    assert line.startswith(f"last call: {estimated} prompt tokens estimated by ")
    assert f"{reported} reported by openai" in line and f"{(estimated - reported) / reported:+.1%}" in line

    # Newer commits without usage do not hide it; a usage the provider did not report is not a calibration.
    cairn("commit", "a note after the call")
    assert cairn.json("status")["calibration"]["commit"] == reply["hash"]
    server.script(Reply("No usage this time.", usage=None))
    cairn("ask", "--no-stream", "And at sea level?")
    newest = cairn.json("log")[0]
    assert newest["metadata"]["usage"] is None or newest["metadata"]["usage"]["estimated"] is True
    assert cairn.json("status")["calibration"]["commit"] == reply["hash"]


def test_a_reply_with_no_text_is_committed_with_its_usage(project):
    cairn, server = project
    server.script(Reply(""))
    cairn("ask", "--no-stream", "Say nothing.")
    reply = cairn.json("log")[0]
    assert reply["content"]["text"] == "(the model replied with no text)"
    assert reply["metadata"]["empty_reply"] is True and reply["metadata"]["usage"]["input_tokens"] > 0
