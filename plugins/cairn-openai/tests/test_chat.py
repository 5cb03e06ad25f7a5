"""Chat over real HTTP: request bodies, headers, whole replies, streams assembled by the kernel, usage."""

from __future__ import annotations

import json

import attrs
import pytest
from cairn_openai.chat import OpenAIChat
from cairn_openai.config import ChatConfig
from cairn_openai.wire import chunk_from_event, sse_data, usage_from
from openai_testkit import KEY, KEY_ENV

from cairn.model import Message, ToolCall
from cairn.providers import ChatRequest, ResponseFormat, Tool, Usage
from cairn.testing.fake_openai import FakeOpenAI, Fault, Reply

WEATHER = Tool(
    "get_weather",
    "Weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def test_the_request_body_carries_every_field(server: FakeOpenAI, chat: OpenAIChat) -> None:
    request = ChatRequest(
        [
            Message("system", "Be brief."),
            Message("user", "Weather in Oslo?"),
            Message("assistant", None, tool_calls=(ToolCall("c0", "get_weather", '{"city": "Bergen"}'),)),
            Message("tool", '{"temp": 7}', name="get_weather", tool_call_id="c0"),
        ],
        model="gpt-4o",
        max_output_tokens=50,
        temperature=0.2,
        stop=["END"],
        seed=7,
        tools=[WEATHER],
        tool_choice="get_weather",
        response_format=ResponseFormat.json_schema({"type": "object"}, name="w"),
        metadata={"task": "not sent"},
    )
    chat.complete(request)
    [sent] = server.calls("chat")
    body = sent.json
    assert body["model"] == "gpt-4o" and body["max_tokens"] == 50  # not api.openai.com: the classic field
    assert (body["temperature"], body["stop"], body["seed"]) == (0.2, ["END"], 7)
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather in a city.", "parameters": WEATHER.parameters},
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": True},
    }
    assert body["messages"][2]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city": "Bergen"}',
    }
    assert body["messages"][3] == {"role": "tool", "content": '{"temp": 7}', "tool_call_id": "c0"}
    assert "metadata" not in body and "stream" not in body
    assert sent.headers["authorization"] == f"Bearer {KEY}"


def test_openai_itself_gets_max_completion_tokens_and_the_organization(chat_config: ChatConfig) -> None:
    from cairn_openai.config import OPENAI_URL

    provider = OpenAIChat(attrs.evolve(chat_config, base_url=OPENAI_URL, organization="org-1"))
    assert provider.max_tokens_field == "max_completion_tokens"
    assert provider.connection.headers()["OpenAI-Organization"] == "org-1"
    provider.close()
    forced = OpenAIChat(attrs.evolve(chat_config, max_tokens_field="max_completion_tokens"))
    assert forced.max_tokens_field == "max_completion_tokens"
    forced.close()


def test_no_key_variable_sends_no_authorization(server: FakeOpenAI, chat_config: ChatConfig) -> None:
    server.api_key = None
    provider = OpenAIChat(attrs.evolve(chat_config, api_key_env=""))
    assert provider.readiness() is None
    provider.complete(ChatRequest([Message("user", "hi")], model="local-model"))
    assert "authorization" not in server.requests[-1].headers
    provider.close()


def test_a_whole_reply_with_tool_calls_and_detailed_usage(server: FakeOpenAI, chat: OpenAIChat) -> None:
    server.script(
        Reply(
            None,
            tool_calls=[{"id": "call_1", "name": "get_weather", "arguments": '{"city": "Oslo"}'}],
            usage={
                "prompt_tokens": 120,
                "completion_tokens": 30,
                "total_tokens": 150,
                "prompt_tokens_details": {"cached_tokens": 100},
                "completion_tokens_details": {"reasoning_tokens": 12},
            },
        )
    )
    response = chat.complete(ChatRequest([Message("user", "Weather?")], model="gpt-4o-mini", tools=[WEATHER]))
    assert response.content is None and response.finish_reason == "tool_calls"
    assert response.tool_calls == (ToolCall("call_1", "get_weather", '{"city": "Oslo"}'),)
    assert response.usage == Usage(120, 30, cache_read_tokens=100, reasoning_tokens=12)
    assert response.request_id == "req_fake1"


def test_a_stream_through_the_kernel_joins_text_tool_calls_and_takes_usage_from_the_last_chunk(
    server: FakeOpenAI, chat: OpenAIChat, kernel
) -> None:
    server.script(
        Reply(
            "Let me check.",
            chunk_chars=3,
            cached_tokens=1,
            reasoning_tokens=2,
            tool_calls=[
                {"id": "call_a", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
                {"id": "call_b", "name": "get_weather", "arguments": '{"city": "Bergen"}'},
            ],
        )
    )
    stream = kernel.llm(chat).stream([Message("user", "Weather in Oslo and Bergen?")], tools=[WEATHER])
    texts = [chunk.content for chunk in stream]
    response = stream.response
    assert "".join(texts) == "Let me check." and response.content == "Let me check."
    assert response.tool_calls == (
        ToolCall("call_a", "get_weather", '{"city": "Oslo"}'),
        ToolCall("call_b", "get_weather", '{"city": "Bergen"}'),
    )
    assert response.finish_reason == "tool_calls"
    assert response.usage == Usage(5, 7, cache_read_tokens=1, reasoning_tokens=2)  # words, as the fake counts
    assert response.cost == pytest.approx((4 * 0.15 + 1 * 0.075 + 7 * 0.60) / 1e6)
    assert server.calls("chat")[0].json["stream_options"] == {"include_usage": True}
    assert kernel.outcomes() == ["ok"]


def test_tool_calls_sharing_index_zero_are_told_apart_by_id(server: FakeOpenAI, chat: OpenAIChat, kernel) -> None:
    server.script(
        Reply(
            None,
            repeat_index=True,
            tool_calls=[
                {"id": "a", "name": "f", "arguments": '{"n": 1}'},
                {"id": "b", "name": "g", "arguments": '{"n": 2}'},
            ],
        )
    )
    stream = kernel.llm(chat).stream([Message("user", "go")], tools=[Tool("f"), Tool("g")])
    stream.text()
    assert stream.response.tool_calls == (ToolCall("a", "f", '{"n": 1}'), ToolCall("b", "g", '{"n": 2}'))


def test_without_usage_in_the_stream_the_kernel_estimates_it(
    server: FakeOpenAI, chat_config: ChatConfig, kernel
) -> None:
    provider = OpenAIChat(attrs.evolve(chat_config, stream_usage=False))
    server.script(Reply("three words here"))
    stream = kernel.llm(provider).stream([Message("user", "say three words")])
    assert stream.text() == "three words here"
    assert "stream_options" not in server.calls("chat")[0].json
    assert stream.response.usage.estimated and stream.response.usage.output_tokens == 3
    provider.close()


def test_a_cut_stream_raises_with_usage_estimated_from_what_arrived(
    server: FakeOpenAI, chat: OpenAIChat, kernel
) -> None:
    server.script(Reply("alpha beta gamma delta epsilon", chunk_chars=6, cut_after=3))
    stream = kernel.llm(chat).stream([Message("user", "five words please")])
    got = []
    with pytest.raises(Exception) as info:
        for chunk in stream:
            got.append(chunk.content)
    assert "".join(got) == "alpha beta g"
    assert info.value.kind == "provider_error" and info.value.usage.estimated
    assert info.value.usage.output_tokens == 3  # "alpha beta g" by the word tokenizer
    [record] = kernel.store.spend()
    assert record.outcome == "provider_error" and record.output_tokens == 3 and record.cost is not None
    assert len(server.calls("chat")) == 1  # text was delivered: not retried


def test_a_failure_before_the_first_chunk_is_retried_by_the_kernel(
    server: FakeOpenAI, chat: OpenAIChat, kernel
) -> None:
    server.script(
        Fault.openai(429, "slow down", type="requests", headers={"Retry-After": "0.25"}),
        Reply("second time lucky", cut_after=0),
        Reply("third"),
    )
    stream = kernel.llm(chat).stream([Message("user", "hi")])
    assert stream.text() == "third"
    assert kernel.outcomes() == ["rate_limited", "provider_error", "ok"]
    assert kernel.sleeps[0] >= 0.25


def test_capabilities_come_from_the_table_or_the_config(chat_config: ChatConfig) -> None:
    provider = OpenAIChat(attrs.evolve(chat_config, context_window=8192, max_output_tokens=1024, tools=False))
    known = provider.capabilities("gpt-4o-2024-08-06")
    assert (known.context_window, known.max_output_tokens, known.tools) == (128_000, 16_384, False)
    local = provider.capabilities("llama-3.1-8b-instruct")
    assert (local.context_window, local.max_output_tokens, local.json_schema) == (8192, 1024, True)
    assert provider.capabilities("gpt-3.5-turbo").json_schema is False
    provider.close()


def test_prices_come_from_the_table_with_overrides_and_snapshots(chat_config: ChatConfig) -> None:
    provider = OpenAIChat(
        attrs.evolve(chat_config, prices={"llama3": {"input": 0, "output": 0}, "gpt-4o": {"input": 1.0, "output": 2.0}})
    )
    from cairn.providers import Price, match_model

    assert match_model(provider.prices, "llama3") == Price(0.0, 0.0)
    assert match_model(provider.prices, "gpt-4o-2024-11-20") == Price(1.0, 2.0)
    assert match_model(provider.prices, "gpt-4o-mini").input == 0.15
    assert match_model(provider.prices, "mistral") is None
    provider.close()


def test_the_argument_after_a_colon_picks_the_model(chat_config: ChatConfig) -> None:
    from cairn_openai.plugin import _chat

    class Context:
        name, argument = "openai", "gpt-4.1-mini"

    provider = _chat(chat_config, Context())
    assert provider.default_model == "gpt-4.1-mini"
    provider.close()


# -- the wire format, piece by piece ------------------------------------------------------------


def test_sse_data_joins_lines_and_skips_comments() -> None:
    lines = [": keep-alive", "", "event: message", 'data: {"a":', "data: 1}", "", "data:[DONE]", ""]
    assert list(sse_data(lines)) == ['{"a":\n1}', "[DONE]"]
    assert list(sse_data(["data: tail without blank line"])) == ["tail without blank line"]


def test_chunks_tolerate_what_compatible_servers_send() -> None:
    # vLLM ends with a usage chunk whose choices are null; some servers omit the index of a tool call.
    last = chunk_from_event({"choices": None, "usage": {"prompt_tokens": 3, "completion_tokens": 2}}, "r")
    assert last.usage == Usage(3, 2) and last.content == "" and last.request_id == "r"
    chunk = chunk_from_event({"choices": [{"delta": {"tool_calls": [{"function": {"arguments": "{}"}}]}}]}, None)
    assert chunk.tool_calls[0].index == 0 and chunk.tool_calls[0].arguments == "{}"
    assert usage_from(
        {"prompt_tokens": 5, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 9}}
    ) == Usage(5, 1, cache_read_tokens=5)  # never more cached than prompt tokens
    assert usage_from(None) is None and usage_from({"prompt_tokens": "many"}) == Usage()


def test_the_key_is_read_when_needed_never_stored(chat: OpenAIChat, monkeypatch: pytest.MonkeyPatch) -> None:
    assert KEY not in json.dumps(attrs.asdict(chat.config))
    monkeypatch.setenv(KEY_ENV, "sk-rotated-key-000")
    assert chat.connection.headers()["Authorization"] == "Bearer sk-rotated-key-000"
