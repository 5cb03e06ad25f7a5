"""`cairn ask`, `embed`, `providers` and `spend` end to end: noop by default, cairn-openai against the fake server."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from cairn.testing.fake_openai import FakeOpenAI, Fault, Reply
from cairn.testing.provider_suite import CANARY_PROMPT, PROMPT_WORDS

KEY = "sk-canary-integration-77aa11"
KEY_ENV = "CAIRN_IT_OPENAI_KEY"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeOpenAI(api_key=KEY, model="gpt-4o-mini") as fake:
        yield fake


def configure(cairn, server: FakeOpenAI, extra: str = "") -> None:
    path: Path = cairn.project / "cairn.toml"
    text = (
        path.read_text()
        .replace('llm = "noop"', 'llm = "openai"')
        .replace('embeddings = "noop"', 'embeddings = "hashing"')
    )
    path.write_text(
        text
        + f"""
[llm.openai]
base_url = "{server.url}"
api_key_env = "{KEY_ENV}"
model = "gpt-4o-mini"
{extra}
"""
    )


def log(cairn) -> list[dict]:
    return cairn.json("log")


def test_ask_with_the_default_noop_says_how_to_enable_a_provider_and_commits_nothing(cairn):
    result = cairn.run("ask", "What is the boiling point of water on Everest?", check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: no LLM provider is configured")
    # cairn-openai is installed here: the hint says so instead of asking to install it.
    assert "cairn-openai is installed" in lines[1] and "pip install" not in lines[1]
    assert 'llm = "openai"' in lines[1] and ("OPENAI_API_KEY" in lines[1]) is not bool(os.environ.get("OPENAI_API_KEY"))
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert log(cairn) == []


def test_ask_streams_the_reply_and_commits_question_and_answer(cairn, server: FakeOpenAI):
    configure(cairn, server)
    cairn("commit", "-t", "instruction", "You are a careful research assistant.")
    server.script(Reply("Roughly 70 °C at the summit.", chunk_chars=5, cached_tokens=2))
    result = cairn("ask", "What is the boiling point of water on Everest?")
    assert result.stdout == "Roughly 70 °C at the summit.\n"
    assert "[openai gpt-4o-mini]" in result.stderr and "cost 0.00000" in result.stderr

    [sent] = server.calls("chat")
    assert sent.json["stream"] is True and sent.json["stream_options"] == {"include_usage": True}
    assert [m["role"] for m in sent.json["messages"]] == ["system", "user"]
    assert sent.headers["authorization"] == f"Bearer {KEY}"

    reply, question = log(cairn)[:2]
    assert question["content"]["text"] == "What is the boiling point of water on Everest?"
    assert reply["content"] == {"content_type": "dialogue", "role": "assistant", "text": "Roughly 70 °C at the summit."}
    meta = reply["metadata"]
    assert meta["provider"] == "openai" and meta["model"] == "gpt-4o-mini" and meta["finish_reason"] == "stop"
    assert meta["usage"]["input_tokens"] == 15 and meta["usage"]["cache_read_tokens"] == 2  # words, as the fake counts
    assert meta["cost"] == pytest.approx((13 * 0.15 + 2 * 0.075 + 6 * 0.60) / 1e6)
    assert reply["reply_to"] == question["hash"]


def test_ask_json_and_no_stream(cairn, server: FakeOpenAI):
    configure(cairn, server)
    server.script(Reply("First answer."), Reply("Second answer."))
    data = json.loads(cairn("ask", "one?", "--json").stdout)
    assert data["content"] == "First answer." and data["usage"]["output_tokens"] == 2
    assert "stream" not in server.calls("chat")[0].json
    result = cairn("ask", "two?", "--no-stream", "--model", "gpt-4.1-mini")
    assert result.stdout == "Second answer.\n"
    second = server.calls("chat")[1].json
    assert second["model"] == "gpt-4.1-mini"
    assert [m["content"] for m in second["messages"]] == ["one?", "First answer.", "two?"]


def test_ask_sends_only_what_fits_the_budget(cairn, server: FakeOpenAI):
    configure(cairn, server)
    cairn("commit", "-t", "instruction", "Be brief.")
    for i in range(5):
        cairn("commit", " ".join(["old"] * 50) + f" note {i}")
    cairn("ask", "short question?", "--budget", "40", "--no-stream")
    messages = server.calls("chat")[0].json["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[-1]["content"] == "short question?"


def test_a_failed_ask_is_one_clear_line_that_leaks_nothing(cairn, server: FakeOpenAI):
    configure(cairn, server)
    server.script(
        Fault.openai(401, f"Incorrect API key provided: {KEY}. You asked: {CANARY_PROMPT}", code="invalid_api_key")
    )
    result = cairn.run("ask", CANARY_PROMPT, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: openai HTTP 401")
    assert "question is kept as commit" in lines[1]
    for needle in (KEY, *PROMPT_WORDS):
        assert needle not in result.stderr
    spend = cairn.json("spend")
    assert spend["total"]["failed"] == 1 and spend["groups"][0]["provider"] == "openai"
    database = (cairn.project / ".cairn" / "cairn.db").read_bytes()
    assert KEY.encode() not in database  # the key never reaches the store (the prompt is context: it may)
    with sqlite3.connect(cairn.project / ".cairn" / "cairn.db") as conn:
        records = " ".join(r[0] for r in conn.execute("SELECT record FROM spend"))
    for needle in (KEY, *PROMPT_WORDS):
        assert needle not in records


def test_a_stream_cut_mid_way_prints_what_came_and_fails_cleanly(cairn, server: FakeOpenAI):
    configure(cairn, server)
    server.script(Reply("This answer will be cut off", chunk_chars=5, cut_after=3))
    result = cairn.run("ask", "tell me", check=False)
    assert result.returncode == 1
    assert result.stdout == "This answe\n"  # the role chunk, then two pieces of five characters
    assert "broke off" in result.stderr and "not retried" in result.stderr
    [record] = cairn.json("spend")["groups"]
    assert record["failed"] == 1 and record["output_tokens"] > 0


def test_a_spend_ceiling_refuses_the_next_call_and_names_itself(cairn, server: FakeOpenAI):
    configure(cairn, server)
    toml = cairn.project / "cairn.toml"
    toml.write_text(toml.read_text() + "\n[providers]\nmax_spend_per_day = 0.00001\n")
    server.script(Reply(" ".join(["word"] * 20)))  # 20 output tokens at 0.60 per million: over the ceiling
    cairn("ask", "first", "--no-stream")
    result = cairn.run("ask", "second", check=False)
    assert result.returncode == 1
    assert "spend ceiling reached" in result.stderr and "max_spend_per_day = 1e-05" in result.stderr
    assert len(server.calls("chat")) == 1
    spend = cairn.json("spend", "--since", "today")
    assert spend["total"]["refused"] == 1 and spend["total"]["calls"] == 1


def test_providers_lists_readiness_and_the_missing_key(cairn, server: FakeOpenAI, monkeypatch):
    configure(cairn, server)
    infos = {(i["kind"], i["name"]): i for i in cairn.json("providers")}
    assert infos[("llm", "openai")]["ready"] and infos[("llm", "openai")]["selected"]
    assert infos[("llm", "noop")]["ready"] is False
    assert infos[("embeddings", "hashing")]["ready"] and infos[("embeddings", "hashing")]["selected"]
    assert infos[("llm", "openai")]["capabilities"]["context_window"] == 128000
    monkeypatch.delenv(KEY_ENV)
    infos = {(i["kind"], i["name"]): i for i in cairn.json("providers")}
    assert f"{KEY_ENV} is not set" in infos[("llm", "openai")]["problem"]
    table = cairn("providers").stdout
    assert "openai" in table and "hashing" in table


def test_embed_with_the_offline_hashing_provider(cairn, server: FakeOpenAI):
    configure(cairn, server)
    data = cairn.json("embed", "the cat sat on the mat", "a cat on a mat")
    assert data["provider"] == "hashing" and data["dimensions"] == 512 and len(data["vectors"]) == 2
    a, b = data["vectors"]
    assert 0.2 < sum(x * y for x, y in zip(a, b, strict=True)) < 1.0  # two words and one word pair in common
    assert "512" in cairn("embed", "hello world").stdout


def test_spend_shows_unknown_for_an_unpriced_model_not_zero(cairn, server: FakeOpenAI):
    configure(cairn, server)
    server.script(Reply("a"), Reply("b"))
    cairn("ask", "priced?", "--no-stream")
    cairn("ask", "unpriced?", "--no-stream", "--model", "llama3")
    spend = cairn.json("spend")
    groups = {g["model"]: g for g in spend["groups"]}
    assert groups["llama3"]["cost"] is None and groups["llama3"]["unpriced_calls"] == 1
    assert groups["gpt-4o-mini"]["cost"] > 0
    assert spend["total"]["cost"] is None and spend["total"]["priced_cost"] == groups["gpt-4o-mini"]["cost"]
    table = cairn("spend").stdout
    assert "unknown" in table and "total" in table
    assert cairn("spend", "--since", "2999-01-01").stdout.startswith("no provider calls recorded")
    bad = cairn.run("spend", "--since", "soon", check=False)
    assert bad.returncode == 1 and "is not a time" in bad.stderr


@pytest.mark.parametrize("takes_images", [True, False])
def test_ask_shows_a_model_that_takes_images_the_image_itself(cairn, server: FakeOpenAI, takes_images: bool):
    import base64

    configure(cairn, server, f"images = {str(takes_images).lower()}")
    chart = cairn.project / "chart.png"
    chart.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(100)))
    digest = cairn.json("artifact", "put", str(chart), "--commit")["hash"]
    cairn("ask", "--no-stream", "What does the chart show?")
    sent = server.calls("chat")[-1].json["messages"]
    reference = sent[-2]
    label = f"[artifact chart.png (image/png, 108 B, sha256 {digest[:12]})]"
    if takes_images:
        data = base64.b64encode(chart.read_bytes()).decode()
        assert reference == {
            "role": "user",
            "content": [
                {"type": "text", "text": label},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
            ],
        }
    else:
        assert reference == {"role": "user", "content": label}
    assert sent[-1] == {"role": "user", "content": "What does the chart show?"}
