"""`cairn memory consolidate` with a real LLM (cairn-openai against the fake server): the model writes the episode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cairn.testing.fake_openai import FakeOpenAI, Reply

KEY = "sk-canary-consolidate-31ce07"
KEY_ENV = "CAIRN_IT_CONSOLIDATE_KEY"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeOpenAI(api_key=KEY, model="gpt-4o-mini") as fake:
        yield fake


def test_consolidate_asks_the_configured_llm_for_the_summary(cairn: Any, server: FakeOpenAI) -> None:
    path: Path = cairn.project / "cairn.toml"
    text = path.read_text().replace('llm = "noop"', 'llm = "openai"')
    path.write_text(
        text + f'\n[llm.openai]\nbase_url = "{server.url}"\napi_key_env = "{KEY_ENV}"\nmodel = "gpt-4o-mini"\n'
    )
    cairn("commit", "The user asked for a faster importer.")
    cairn("commit", "-t", "dialogue", "--role", "assistant", "Rewrote the importer to stream its input.")
    server.script(Reply("The importer was rewritten to stream, as the user asked."))

    [episode] = cairn.json("memory", "consolidate")

    [sent] = server.calls("chat")
    assert [m["role"] for m in sent.json["messages"]] == ["system", "user"]
    question = sent.json["messages"][1]["content"]
    assert "faster importer" in question and "stream its input" in question
    assert episode["content_type"] == "memory.episode" and episode["branch"] == "main"
    assert episode["text"] == "The importer was rewritten to stream, as the user asked."
    assert episode["summarizer"] == "openai/gpt-4o-mini" and episode["commits"] == 2
    # The summary is a provider call of its own in `cairn logs`, and its spend points at it.
    [call] = cairn.json("logs")
    assert (call["kind"], call["operation"], call["outcome"]) == ("call", "consolidate", "ok")
    assert call["provider"] == "openai" and call["model"] == "gpt-4o-mini" and call["usage"]["output_tokens"] > 0
    assert [r["run_id"] for r in cairn.json("runs", "list", "--type", "llm")] == [call["id"]]
