"""The provider conformance suite: every LLM and embedding provider plugin runs it against itself.

Subclass ``LLMProviderConformance`` or ``EmbeddingProviderConformance`` in
the plugin's tests and provide a fixture that builds the provider::

    from cairn.testing.provider_suite import LLMProviderConformance

    class TestAcme(LLMProviderConformance):
        @pytest.fixture
        def llm_provider(self):
            return AcmeProvider(...)            # an LLMProvider, ready to answer

Optional fixtures a subclass may override (tests that need them skip while
they return None):

- ``provoke``: a callable ``provoke(kind) -> bool`` that makes the provider's
  next call fail with taxonomy ``kind`` (for an HTTP provider: script a
  fake server) and returns False for a kind it cannot provoke.
- ``backend_requests``: a callable returning how many requests the provider
  has sent to its backend so far, to prove it never retries on its own.
- ``secret``: the credential the provider was configured with, which must
  never appear in an error, an event or the store.

Class attributes: ``disabled = True`` for a provider that refuses every call
(``noop``); ``deterministic = False`` for an embedder whose vectors vary
between calls for the same text.

Everything runs offline: the tests never choose a network address; the
provider's fixture decides where it talks (a loopback server, a local model).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from cairn.errors import ProviderError
from cairn.events import ALL, EventBus
from cairn.model import Message
from cairn.providers import (
    CALL_EVENT,
    ERROR_KINDS,
    LLM,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Embedder,
    EmbeddingCapabilities,
    EmbeddingProvider,
    EmbeddingRequest,
    EmbeddingResponse,
    LLMCapabilities,
    LLMProvider,
    Meter,
    ProviderDisabledError,
    RateLimitedError,
    RetryPolicy,
    Tool,
)
from cairn.testing.fakes import WordTokenizer
from cairn.testing.memory import MemoryStore

__all__ = [
    "CANARY_PROMPT",
    "EmbeddingProviderConformance",
    "Harness",
    "LLMProviderConformance",
    "assert_absent",
]

#: Planted in prompts; must never show up in errors, events, logs or the store.
CANARY_PROMPT = "zebracanary7f3a9q mauvepelican0x41 the secret plan"

PROMPT_WORDS = ("zebracanary7f3a9q", "mauvepelican0x41")


def assert_absent(needles: Iterable[str], *haystacks: Any) -> None:
    """Fail if any needle occurs in any haystack (strings, exceptions, events, spend records, log records ...)."""
    text = "\n".join(_flatten(h) for h in haystacks)
    found = [n for n in needles if n and n in text]
    assert not found, f"leaked {found!r} into recorded output"


def _flatten(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseException):
        parts = [str(value), repr(value), repr(getattr(value, "args", ""))]
        parts += [repr(v) for v in vars(value).values()]
        return "\n".join(parts)
    if isinstance(value, logging.LogRecord):
        return value.getMessage() + repr(value.args) + (repr(value.exc_info) if value.exc_info else "")
    if hasattr(value, "to_record"):
        return json.dumps(value.to_record(), default=str)
    if hasattr(value, "payload"):
        return json.dumps(dict(value.payload), default=str)
    if isinstance(value, (list, tuple, set)):
        return "\n".join(_flatten(v) for v in value)
    return json.dumps(value, default=str) if isinstance(value, dict) else repr(value)


class Harness:
    """A provider behind the kernel, with an in-memory store and a private bus whose events are kept."""

    def __init__(self, *, attempts: int = 1) -> None:
        self.store = MemoryStore()
        self.bus = EventBus()
        self.events: list[Any] = []
        self.bus.subscribe(ALL, self.events.append)
        self.meter = Meter(self.store, bus=self.bus)
        self.policy = RetryPolicy(max_attempts=attempts, backoff_initial_s=0.0, backoff_max_s=0.0)
        self.tokenizer = WordTokenizer()

    def llm(self, provider: LLMProvider, name: str = "under_test") -> LLM:
        return LLM(provider, name, tokenizer=self.tokenizer, meter=self.meter, policy=self.policy, sleep=lambda s: None)

    def embedder(self, provider: EmbeddingProvider, name: str = "under_test") -> Embedder:
        return Embedder(
            provider, name, tokenizer=self.tokenizer, meter=self.meter, policy=self.policy, sleep=lambda s: None
        )

    @property
    def spend(self) -> list[Any]:
        return self.store.spend()

    def calls(self) -> list[Any]:
        return [e for e in self.events if e.name == CALL_EVENT]


def _chat(text: str = "Say hello in one word.", **options: Any) -> ChatRequest:
    return ChatRequest([Message("system", "You are terse."), Message("user", text)], **options)


class _Common:
    disabled = False

    @pytest.fixture
    def provoke(self) -> Callable[[str], bool] | None:
        return None

    @pytest.fixture
    def backend_requests(self) -> Callable[[], int] | None:
        return None

    @pytest.fixture
    def secret(self) -> str | None:
        return None

    @staticmethod
    def _needles(secret: str | None) -> list[str]:
        return [*PROMPT_WORDS, *([secret] if secret else [])]


class LLMProviderConformance(_Common):
    """The contract of ``cairn.providers.LLMProvider``; subclass and provide ``llm_provider``."""

    @pytest.fixture
    def llm_provider(self) -> LLMProvider:
        raise NotImplementedError("provide an llm_provider fixture returning the provider under test")

    # -- what every provider declares ----------------------------------------------------

    def test_declares_a_default_model_and_its_capabilities(self, llm_provider: LLMProvider) -> None:
        assert isinstance(llm_provider, LLMProvider)
        assert isinstance(llm_provider.default_model, str) and llm_provider.default_model
        caps = llm_provider.capabilities(llm_provider.default_model)
        assert isinstance(caps, LLMCapabilities)
        if caps.context_window is not None and caps.max_output_tokens is not None:
            assert caps.max_output_tokens <= caps.context_window

    def test_readiness_is_none_or_a_taxonomy_error(self, llm_provider: LLMProvider) -> None:
        problem = llm_provider.readiness()
        if self.disabled:
            assert isinstance(problem, ProviderDisabledError) and problem.kind == "disabled"
        else:
            assert problem is None, f"the provider under test should be ready, got {problem}"

    def test_prices_are_a_table_of_prices(self, llm_provider: LLMProvider) -> None:
        from cairn.providers import Price

        assert all(
            isinstance(name, str) and isinstance(price, Price) for name, price in dict(llm_provider.prices).items()
        )

    # -- answering -----------------------------------------------------------------------

    def test_complete_answers_or_is_disabled(self, llm_provider: LLMProvider) -> None:
        request = _chat(model=llm_provider.default_model)
        if self.disabled:
            with pytest.raises(ProviderError) as info:
                llm_provider.complete(request)
            assert isinstance(info.value, ProviderDisabledError), f"expected the disabled kind, got {info.value!r}"
            assert info.value.kind == "disabled" and info.value.retryable is False
            assert info.value.hint, "a disabled provider must say how to enable a real one"
            return
        response = llm_provider.complete(request)
        assert isinstance(response, ChatResponse)
        assert response.content is None or isinstance(response.content, str)
        assert response.content or response.tool_calls
        assert isinstance(response.finish_reason, str)

    def test_stream_yields_chunks_that_add_up_to_the_reply(self, llm_provider: LLMProvider) -> None:
        harness = Harness()
        llm = harness.llm(llm_provider)
        if self.disabled:
            with pytest.raises(ProviderError) as info:
                llm.stream(_chat()).text()
            assert isinstance(info.value, ProviderDisabledError) and info.value.kind == "disabled"
            return
        stream = llm.stream(_chat())
        chunks = list(stream)
        assert chunks and all(isinstance(c, ChatChunk) for c in chunks)
        assert stream.response is not None
        assert (stream.response.content or "") == "".join(c.content for c in chunks)
        assert stream.response.finish_reason is not None
        assert stream.response.usage is not None and stream.response.usage.total_tokens > 0

    def test_a_request_with_tools_is_accepted_when_tools_are_declared(self, llm_provider: LLMProvider) -> None:
        caps = llm_provider.capabilities(llm_provider.default_model)
        if self.disabled or not caps.tools:
            pytest.skip("the provider declares no tools")
        tool = Tool(
            "get_time",
            "The current time in a city.",
            {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        )
        response = llm_provider.complete(
            _chat("What time is it in Oslo?", model=llm_provider.default_model, tools=[tool], tool_choice="auto")
        )
        assert isinstance(response, ChatResponse)
        for call in response.tool_calls:
            assert call.name and isinstance(call.arguments, str)

    # -- through the kernel --------------------------------------------------------------

    def test_every_call_is_recorded_without_bodies(
        self, llm_provider: LLMProvider, secret: str | None, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        harness = Harness()
        llm = harness.llm(llm_provider)
        error: BaseException | None = None
        try:
            llm.complete(_chat(CANARY_PROMPT))
        except ProviderError as exc:
            error = exc
        assert (error is not None) == self.disabled
        calls = harness.calls()
        assert len(calls) == 1 and len(harness.spend) == 1
        payload = calls[0].payload
        assert payload["outcome"] == ("disabled" if self.disabled else "ok")
        assert payload["messages"] == 2 and payload["roles"] == {"system": 1, "user": 1}
        assert payload["characters"] == len("You are terse.") + len(CANARY_PROMPT)
        assert_absent(self._needles(secret), calls, harness.spend, error or "", caplog.records)

    def test_errors_are_taxonomy_values_that_leak_nothing(
        self, llm_provider: LLMProvider, provoke: Any, secret: str | None, caplog: pytest.LogCaptureFixture
    ) -> None:
        if provoke is None:
            pytest.skip("no provoke fixture")
        caplog.set_level(logging.DEBUG)
        tried = 0
        for kind, cls in ERROR_KINDS.items():
            if kind == "disabled" or not provoke(kind):
                continue
            tried += 1
            harness = Harness()
            with pytest.raises(ProviderError) as info:
                harness.llm(llm_provider).complete(_chat(CANARY_PROMPT))
            error = info.value
            assert isinstance(error, cls), f"provoked {kind}, got {type(error).__name__}: {error}"
            assert error.kind == kind and isinstance(error.retryable, bool)
            assert [e.payload["outcome"] for e in harness.calls()] == [kind]
            assert_absent(self._needles(secret), error, harness.calls(), harness.spend, caplog.records)
        assert tried, "provoke() provoked no kind at all"

    def test_the_provider_never_retries_by_itself(
        self, llm_provider: LLMProvider, provoke: Any, backend_requests: Any
    ) -> None:
        if provoke is None or backend_requests is None or not provoke("rate_limited"):
            pytest.skip("needs provoke('rate_limited') and backend_requests")
        before = backend_requests()
        with pytest.raises(ProviderError) as info:
            llm_provider.complete(_chat(model=llm_provider.default_model))
        assert isinstance(info.value, RateLimitedError), f"expected the rate_limited kind, got {info.value!r}"
        assert info.value.kind == "rate_limited" and info.value.retryable
        assert backend_requests() == before + 1


class EmbeddingProviderConformance(_Common):
    """The contract of ``cairn.providers.EmbeddingProvider``; subclass and provide ``embedding_provider``."""

    deterministic = True

    @pytest.fixture
    def embedding_provider(self) -> EmbeddingProvider:
        raise NotImplementedError("provide an embedding_provider fixture returning the provider under test")

    def _caps(self, provider: EmbeddingProvider) -> EmbeddingCapabilities:
        return provider.capabilities(provider.default_model)

    def test_declares_a_default_model_and_its_bounds(self, embedding_provider: EmbeddingProvider) -> None:
        assert isinstance(embedding_provider, EmbeddingProvider)
        assert isinstance(embedding_provider.default_model, str) and embedding_provider.default_model
        caps = self._caps(embedding_provider)
        assert isinstance(caps, EmbeddingCapabilities)
        assert caps.max_batch >= 1
        if not self.disabled:
            assert caps.dimensions is not None, "a working embedder declares its dimensions"

    def test_readiness_is_none_or_a_taxonomy_error(self, embedding_provider: EmbeddingProvider) -> None:
        problem = embedding_provider.readiness()
        if self.disabled:
            assert isinstance(problem, ProviderDisabledError) and problem.kind == "disabled"
        else:
            assert problem is None, f"the provider under test should be ready, got {problem}"

    def test_one_vector_per_text_in_order_of_the_declared_size(self, embedding_provider: EmbeddingProvider) -> None:
        texts = ["the cat sat on the mat", "stock markets fell sharply", "a recipe for lemon cake"]
        request = EmbeddingRequest(texts, embedding_provider.default_model)
        if self.disabled:
            with pytest.raises(ProviderError) as info:
                embedding_provider.embed(request)
            assert isinstance(info.value, ProviderDisabledError) and info.value.kind == "disabled"
            assert info.value.hint
            return
        response = embedding_provider.embed(request)
        assert isinstance(response, EmbeddingResponse)
        caps = self._caps(embedding_provider)
        assert len(response.vectors) == len(texts)
        assert all(len(v) == caps.dimensions for v in response.vectors)
        assert all(all(isinstance(float(x), float) for x in v) for v in response.vectors)
        if self.deterministic:
            shuffled = embedding_provider.embed(EmbeddingRequest([texts[2], texts[0], texts[1]], request.model))
            for got, want in zip(
                shuffled.vectors, [response.vectors[2], response.vectors[0], response.vectors[1]], strict=True
            ):
                assert max(abs(float(a) - float(b)) for a, b in zip(got, want, strict=True)) < 1e-5

    def test_a_full_batch_is_one_call(self, embedding_provider: EmbeddingProvider) -> None:
        if self.disabled:
            pytest.skip("disabled")
        size = min(self._caps(embedding_provider).max_batch, 128)
        texts = [f"text number {i} about topic {i % 7}" for i in range(size)]
        response = embedding_provider.embed(EmbeddingRequest(texts, embedding_provider.default_model))
        assert len(response.vectors) == size

    def test_every_call_is_recorded_without_bodies(
        self, embedding_provider: EmbeddingProvider, secret: str | None, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        harness = Harness()
        error: BaseException | None = None
        try:
            harness.embedder(embedding_provider).embed([CANARY_PROMPT, "second text"])
        except ProviderError as exc:
            error = exc
        assert (error is not None) == self.disabled
        calls = harness.calls()
        assert len(calls) == 1 and len(harness.spend) == 1
        assert calls[0].payload["inputs"] == 2
        assert calls[0].payload["outcome"] == ("disabled" if self.disabled else "ok")
        assert_absent(self._needles(secret), calls, harness.spend, error or "", caplog.records)

    def test_errors_are_taxonomy_values_that_leak_nothing(
        self, embedding_provider: EmbeddingProvider, provoke: Any, secret: str | None, caplog: pytest.LogCaptureFixture
    ) -> None:
        if provoke is None:
            pytest.skip("no provoke fixture")
        caplog.set_level(logging.DEBUG)
        tried = 0
        for kind, cls in ERROR_KINDS.items():
            if kind == "disabled" or not provoke(kind):
                continue
            tried += 1
            harness = Harness()
            with pytest.raises(ProviderError) as info:
                harness.embedder(embedding_provider).embed([CANARY_PROMPT])
            error = info.value
            assert isinstance(error, cls), f"provoked {kind}, got {type(error).__name__}: {error}"
            assert [e.payload["outcome"] for e in harness.calls()] == [kind]
            assert_absent(self._needles(secret), error, harness.calls(), harness.spend, caplog.records)
        assert tried, "provoke() provoked no kind at all"
