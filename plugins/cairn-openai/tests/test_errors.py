"""Every failure the OpenAI API (and its imitators) can answer, mapped to cairn's taxonomy over real HTTP."""

from __future__ import annotations

import logging
import socket

import attrs
import pytest
from cairn_openai.chat import OpenAIChat
from cairn_openai.config import ChatConfig
from cairn_openai.embeddings import OpenAIEmbeddings
from cairn_openai.wire import error_from_payload
from openai_testkit import KEY, KEY_ENV

from cairn.providers import ERROR_KINDS, ChatRequest, ProviderError
from cairn.testing.fake_openai import FakeOpenAI, Fault, Reply, Stall
from cairn.testing.provider_suite import CANARY_PROMPT, PROMPT_WORDS, assert_absent

REQUEST = ChatRequest([{"role": "user", "content": CANARY_PROMPT}], model="gpt-4o-mini")


def err(status: int, message: str = "something went wrong", **fields: object) -> Fault:
    return Fault.openai(status, message, **fields)  # type: ignore[arg-type]


CASES = [
    # (fault, kind, retryable, retry_after_s)
    (err(400, "Invalid value: 'temperature'", param="temperature"), "invalid_request", False, None),
    (
        err(
            400,
            "This model's maximum context length is 16385 tokens. However, your messages resulted in 20000 tokens.",
            code="context_length_exceeded",
            param="messages",
        ),
        "context_window_exceeded",
        False,
        None,
    ),
    # vLLM: no code, only the message.
    (
        Fault(
            400,
            {
                "object": "error",
                "message": "This model's maximum context length is 4096 tokens. However, you "
                "requested 5000 tokens (4000 in the messages, 1000 in the completion).",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
        ),
        "context_window_exceeded",
        False,
        None,
    ),
    # llama.cpp's server.
    (
        Fault(
            400,
            {
                "error": {
                    "code": 400,
                    "message": "the request exceeds the available context size, try increasing it",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": 5000,
                    "n_ctx": 4096,
                }
            },
        ),
        "context_window_exceeded",
        False,
        None,
    ),
    (
        err(400, "Your request was rejected by the content filter.", code="content_filter"),
        "content_filtered",
        False,
        None,
    ),
    (err(401, "Incorrect API key provided.", code="invalid_api_key"), "auth_failed", False, None),
    (
        err(
            403,
            "Country, region, or territory not supported",
            type="request_forbidden",
            code="unsupported_country_region_territory",
        ),
        "auth_failed",
        False,
        None,
    ),
    (
        err(404, "The model `gpt-9` does not exist or you do not have access to it.", code="model_not_found"),
        "misconfigured",
        False,
        None,
    ),
    (err(408, "Request timed out."), "timeout", True, None),
    (err(409, "Conflict"), "provider_error", True, None),
    (Fault(413, "<html><body>413 Request Entity Too Large</body></html>"), "invalid_request", False, None),
    (err(422, "Unprocessable"), "invalid_request", False, None),
    (
        err(
            429,
            "Rate limit reached for gpt-4o-mini on requests per min (RPM).",
            type="requests",
            code="rate_limit_exceeded",
            headers={"Retry-After": "7"},
        ),
        "rate_limited",
        True,
        7.0,
    ),
    (
        err(429, "Rate limit reached.", type="tokens", code="rate_limit_exceeded", headers={"retry-after-ms": "1500"}),
        "rate_limited",
        True,
        1.5,
    ),
    (err(429, "Rate limit reached.", type="requests", code="rate_limit_exceeded"), "rate_limited", True, None),
    (
        err(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            type="insufficient_quota",
            code="insufficient_quota",
        ),
        "rate_limited",
        False,
        None,
    ),
    (
        err(500, "The server had an error while processing your request.", type="server_error"),
        "provider_error",
        True,
        None,
    ),
    (Fault(502, "<html>Bad gateway</html>"), "provider_error", True, None),
    (
        err(503, "The engine is currently overloaded.", type="server_error", headers={"Retry-After": "2"}),
        "provider_error",
        True,
        2.0,
    ),
    (err(504, "Gateway timeout"), "timeout", True, None),
    (
        Fault(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        "provider_error",
        True,
        None,
    ),
]


@pytest.mark.parametrize(
    ("fault", "kind", "retryable", "after"), CASES, ids=[f"{c[0].status}-{c[1]}-{i}" for i, c in enumerate(CASES)]
)
def test_http_errors_map_to_the_taxonomy(
    server: FakeOpenAI, chat: OpenAIChat, fault: Fault, kind: str, retryable: bool, after: float | None
) -> None:
    server.script(fault)
    with pytest.raises(ProviderError) as info:
        chat.complete(REQUEST)
    error = info.value
    assert isinstance(error, ERROR_KINDS[kind]), f"{fault.status} gave {type(error).__name__}: {error}"
    assert (error.kind, error.retryable, error.retry_after_s, error.status) == (kind, retryable, after, fault.status)
    assert (error.provider, error.model) == ("openai", "gpt-4o-mini")
    assert error.hint
    assert len(server.calls("chat")) == 1  # one request: retrying is the kernel's job


@pytest.mark.parametrize(
    ("fault", "kind", "retryable", "after"),
    CASES[:8] + CASES[12:16],
    ids=[f"{c[0].status}-{c[1]}" for c in CASES[:8] + CASES[12:16]],
)
def test_streamed_calls_map_the_same_way(
    server: FakeOpenAI, chat: OpenAIChat, fault: Fault, kind: str, retryable: bool, after: float | None
) -> None:
    server.script(fault)
    with pytest.raises(ProviderError) as info:
        list(chat.stream(REQUEST))
    assert (info.value.kind, info.value.retryable, info.value.retry_after_s) == (kind, retryable, after)


def test_embeddings_map_errors_too(server: FakeOpenAI, embedder: OpenAIEmbeddings) -> None:
    from cairn.providers import EmbeddingRequest

    server.script(err(400, "Input too long", code="context_length_exceeded"), endpoint="embeddings")
    with pytest.raises(ProviderError) as info:
        embedder.embed(EmbeddingRequest(["x"], "text-embedding-3-small"))
    assert info.value.kind == "context_window_exceeded"


def test_a_non_json_error_body_is_never_quoted(server: FakeOpenAI, chat: OpenAIChat) -> None:
    server.script(Fault(502, f"<html>upstream said: {CANARY_PROMPT} key={KEY}</html>"))
    with pytest.raises(ProviderError) as info:
        chat.complete(REQUEST)
    assert "non-JSON body" in info.value.message
    assert_absent([KEY, *PROMPT_WORDS], info.value)


def test_redaction_leaves_the_model_name_and_cairns_own_words_alone(server: FakeOpenAI, chat: OpenAIChat) -> None:
    # Reported: the model nope-mini came out as nope-[…], and "a non-JSON body" as "a non-[…]",
    # because the prompt held "minimal" and "JSON". Through the kernel, which redacts again.
    from cairn.providers import LLM, RetryPolicy
    from cairn.testing.fakes import WordTokenizer

    llm = LLM(chat, "openai", tokenizer=WordTokenizer(), policy=RetryPolicy(max_attempts=1), secrets=[KEY])
    prompt = [{"role": "user", "content": "Answer in JSON and keep it minimal"}]
    server.script(Fault(502, "<html>bad gateway</html>"))
    with pytest.raises(ProviderError) as info:
        llm.complete(prompt, model="nope-mini")
    assert "(a non-JSON body of" in info.value.message
    server.script(
        err(404, "The model `nope-mini` does not exist or you do not have access to it.", code="model_not_found")
    )
    with pytest.raises(ProviderError) as info:
        llm.complete(prompt, model="nope-mini")
    assert "`nope-mini`" in info.value.message and "[…]" not in info.value.message


@pytest.mark.parametrize(
    ("event", "kind", "retryable"),
    [
        (
            {"message": "The server had an error while processing your request.", "type": "server_error"},
            "provider_error",
            True,
        ),
        ({"message": "Rate limit reached", "type": "rate_limit_error"}, "rate_limited", True),
        (
            {
                "message": "maximum context length exceeded",
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
            },
            "context_window_exceeded",
            False,
        ),
        ({"message": "bad parameter", "type": "invalid_request_error"}, "invalid_request", False),
    ],
)
def test_an_error_event_after_http_200_is_a_taxonomy_error(
    server: FakeOpenAI, chat: OpenAIChat, event: dict, kind: str, retryable: bool
) -> None:
    server.script(Reply("partial answer here", error_after=2, error=event))
    got: list[str] = []
    with pytest.raises(ProviderError) as info:
        for chunk in chat.stream(REQUEST):
            got.append(chunk.content)
    assert (info.value.kind, info.value.retryable, info.value.status) == (kind, retryable, None)
    assert "".join(got) == "part"  # the role chunk, then one text piece of 4 characters


def test_a_stall_is_a_retryable_timeout(server: FakeOpenAI, chat_config: ChatConfig) -> None:
    provider = OpenAIChat(attrs.evolve(chat_config, read_timeout_s=0.2))
    server.script(Stall(2.0))
    with pytest.raises(ProviderError) as info:
        provider.complete(REQUEST)
    assert (info.value.kind, info.value.retryable) == ("timeout", True)
    assert "read_timeout_s" in info.value.hint and "0.2 s" in info.value.message
    provider.close()


def test_a_stall_mid_stream_is_a_timeout_too(server: FakeOpenAI, chat_config: ChatConfig) -> None:
    provider = OpenAIChat(attrs.evolve(chat_config, read_timeout_s=0.2))
    server.script(Reply("slow words arrive", chunk_delay_s=0.5))
    with pytest.raises(ProviderError) as info:
        list(provider.stream(REQUEST))
    assert info.value.kind == "timeout"
    provider.close()


def test_nobody_listening_is_a_retryable_provider_error() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = OpenAIChat(ChatConfig(base_url=f"http://127.0.0.1:{port}/v1", api_key_env=""))
    with pytest.raises(ProviderError) as info:
        provider.complete(REQUEST)
    assert (info.value.kind, info.value.retryable) == ("provider_error", True)
    assert "cannot connect" in info.value.message
    provider.close()


def test_a_stream_cut_mid_way_is_a_retryable_provider_error(server: FakeOpenAI, chat: OpenAIChat) -> None:
    server.script(Reply("this reply will be cut", cut_after=3))
    with pytest.raises(ProviderError) as info:
        list(chat.stream(REQUEST))
    assert (info.value.kind, info.value.retryable) == ("provider_error", True)
    assert "broke off" in info.value.message


def test_finish_reason_content_filter_is_content_filtered(server: FakeOpenAI, chat: OpenAIChat) -> None:
    server.script(Reply(None, finish_reason="content_filter"), Reply("half", finish_reason="content_filter"))
    with pytest.raises(ProviderError) as info:
        chat.complete(REQUEST)
    assert info.value.kind == "content_filtered" and info.value.usage is not None
    with pytest.raises(ProviderError) as info:
        list(chat.stream(REQUEST))
    assert info.value.kind == "content_filtered"


def test_a_missing_key_is_misconfigured_before_any_request(
    server: FakeOpenAI, chat_config: ChatConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    provider = OpenAIChat(chat_config)
    problem = provider.readiness()
    assert problem is not None and problem.kind == "misconfigured" and KEY_ENV in problem.message
    with pytest.raises(ProviderError) as info:
        provider.complete(REQUEST)
    assert info.value.kind == "misconfigured" and server.requests == []
    provider.close()


def test_an_error_sent_with_http_200_is_still_an_error(server: FakeOpenAI, chat: OpenAIChat) -> None:
    server.script(Fault(200, {"error": {"message": "model overloaded", "type": "server_error"}}))
    with pytest.raises(ProviderError) as info:
        chat.complete(REQUEST)
    assert info.value.kind == "provider_error"


def test_errors_echoing_the_key_and_prompt_leak_nowhere(
    server: FakeOpenAI, chat: OpenAIChat, embedder, make_kernel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    kernel = make_kernel(attempts=2)
    echo = f"Bearer {KEY} sent: {CANARY_PROMPT}"
    server.script(
        err(500, echo, type="server_error"),
        err(400, f"bad: {CANARY_PROMPT}; key {KEY[:14]}"),
        *[Reply("fine", error_after=1, error={"message": echo, "type": "server_error"})] * 2,
    )
    server.script(
        err(401, f"Incorrect API key provided: {KEY[:10]}...{KEY[-4:]}", code="invalid_api_key"), endpoint="embeddings"
    )
    llm = kernel.llm(chat)
    errors = []
    for call in (
        lambda: llm.complete(REQUEST),
        lambda: llm.stream(REQUEST).text(),
        lambda: kernel.embedder(embedder).embed([CANARY_PROMPT]),
    ):
        with pytest.raises(ProviderError) as info:
            call()
        errors.append(info.value)
    assert kernel.outcomes() == ["provider_error", "invalid_request", "provider_error", "provider_error", "auth_failed"]
    assert_absent([KEY, KEY[:14], KEY[:10], *PROMPT_WORDS], errors, kernel.events, kernel.store.spend(), caplog.records)


def test_error_payload_shapes_from_other_servers() -> None:
    assert (
        error_from_payload(500, {"error": "plain string error"}, provider="p", model="m").message
        == "p HTTP 500: plain string error"
    )
    assert error_from_payload(400, "not even a dict", provider="p", model="m").kind == "invalid_request"
    assert error_from_payload(418, {}, provider="p", model="m").kind == "invalid_request"


def test_the_plugin_itself_redacts_before_the_kernel_sees_anything(server: FakeOpenAI, chat: OpenAIChat) -> None:
    # Called directly, with no kernel behind it: the plugin's own redaction must hold.
    server.script(
        err(400, f"Invalid request with Authorization: Bearer {KEY}; input was '{CANARY_PROMPT}'"),
        Reply("x", error_after=1, error={"message": f"failed on '{CANARY_PROMPT}' key {KEY}", "type": "server_error"}),
    )
    for call in (lambda: chat.complete(REQUEST), lambda: list(chat.stream(REQUEST))):
        with pytest.raises(ProviderError) as info:
            call()
        assert "Invalid request" in info.value.message or "failed on" in info.value.message
        assert_absent([KEY, *PROMPT_WORDS], info.value)
