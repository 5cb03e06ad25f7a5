"""The provider kernel: taxonomy, redaction, usage and cost, the retry loop, streaming, checks, metering, ceilings."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cairn.config import ProvidersSettings, load_config
from cairn.errors import MissingFacetError
from cairn.errors import ProviderError as RootProviderError
from cairn.events import ALL, EventBus
from cairn.model import Message, ToolCall
from cairn.providers import (
    CALL_EVENT,
    ERROR_KINDS,
    LLM,
    AuthFailedError,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ContextWindowExceededError,
    Embedder,
    EmbeddingCapabilities,
    EmbeddingProvider,
    EmbeddingRequest,
    EmbeddingResponse,
    InvalidRequestError,
    LLMCapabilities,
    LLMProvider,
    Meter,
    Price,
    ProviderMisconfiguredError,
    ProviderTimeoutError,
    RateLimitedError,
    ResponseFormat,
    RetryPolicy,
    SpendCeilingError,
    Tool,
    ToolCallDelta,
    UpstreamError,
    Usage,
    error_for,
    kind_of,
    match_model,
    parse_retry_after,
    redact_text,
    retry_call,
)
from cairn.storage import AnnotationStore, ObjectStore, RefStore, facets_of
from cairn.testing.fakes import WordTokenizer
from cairn.testing.memory import MemoryStore
from cairn.testing.provider_suite import CANARY_PROMPT, PROMPT_WORDS, assert_absent

SECRET = "sk-canary-0123456789abcdef"


# -- a scripted provider ---------------------------------------------------------------------


class Scripted(LLMProvider):
    """Answers from a script: a ChatResponse, an exception, or a list of ChatChunks / exceptions to stream."""

    default_model = "m1"
    prices = {"m1": Price(1.0, 2.0, cached_input=0.5)}

    def __init__(self, *steps: Any, caps: LLMCapabilities | None = None) -> None:
        self.steps = list(steps)
        self.caps = caps or LLMCapabilities(
            streaming=True, tools=True, json_schema=True, context_window=1000, max_output_tokens=100
        )
        self.requests: list[ChatRequest] = []
        self.streamed = 0
        self.closed = 0

    def capabilities(self, model: str) -> LLMCapabilities:
        return self.caps

    def _next(self) -> Any:
        return self.steps.pop(0) if self.steps else ChatResponse("ok", finish_reason="stop", usage=Usage(3, 1))

    def complete(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        step = self._next()
        if isinstance(step, BaseException):
            raise step
        return step

    def stream(self, request: ChatRequest) -> Iterator[ChatChunk]:
        self.requests.append(request)
        self.streamed += 1
        step = self._next()
        if isinstance(step, BaseException):
            raise step
        try:
            for item in step:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.closed += 1


class Rig:
    """An LLM over a scripted provider with an in-memory store, a private bus, a fake clock and recorded sleeps."""

    def __init__(
        self,
        provider: LLMProvider,
        *,
        settings: ProvidersSettings | None = None,
        run_id: str | None = None,
        secrets: tuple[str, ...] = (),
        now: Callable[[], str] | None = None,
    ) -> None:
        self.store = MemoryStore()
        self.bus = EventBus()
        self.events: list[Any] = []
        self.bus.subscribe(ALL, self.events.append)
        self.sleeps: list[float] = []
        self.time = 0.0
        settings = settings or ProvidersSettings()
        self.meter = Meter(self.store, settings=settings, bus=self.bus, run_id=run_id, now=now)
        self.llm = LLM(
            provider,
            "scripted",
            tokenizer=WordTokenizer(),
            meter=self.meter,
            policy=RetryPolicy.from_settings(settings),
            secrets=secrets,
            sleep=self.sleeps.append,
            clock=self.clock,
            rng=lambda: 1.0,
        )

    def clock(self) -> float:
        self.time += 0.001
        return self.time

    def outcomes(self) -> list[str]:
        return [e.payload["outcome"] for e in self.events if e.name == CALL_EVENT]


def ask(text: str = "hello there") -> list[Message]:
    return [Message("system", "be brief"), Message("user", text)]


# -- the taxonomy ----------------------------------------------------------------------------


def test_the_taxonomy_is_exactly_nine_kinds_under_the_kernel_root():
    assert list(ERROR_KINDS) == [
        "disabled",
        "misconfigured",
        "auth_failed",
        "invalid_request",
        "context_window_exceeded",
        "content_filtered",
        "rate_limited",
        "timeout",
        "provider_error",
    ]
    for kind, cls in ERROR_KINDS.items():
        error = cls("x")
        assert isinstance(error, RootProviderError) and error.kind == kind == kind_of(error)
    retryable = {kind for kind, cls in ERROR_KINDS.items() if cls("x").retryable}
    assert retryable == {"rate_limited", "timeout", "provider_error"}
    assert isinstance(SpendCeilingError("x", ceiling="c", limit=1, spent=2), RateLimitedError)
    assert not SpendCeilingError("x", ceiling="c", limit=1, spent=2).retryable


def test_errors_carry_their_facts_and_records_get_no_message():
    error = error_for(
        "rate_limited",
        "slow down, you sent: my secret prompt",
        retry_after_s=2.5,
        status=429,
        provider="p",
        model="m",
        request_id="req_1",
        code="rate_limit_exceeded",
    )
    assert isinstance(error, RateLimitedError)
    assert (error.retry_after_s, error.status, error.provider, error.model, error.request_id) == (
        2.5,
        429,
        "p",
        "m",
        "req_1",
    )
    assert str(error) == "[rate_limited] slow down, you sent: my secret prompt"
    facts = error.facts()
    assert "secret" not in json.dumps(facts) and facts["kind"] == "rate_limited" and facts["status"] == 429
    with pytest.raises(ValueError, match="not a provider error kind"):
        error_for("oops", "x")
    # A code is an identifier; free text there is dropped, since it could echo anything.
    assert error_for("invalid_request", "x", code="this has spaces and could be a prompt").code is None
    assert kind_of(KeyError("x")) == "provider_error"


# -- redaction -------------------------------------------------------------------------------


def test_redaction_removes_keys_auth_headers_and_echoed_prompt_words():
    text = (
        f"Invalid request. Authorization: Bearer {SECRET}; api_key={SECRET}; from https://bob:hunter2@proxy/v1 "
        f"your prompt began: 'zebracanary7f3a9q mauvepelican0x41 the secret plan'"
    )
    out = redact_text(text, secrets=[SECRET], bodies=[CANARY_PROMPT])
    assert_absent([SECRET, *PROMPT_WORDS, "hunter2", "bob:"], out)
    assert "Invalid request" in out and "[…]" in out


def test_redaction_catches_a_prompt_cut_mid_word_and_caps_length():
    out = redact_text("prompt: zebracanar… (truncated) …ryzebracanary", bodies=["hello zebracanaryzebracanary"])
    assert "zebracanar" not in out and "ryzebracanary" not in out
    assert len(redact_text("x" * 5000)) <= 300


# Letters the template below never uses, so any of them in the output came from the echo.
_ECHO_ALPHABET = "0123456789xzjJXZ"


@settings(max_examples=80, deadline=None)
@given(
    words=st.lists(st.text(alphabet=_ECHO_ALPHABET, min_size=4, max_size=12), min_size=1, max_size=8),
    secret=st.text(alphabet=_ECHO_ALPHABET + "-", min_size=8, max_size=40),
    cut=st.integers(min_value=0, max_value=200),
)
def test_redaction_never_returns_a_prompt_word_or_a_piece_of_the_secret(words: list[str], secret: str, cut: int):
    import re

    prompt = " ".join(words)
    # A gateway echoing the key and the prompt, cut anywhere (even mid-key, mid-word).
    echoed = f"Error processing request with key {secret}: the input '{prompt}'"[: 34 + cut]
    out = redact_text(echoed, secrets=[secret], bodies=[prompt])
    assert secret not in out
    for word in words:
        assert word.lower() not in out.lower()
    for piece in re.findall(r"\w{4,}", secret):
        assert piece[:4] not in out, f"a piece of the key survived: {out!r}"


def test_redaction_keeps_model_names_and_ordinary_words_that_the_prompt_also_holds():
    # Both were reported: a model name became nope-[…], and cairn's own words became a non-[…].
    prompt = ["Answer in JSON, keep it minimal", "mini summary please"]
    assert redact_text("model 'nope-mini' does not exist", bodies=prompt) == "model 'nope-mini' does not exist"
    assert (
        redact_text("HTTP 502 (a non-JSON body of 9 bytes)", bodies=prompt) == "HTTP 502 (a non-JSON body of 9 bytes)"
    )
    # At the very end a word may be an echo cut short; the model's own name is never one.
    assert redact_text("model not found: nope-mini", bodies=prompt, keep=["nope-mini"]) == (
        "model not found: nope-mini"
    )
    # Echoes are still caught: a row of prompt words, a word where the text was cut, a one-word prompt.
    assert "[…]" in redact_text("you said: answer in json, keep it", bodies=prompt)
    assert redact_text("Invalid prompt 'zx90q' (code 400)", bodies=["zx90q"]) == "Invalid prompt '[…]' (code 400)"


def test_the_kernel_keeps_the_model_name_in_a_provider_error():
    error = InvalidRequestError("the model does not exist: nope-mini", model="nope-mini", provider="scripted")
    rig = Rig(Scripted(error))
    with pytest.raises(InvalidRequestError) as info:
        rig.llm.complete(ask("write a minimal mini poem"), model="nope-mini")
    assert info.value.message == "the model does not exist: nope-mini"


_WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=4, max_size=10)


@settings(max_examples=200, deadline=None)
@given(shared=_WORDS, others=st.lists(_WORDS, min_size=1, max_size=6), model=_WORDS)
def test_one_ordinary_word_shared_with_the_prompt_is_not_an_echo(shared: str, others: list[str], model: str):
    prompt = " ".join([*others, shared, *others])
    assume(any(o != shared for o in others))
    text = f"model '{model}-mini' refused: {shared} is not supported here."
    out = redact_text(text, bodies=[prompt], keep=[f"{model}-mini"])
    assert out == text


# -- usage, prices and model tables ---------------------------------------------------------


def test_usage_totals_sums_and_validation():
    usage = Usage(10, 5, cache_read_tokens=4, reasoning_tokens=2)
    assert usage.total_tokens == 15
    both = usage + Usage(1, 1, estimated=True)
    assert (both.input_tokens, both.output_tokens, both.cache_read_tokens, both.estimated) == (11, 6, 4, True)
    assert usage.to_dict()["total_tokens"] == 15
    with pytest.raises(Exception, match="non-negative"):
        Usage(-1)


def test_price_counts_cached_input_at_its_own_price_and_unknown_is_none():
    price = Price(2.0, 8.0, cached_input=0.5)
    assert price.cost(Usage(1_000_000, 0)) == pytest.approx(2.0)
    assert price.cost(Usage(1_000_000, 1_000_000, cache_read_tokens=500_000)) == pytest.approx(1.0 + 0.25 + 8.0)
    assert Price(1.0).cost(Usage(1_000_000, 0, cache_read_tokens=1_000_000)) == pytest.approx(1.0)
    assert Price(1).input == 1.0 and isinstance(Price(1).input, float)
    with pytest.raises(ValueError):
        Price(-1.0)


def test_match_model_takes_dated_snapshots_but_never_a_mere_prefix():
    table = {"gpt-4o": 1, "gpt-4o-mini": 2, "gpt-3.5-turbo": 3}
    assert match_model(table, "gpt-4o") == 1
    assert match_model(table, "gpt-4o-2024-08-06") == 1
    assert match_model(table, "gpt-4o-mini-2024-07-18") == 2
    assert match_model(table, "gpt-3.5-turbo-0125") == 3
    assert match_model({"gpt-4o": 1}, "gpt-4o-mini") is None
    assert match_model(table, "llama3") is None


# -- requests ----------------------------------------------------------------------------------


def test_chat_requests_take_openai_dicts_and_validate():
    request = ChatRequest(
        [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "content": "42", "tool_call_id": "c1"},
        ],
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        tool_choice="f",
        stop="END",
    )
    assert request.messages[1].content == "hi there"
    assert request.messages[2].tool_calls == (ToolCall("c1", "f", "{}"),)
    assert request.tools[0].name == "f" and request.stop == ("END",)
    with pytest.raises(Exception, match="tool_choice"):
        ChatRequest(ask(), tool_choice="nope")
    with pytest.raises(Exception, match="at least one message"):
        ChatRequest([])
    with pytest.raises(Exception, match="only text content"):
        ChatRequest([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])
    with pytest.raises(Exception, match="metadata must be JSON"):
        ChatRequest(ask(), metadata={"x": object()})
    with pytest.raises(Exception, match="needs a schema"):
        ResponseFormat("json_schema")


# -- the retry loop ----------------------------------------------------------------------------


def failing(*errors: BaseException, result: str = "done") -> Callable[[int], str]:
    queue = list(errors)

    def attempt(number: int) -> str:
        if queue:
            raise queue.pop(0)
        return result

    return attempt


def test_backoff_is_full_jitter_doubling_up_to_the_cap():
    policy = RetryPolicy(max_attempts=10, backoff_initial_s=0.5, backoff_max_s=3.0)
    error = UpstreamError("x")
    assert [policy.delay(n, error, 0.0, lambda: 1.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.delay(4, error, 0.0, lambda: 0.0) == 0.0
    assert policy.delay(3, error, 0.0, lambda: 0.25) == pytest.approx(0.5)


def test_retry_call_retries_retryable_errors_then_succeeds():
    sleeps: list[float] = []
    result = retry_call(
        failing(UpstreamError("a"), ProviderTimeoutError("b")),
        RetryPolicy(max_attempts=3),
        sleep=sleeps.append,
        rng=lambda: 1.0,
    )
    assert result == "done" and sleeps == [0.5, 1.0]


def test_retry_call_gives_up_after_max_attempts_and_says_so():
    sleeps: list[float] = []
    with pytest.raises(UpstreamError) as info:
        retry_call(
            failing(*[UpstreamError("down")] * 5), RetryPolicy(max_attempts=3), sleep=sleeps.append, rng=lambda: 0.0
        )
    assert info.value.attempts == 3 and len(sleeps) == 2
    assert "gave up after 3 attempts" in info.value.hint


def test_retry_call_never_retries_a_non_retryable_error():
    sleeps: list[float] = []
    with pytest.raises(AuthFailedError) as info:
        retry_call(failing(AuthFailedError("no")), RetryPolicy(max_attempts=5), sleep=sleeps.append)
    assert sleeps == [] and info.value.attempts == 1
    quota = RateLimitedError("quota", retryable=False)
    with pytest.raises(RateLimitedError):
        retry_call(failing(quota), RetryPolicy(max_attempts=5), sleep=sleeps.append)
    assert sleeps == []


def test_retry_after_is_honoured_as_a_floor_and_too_long_gives_up():
    sleeps: list[float] = []
    retry_call(
        failing(RateLimitedError("slow", retry_after_s=7.0)),
        RetryPolicy(max_retry_after_s=10),
        sleep=sleeps.append,
        rng=lambda: 1.0,
    )
    assert sleeps == [7.0]
    sleeps.clear()
    with pytest.raises(RateLimitedError) as info:
        retry_call(
            failing(RateLimitedError("slow", retry_after_s=120.0)),
            RetryPolicy(max_retry_after_s=60),
            sleep=sleeps.append,
        )
    assert sleeps == [] and "asked to wait 120 s" in info.value.hint


def test_the_deadline_stops_retrying():
    now = [0.0]

    def clock() -> float:
        return now[0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def attempt(number: int) -> str:
        now[0] += 4.0  # each attempt takes 4 s
        raise UpstreamError("down")

    with pytest.raises(UpstreamError) as info:
        retry_call(
            attempt,
            RetryPolicy(max_attempts=100, backoff_initial_s=1, backoff_max_s=1, deadline_s=10),
            sleep=sleep,
            clock=clock,
            rng=lambda: 1.0,
        )
    assert info.value.attempts == 2 and "call_deadline_s" in info.value.hint


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT"}, 30.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-4"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict, expected: float | None):
    now = lambda: dt.datetime(2026, 10, 21, 7, 28, 0, tzinfo=dt.timezone.utc)  # noqa: E731
    assert parse_retry_after(headers, now=now) == expected


# -- whole calls through the kernel ----------------------------------------------------------------


def test_a_whole_call_is_priced_recorded_and_returned():
    provider = Scripted(
        ChatResponse("hi", finish_reason="stop", usage=Usage(1000, 500, cache_read_tokens=200), request_id="r1")
    )
    rig = Rig(provider)
    response = rig.llm.complete(ask(), metadata={"task": "greeting"})
    assert response.content == "hi" and response.provider == "scripted" and response.model == "m1"
    assert response.cost == pytest.approx((800 * 1.0 + 200 * 0.5 + 500 * 2.0) / 1e6)
    assert response.latency_s > 0
    [event] = rig.events
    payload = event.payload
    assert payload["outcome"] == "ok" and payload["messages"] == 2 and payload["roles"] == {"system": 1, "user": 1}
    assert payload["characters"] == len("be brief") + len("hello there")
    assert payload["usage"]["cache_read_tokens"] == 200 and payload["metadata"] == {"task": "greeting"}
    assert payload["request_id"] == "r1" and payload["sent"] is True
    [record] = rig.store.spend()
    assert (record.provider, record.model, record.outcome, record.calls, record.input_tokens, record.output_tokens) == (
        "scripted",
        "m1",
        "ok",
        1,
        1000,
        500,
    )
    assert record.cost == pytest.approx(response.cost)


def test_usage_is_estimated_with_the_tokenizer_when_the_provider_reports_none():
    rig = Rig(Scripted(ChatResponse("one two three", finish_reason="stop")))
    response = rig.llm.complete(ask("a b c d"))
    words = WordTokenizer()
    assert response.usage == Usage(words.count_messages(ask("a b c d")), 3, estimated=True)
    assert rig.events[0].payload["usage"]["estimated"] is True


def test_an_unknown_price_costs_none_never_zero():
    provider = Scripted(ChatResponse("hi", finish_reason="stop", usage=Usage(10, 10)))
    provider.prices = {}
    rig = Rig(provider)
    assert rig.llm.complete(ask()).cost is None
    assert rig.store.spend()[0].cost is None


def test_retries_record_every_attempt_and_sleep_between_them():
    provider = Scripted(
        RateLimitedError("slow", retry_after_s=2.0),
        UpstreamError("boom"),
        ChatResponse("finally", finish_reason="stop", usage=Usage(1, 1)),
    )
    rig = Rig(provider)
    assert rig.llm.complete(ask()).content == "finally"
    assert rig.outcomes() == ["rate_limited", "provider_error", "ok"]
    assert [e.payload["attempt"] for e in rig.events] == [1, 2, 3]
    assert rig.sleeps == [2.0, 1.0]  # Retry-After 2 s, then full jitter at rng=1: 0.5 * 2
    assert [r.outcome for r in rig.store.spend()] == ["rate_limited", "provider_error", "ok"]


def test_giving_up_raises_the_last_error_with_its_attempts():
    rig = Rig(Scripted(*[UpstreamError("down")] * 3), settings=ProvidersSettings(max_attempts=3))
    with pytest.raises(UpstreamError) as info:
        rig.llm.complete(ask())
    assert info.value.attempts == 3 and rig.outcomes() == ["provider_error"] * 3
    assert rig.store.spend()[0].cost is None  # a server failure may or may not have been billed


def test_a_plugin_bug_becomes_a_provider_error_without_its_text():
    rig = Rig(Scripted(KeyError(CANARY_PROMPT)))
    with pytest.raises(UpstreamError) as info:
        rig.llm.complete(ask(CANARY_PROMPT))
    assert "KeyError" in info.value.message and info.value.__cause__ is None
    assert_absent(PROMPT_WORDS, info.value, rig.events, rig.store.spend())


def test_the_kernel_redacts_provider_errors_again(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    leaky = InvalidRequestError(f"bad request from key {SECRET}: '{CANARY_PROMPT}'", hint=f"prompt was {CANARY_PROMPT}")
    rig = Rig(Scripted(leaky), secrets=(SECRET,))
    with pytest.raises(InvalidRequestError) as info:
        rig.llm.complete(ask(CANARY_PROMPT))
    assert "bad request from key" in info.value.message
    assert_absent([SECRET, *PROMPT_WORDS], info.value, rig.events, rig.store.spend(), caplog.records)


# -- capability checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caps", "options", "error", "words"),
    [
        (LLMCapabilities(tools=False), {"tools": [Tool("f")]}, InvalidRequestError, "does not support tools"),
        (
            LLMCapabilities(json_schema=False),
            {"response_format": ResponseFormat.json_schema({"type": "object"})},
            InvalidRequestError,
            "JSON-schema",
        ),
        (LLMCapabilities(max_output_tokens=10), {"max_output_tokens": 11}, InvalidRequestError, "over"),
        (LLMCapabilities(context_window=20), {}, ContextWindowExceededError, "context window of 20"),
        (LLMCapabilities(context_window=60), {"max_output_tokens": 30}, ContextWindowExceededError, "reserved"),
    ],
)
def test_requests_the_model_cannot_take_fail_locally(caps, options, error, words):
    provider = Scripted(caps=caps)
    rig = Rig(provider)
    long_text = " ".join(["word"] * 30)  # 30 words: 42 tokens with the message overhead
    with pytest.raises(error, match=words) as info:
        rig.llm.complete(ask(long_text), **options)
    assert provider.requests == [], "the provider must not be called"
    assert info.value.retryable is False
    [event] = rig.events
    assert event.payload["sent"] is False and event.payload["outcome"] == error.kind
    [record] = rig.store.spend()
    assert record.calls == 0 and record.cost == 0.0


def test_a_request_that_fits_goes_through_without_counting_tokens():
    tokenizer = WordTokenizer()
    provider = Scripted(caps=LLMCapabilities(context_window=100_000))
    llm = LLM(provider, "scripted", tokenizer=tokenizer, meter=Meter(MemoryStore(), bus=EventBus()))
    llm.complete(ask("short"))
    assert tokenizer.calls == 0  # the byte bound proved it fits


def test_no_model_anywhere_is_misconfigured():
    provider = Scripted()
    provider.default_model = ""
    with pytest.raises(ProviderMisconfiguredError, match="no model"):
        Rig(provider).llm.complete(ask())


# -- streaming -----------------------------------------------------------------------------------


def test_streams_assemble_text_tool_calls_by_index_and_usage_from_the_last_chunk():
    chunks = [
        ChatChunk("Hel", model="m1-2026", request_id="r9"),
        ChatChunk("lo"),
        ChatChunk(tool_calls=(ToolCallDelta(0, "call_a", "get_time", '{"ci'),)),
        ChatChunk(tool_calls=(ToolCallDelta(1, "call_b", "get_date", ""),)),
        ChatChunk(tool_calls=(ToolCallDelta(0, None, None, 'ty": "Oslo"}'), ToolCallDelta(1, None, None, "{}"))),
        ChatChunk(finish_reason="tool_calls"),
        ChatChunk(usage=Usage(12, 7, cache_read_tokens=4, reasoning_tokens=3)),
    ]
    rig = Rig(Scripted(chunks))
    stream = rig.llm.stream(ask())
    got = list(stream)
    assert "".join(c.content for c in got) == "Hello"
    response = stream.response
    assert response.content == "Hello" and response.finish_reason == "tool_calls"
    assert response.tool_calls == (
        ToolCall("call_a", "get_time", '{"city": "Oslo"}'),
        ToolCall("call_b", "get_date", "{}"),
    )
    assert response.usage == Usage(12, 7, cache_read_tokens=4, reasoning_tokens=3)
    assert response.model == "m1-2026" and response.request_id == "r9"
    assert rig.outcomes() == ["ok"] and rig.events[0].payload["operation"] == "stream"


def test_a_new_id_at_a_reused_index_starts_a_new_tool_call():
    chunks = [
        ChatChunk(tool_calls=(ToolCallDelta(0, "a", "f", '{"x": 1}'),)),
        ChatChunk(tool_calls=(ToolCallDelta(0, "b", "g", '{"y": 2}'),)),
        ChatChunk(finish_reason="tool_calls", usage=Usage(1, 1)),
    ]
    rig = Rig(Scripted(chunks))
    stream = rig.llm.stream(ask())
    stream.text()
    assert stream.response.tool_calls == (ToolCall("a", "f", '{"x": 1}'), ToolCall("b", "g", '{"y": 2}'))
    assert stream.response.content is None


def test_a_stream_cut_after_text_raises_with_estimated_usage_and_is_not_retried():
    cut = UpstreamError("connection closed mid-stream")
    rig = Rig(Scripted([ChatChunk("one two "), ChatChunk("three"), cut], ChatResponse("never")))
    stream = rig.llm.stream(ask("a b"))
    seen: list[str] = []
    with pytest.raises(UpstreamError) as info:
        for chunk in stream:
            seen.append(chunk.content)
    assert seen == ["one two ", "three"]
    assert info.value.usage == Usage(WordTokenizer().count_messages(ask("a b")), 3, estimated=True)
    assert "not retried" in info.value.hint
    assert rig.outcomes() == ["provider_error"]
    assert rig.store.spend()[0].output_tokens == 3 and rig.store.spend()[0].cost is not None


def test_a_stream_failing_before_its_first_chunk_is_retried():
    provider = Scripted(
        RateLimitedError("slow"),
        [UpstreamError("reset")],
        [ChatChunk("fine"), ChatChunk(finish_reason="stop", usage=Usage(2, 1))],
    )
    rig = Rig(provider)
    assert rig.llm.stream(ask()).text() == "fine"
    assert rig.outcomes() == ["rate_limited", "provider_error", "ok"]
    assert len(rig.sleeps) == 2


def test_a_stream_that_ends_without_a_reply_is_an_error():
    rig = Rig(Scripted([], []), settings=ProvidersSettings(max_attempts=2))
    with pytest.raises(UpstreamError, match="ended without a reply"):
        rig.llm.stream(ask()).text()
    assert rig.outcomes() == ["provider_error", "provider_error"]


def test_closing_a_stream_early_records_a_cancelled_call_and_closes_the_provider():
    provider = Scripted([ChatChunk("a "), ChatChunk("b "), ChatChunk("c", finish_reason="stop")])
    rig = Rig(provider)
    with rig.llm.stream(ask()) as stream:
        next(stream)
    assert provider.closed == 1
    assert rig.outcomes() == ["cancelled"]
    assert rig.events[0].payload["usage"]["estimated"] is True


def test_a_model_without_streaming_is_called_whole_and_delivered_as_one_chunk():
    provider = Scripted(
        ChatResponse("whole reply", finish_reason="stop", usage=Usage(1, 2)), caps=LLMCapabilities(streaming=False)
    )
    rig = Rig(provider)
    stream = rig.llm.stream(ask())
    assert [c.content for c in stream] == ["whole reply"]
    assert provider.streamed == 0 and stream.response.usage == Usage(1, 2)


# -- metering and spend ceilings -----------------------------------------------------------------


def fixed_now(value: str) -> Callable[[], str]:
    return lambda: value


def test_the_daily_ceiling_counts_today_only_and_names_itself():
    settings = ProvidersSettings(max_spend_per_day=0.01)
    response = ChatResponse("x", finish_reason="stop", usage=Usage(0, 3000))  # 3000 output tokens at 2.0/M = 0.006
    rig = Rig(Scripted(response, response, response), settings=settings, now=fixed_now("2026-03-01T12:00:00.000000Z"))
    rig.store.add_spend([rig_record("2026-02-28T23:59:59.000000Z", 5.0)])  # yesterday: not counted
    rig.llm.complete(ask())
    rig.llm.complete(ask())
    with pytest.raises(SpendCeilingError) as info:
        rig.llm.complete(ask())
    error = info.value
    assert error.ceiling == "max_spend_per_day" and error.limit == 0.01 and error.spent == pytest.approx(0.012)
    assert "max_spend_per_day = 0.01" in error.message and "0.012000 spent today" in error.message
    assert "00:00 UTC" in error.hint and error.kind == "rate_limited" and not error.retryable
    assert rig.outcomes() == ["ok", "ok", "rate_limited"]
    assert rig.store.spend()[-1].calls == 0


def rig_record(ts: str, cost: float, run_id: str | None = None):
    from cairn.model.ledger import SpendRecord

    return SpendRecord(ts=ts, provider="scripted", model="m1", outcome="ok", cost=cost, run_id=run_id)


def test_the_run_ceiling_counts_the_run_in_the_store_or_the_session():
    settings = ProvidersSettings(max_spend_per_run=0.001)
    rig = Rig(Scripted(), settings=settings, run_id="run-1")
    rig.store.add_spend([rig_record("2026-01-01T00:00:00.000000Z", 0.002, run_id="run-0")])  # another run
    rig.llm.complete(ask())
    rig.store.add_spend([rig_record("2026-01-01T00:00:00.000000Z", 0.002, run_id="run-1")])
    with pytest.raises(SpendCeilingError, match="max_spend_per_run") as info:
        rig.llm.complete(ask())
    assert "in this run" in info.value.message and "new run" in info.value.hint

    session = Rig(Scripted(ChatResponse("x", finish_reason="stop", usage=Usage(0, 1000))), settings=settings)
    session.llm.complete(ask())  # 0.002 in this process
    with pytest.raises(SpendCeilingError):
        session.llm.complete(ask())


def test_a_ceiling_counts_the_input_the_next_call_will_cost():
    settings = ProvidersSettings(max_spend_per_run=0.00001)
    rig = Rig(Scripted(), settings=settings)
    with pytest.raises(SpendCeilingError, match="this call's input costs"):
        rig.llm.complete(ask(" ".join(["w"] * 20)))


def test_a_ceiling_with_an_unknown_price_refuses_rather_than_guess():
    provider = Scripted()
    provider.prices = {}
    rig = Rig(provider, settings=ProvidersSettings(max_spend_per_day=1.0))
    with pytest.raises(ProviderMisconfiguredError, match="price of scripted model 'm1' is unknown") as info:
        rig.llm.complete(ask())
    assert 'prices."m1"' in info.value.hint and provider.requests == []


def test_events_and_records_never_hold_bodies_keys_or_error_text(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    errors = [RateLimitedError(f"limit for {SECRET} on '{CANARY_PROMPT}'"), ChatResponse("ok", finish_reason="stop")]
    rig = Rig(Scripted(*errors), secrets=(SECRET,))
    rig.llm.complete(ask(CANARY_PROMPT))
    failure = Rig(Scripted(AuthFailedError(f"key {SECRET} refused")), secrets=(SECRET,))
    with pytest.raises(AuthFailedError) as info:
        failure.llm.complete(ask(CANARY_PROMPT))
    assert_absent(
        [SECRET, *PROMPT_WORDS],
        rig.events,
        rig.store.spend(),
        failure.events,
        failure.store.spend(),
        info.value,
        caplog.records,
    )
    assert all("message" not in (e.payload.get("error") or {}) for e in rig.events + failure.events)


# -- embeddings -------------------------------------------------------------------------------------


class Vectors(EmbeddingProvider):
    default_model = "e1"
    prices = {"e1": Price(0.1)}

    def __init__(
        self, caps: EmbeddingCapabilities, *, size: int | None = None, drop: bool = False, usage: bool = True
    ) -> None:
        self.caps = caps
        self.size = size
        self.drop = drop
        self.usage = usage
        self.batches: list[tuple[str, ...]] = []

    def capabilities(self, model: str) -> EmbeddingCapabilities:
        return self.caps

    def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        self.batches.append(request.texts)
        size = self.size or self.caps.dimensions
        vectors = [[float(len(t))] + [0.0] * (size - 1) for t in request.texts]
        if self.drop:
            vectors = vectors[:-1]
        usage = Usage(sum(len(t.split()) for t in request.texts)) if self.usage else None
        return EmbeddingResponse(vectors, usage, "e1")


def embedder(provider: EmbeddingProvider, **options: Any) -> tuple[Embedder, Rig]:
    rig = Rig(Scripted(), **options)
    return Embedder(
        provider, "vec", tokenizer=WordTokenizer(), meter=rig.meter, policy=rig.llm.policy, sleep=rig.sleeps.append
    ), rig


def test_embeddings_are_split_into_batches_and_kept_in_order():
    provider = Vectors(EmbeddingCapabilities(dimensions=3, max_batch=2))
    emb, rig = embedder(provider)
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    response = emb.embed(texts, metadata={"job": 1})
    assert provider.batches == [("a", "bb"), ("ccc", "dddd"), ("eeeee",)]
    assert [v[0] for v in response.vectors] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert response.usage.input_tokens == 5 and response.cost == pytest.approx(5 * 0.1 / 1e6)
    assert [e.payload["inputs"] for e in rig.events] == [2, 2, 1] and rig.events[0].payload["metadata"] == {"job": 1}
    assert emb.embed([]).vectors == []


def test_a_wrong_dimension_or_a_missing_vector_is_an_error():
    emb, _ = embedder(Vectors(EmbeddingCapabilities(dimensions=3, max_batch=8), size=4))
    with pytest.raises(UpstreamError, match="vector of 4 dimensions for text 0, expected 3"):
        emb.embed(["a"])
    emb, _ = embedder(Vectors(EmbeddingCapabilities(dimensions=3, max_batch=8), drop=True))
    with pytest.raises(UpstreamError, match="2 vectors for 3 texts"):
        emb.embed(["a", "b", "c"])
    emb, _ = embedder(Vectors(EmbeddingCapabilities(dimensions=None, max_batch=8), size=3))
    assert emb.embed(["a", "b"]).dimensions == 3  # undeclared size: any consistent size goes


def test_a_text_over_the_input_limit_is_refused_before_the_call():
    provider = Vectors(EmbeddingCapabilities(dimensions=3, max_batch=8, max_input_tokens=3))
    emb, rig = embedder(provider)
    with pytest.raises(ContextWindowExceededError, match="text 1 holds about 4 tokens"):
        emb.embed(["one two", "one two three four"])
    assert provider.batches == [] and rig.outcomes() == ["context_window_exceeded"]


def test_embedding_usage_is_estimated_when_unreported():
    emb, _ = embedder(Vectors(EmbeddingCapabilities(dimensions=2, max_batch=8), usage=False))
    response = emb.embed(["one two", "three"])
    assert response.usage == Usage(3, estimated=True)
    with pytest.raises(Exception, match="list of texts"):
        emb.embed("not a list")


# -- building providers from configuration ---------------------------------------------------------


class ScriptedPlugin:
    """A plugin registering the scripted provider through the public hooks."""

    def __init__(self) -> None:
        import attrs

        @attrs.frozen
        class ScriptedConfig:
            api_key_env: str = "SCRIPTED_KEY"

        self.config_cls = ScriptedConfig

    def cairn_register_llm_providers(self, register: Callable[..., None]) -> None:
        register(
            "scripted",
            lambda config, context: Scripted(AuthFailedError(f"bad key {SECRET}")),
            self.config_cls,
            description="a test provider",
        )

    def cairn_register_embedding_providers(self, register: Callable[..., None]) -> None:
        register("vectors", lambda config, context: Vectors(EmbeddingCapabilities(dimensions=2, max_batch=4)))


def _with_scripted() -> Any:
    from cairn.hookspecs import hookimpl
    from cairn.plugins import load_plugins

    plugin = ScriptedPlugin()
    for name in ("cairn_register_llm_providers", "cairn_register_embedding_providers"):
        hookimpl(getattr(type(plugin), name))
    plugins = load_plugins(entry_points=False)
    plugins.register(plugin, "scripted")
    return plugins


def test_providers_come_from_cairn_llm_and_redact_the_secrets_their_env_keys_name(cairn_env, monkeypatch):
    from cairn.providers import Providers

    (cairn_env / "cairn.toml").write_text(
        '[cairn]\nllm = "scripted"\nembeddings = "vectors"\n[providers]\nmax_attempts = 1\n'
    )
    monkeypatch.setenv("SCRIPTED_KEY", SECRET)
    config = load_config(cairn_env, environ={"CAIRN_USER_CONFIG": ""})
    store = MemoryStore()
    with Providers(config, _with_scripted(), store=store, tokenizer=WordTokenizer(), bus=EventBus()) as providers:
        llm = providers.llm()
        assert llm.name == "scripted" and llm.policy.max_attempts == 1
        with pytest.raises(AuthFailedError) as info:
            llm.complete(ask())
        assert SECRET not in str(info.value) and "***" in info.value.message
        assert providers.embeddings().embed(["x"]).dimensions == 2
        infos = {(i.kind, i.name): i for i in providers.describe()}
    assert infos[("llm", "scripted")].selected and infos[("llm", "scripted")].ready
    assert infos[("llm", "scripted")].capabilities["context_window"] == 1000
    assert infos[("embeddings", "vectors")].model == "e1"
    assert len(store.spend()) == 2


def test_providers_settings_are_validated(cairn_env):
    (cairn_env / "cairn.toml").write_text("[providers]\nmax_attempts = 0\nmax_spend_per_day = -1\n")
    config = load_config(cairn_env, environ={"CAIRN_USER_CONFIG": ""})
    problems = config.validate()
    assert any(p.table == "providers" for p in problems)
    defaults = load_config(cairn_env.parent, environ={"CAIRN_USER_CONFIG": ""}, config_file=None)
    assert defaults.settings("providers", ProvidersSettings) == ProvidersSettings()
    assert ProvidersSettings().max_attempts == 3 and ProvidersSettings().max_spend_per_day is None


def test_the_cli_help_imports_no_provider_library():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from cairn.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('httpx', 'numpy', 'torch', 'sentence_transformers') if m in sys.modules]\n"
        "print('HEAVY:' + ','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"CAIRN_USER_CONFIG": "", "PATH": ""},
    )
    assert "cairn ask" in out.stdout or "ask" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "HEAVY:"


# -- a store without the ledger facet -------------------------------------------------------------


class ContextOnlyStore(ObjectStore, RefStore, AnnotationStore):
    """Objects, refs and annotations and nothing else, as contrib/cairn-files keeps: no ledger, so no spend."""

    name = "context-only"

    def __init__(self) -> None:
        self.inner = MemoryStore()

    def write(self, **parts: Any) -> None:
        self.inner.write(**parts)

    def get_blobs(self, *args: Any) -> Any:
        return self.inner.get_blobs(*args)

    def get_commits(self, *args: Any) -> Any:
        return self.inner.get_commits(*args)

    def ancestors(self, *args: Any, **options: Any) -> Any:
        return self.inner.ancestors(*args, **options)

    def children(self, *args: Any) -> Any:
        return self.inner.children(*args)

    def commits_by_time(self, *args: Any, **options: Any) -> Any:
        return self.inner.commits_by_time(*args, **options)

    def commits_by_type(self, *args: Any, **options: Any) -> Any:
        return self.inner.commits_by_type(*args, **options)

    def commits_targeting(self, *args: Any) -> Any:
        return self.inner.commits_targeting(*args)

    def find_commits(self, *args: Any) -> Any:
        return self.inner.find_commits(*args)

    def get_ref(self, *args: Any) -> Any:
        return self.inner.get_ref(*args)

    def list_refs(self, *args: Any) -> Any:
        return self.inner.list_refs(*args)

    def update_refs(self, *args: Any) -> None:
        self.inner.write(refs=args[0])

    def add_annotations(self, *args: Any) -> None:
        self.inner.add_annotations(*args)

    def annotated(self, *args: Any, **options: Any) -> Any:
        return self.inner.annotated(*args, **options)

    def annotation_history(self, *args: Any, **options: Any) -> Any:
        return self.inner.annotation_history(*args, **options)

    def latest_annotations(self, *args: Any, **options: Any) -> Any:
        return self.inner.latest_annotations(*args, **options)


def metered(
    store: object, settings: ProvidersSettings | None = None, *steps: Any
) -> tuple[LLM, Embedder, Scripted, Vectors, list[Any]]:
    """An LLM (answering ``steps``) and an Embedder sharing one meter over ``store``, and the events they publish."""
    bus = EventBus()
    events: list[Any] = []
    bus.subscribe(ALL, events.append)
    meter = Meter(store, settings=settings or ProvidersSettings(), bus=bus)
    provider, vectors = Scripted(*steps), Vectors(EmbeddingCapabilities(dimensions=2, max_batch=4))
    llm = LLM(provider, "scripted", tokenizer=WordTokenizer(), meter=meter)
    return llm, Embedder(vectors, "vec", tokenizer=WordTokenizer(), meter=meter), provider, vectors, events


def test_without_a_ledger_calls_go_through_and_no_spend_is_recorded():
    store = ContextOnlyStore()
    assert facets_of(store) == {"objects", "refs", "annotations"}
    llm, emb, _, _, events = metered(
        store, None, ChatResponse("ok", usage=Usage(3, 1)), [ChatChunk("ok", finish_reason="stop")]
    )
    reply = llm.complete(ask())
    assert reply.content == "ok" and reply.cost == pytest.approx((3 * 1.0 + 1 * 2.0) / 1e6)
    assert llm.stream(ask()).text() == "ok"
    assert emb.embed(["one two"]).dimensions == 2
    assert [e.payload["outcome"] for e in events if e.name == CALL_EVENT] == ["ok", "ok", "ok"]
    assert llm.meter.ledger is None and llm.meter.session_spend > 0

    with_ledger = MemoryStore()
    metered(with_ledger)[0].complete(ask())
    assert len(with_ledger.spend()) == 1  # the same call on a store with the ledger facet is recorded


@pytest.mark.parametrize("ceiling", ["max_spend_per_day", "max_spend_per_run"])
def test_without_a_ledger_a_spend_ceiling_refuses_every_call(ceiling: str):
    llm, emb, provider, vectors, events = metered(ContextOnlyStore(), ProvidersSettings(**{ceiling: 5.0}))
    for call in (lambda: llm.complete(ask()), lambda: llm.stream(ask()), lambda: emb.embed(["a"])):
        with pytest.raises(MissingFacetError) as info:
            call()
        error = info.value
        assert (error.backend, error.facet) == ("context-only", "ledger")
        assert f"[providers] {ceiling} needs it" in error.message and f"remove {ceiling}" in error.hint
    assert provider.requests == [] and vectors.batches == [] and events == []  # nothing reached a provider


def test_providers_over_a_store_without_a_ledger(cairn_env):
    from cairn.providers import Providers

    (cairn_env / "cairn.toml").write_text(
        '[cairn]\nllm = "scripted"\nembeddings = "vectors"\n[providers]\nmax_spend_per_day = 1.0\n'
    )
    config = load_config(cairn_env, environ={"CAIRN_USER_CONFIG": ""})
    store = ContextOnlyStore()
    with Providers(config, _with_scripted(), store=store, tokenizer=WordTokenizer(), bus=EventBus()) as providers:
        assert {(i.name, i.ready) for i in providers.describe()} >= {("scripted", True), ("vectors", True)}
        with pytest.raises(MissingFacetError, match="max_spend_per_day"):
            providers.embeddings().embed(["x"])


# -- the package ----------------------------------------------------------------------------------


def test_the_package_exports_every_public_name_of_its_modules():
    import importlib

    import cairn.providers as package

    for name in package.__all__:
        assert hasattr(package, name), name
    layers = _layers(package)
    for module in layers:
        for name in importlib.import_module(f"cairn.providers.{module}").__all__:
            assert name in package.__all__ and getattr(package, name) is getattr(
                importlib.import_module(f"cairn.providers.{module}"), name
            ), f"{module}.{name} is not re-exported"


def test_each_module_imports_only_those_above_it():
    """The package docstring lists the modules in order; an import of one below (or a cycle) fails here."""
    import ast
    from pathlib import Path

    import cairn.providers as package

    layers = _layers(package)
    directory = Path(package.__file__).parent
    assert sorted(layers) == sorted(p.stem for p in directory.glob("_*.py") if p.stem != "__init__")
    for module in layers:
        tree = ast.parse((directory / f"{module}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cairn.providers"):
                imported = (node.module or "").removeprefix("cairn.providers").lstrip(".")
                assert imported in layers[: layers.index(module)], f"{module} imports {node.module}"


def _layers(package: Any) -> list[str]:
    import re

    listing = package.__doc__.split("each importing only those above it::")[1]
    return re.findall(r"^    (_[a-z]+) ", listing, re.MULTILINE)
