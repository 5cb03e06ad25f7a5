"""Chat through the kernel: ``LLM`` (checks, retries, usage, cost, instrumentation) and ``ChatStream``."""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable, Iterator, Mapping
from typing import Any

import attrs

from cairn.model import Message, ToolCall
from cairn.providers._caller import _Caller
from cairn.providers._contract import LLMProvider
from cairn.providers._errors import (
    ContextWindowExceededError,
    InvalidRequestError,
    UpstreamError,
    _as_taxonomy,
    _TaxonomyError,
)
from cairn.providers._redact import _Echoes, _own, _redact_error
from cairn.providers._retry import _explain_give_up, retry_call
from cairn.providers._types import ChatChunk, ChatRequest, ChatResponse, LLMCapabilities
from cairn.providers._usage import Usage, match_model

__all__ = ["LLM", "ChatStream"]


def _chat_shape(request: ChatRequest) -> dict[str, Any]:
    roles: dict[str, int] = {}
    characters = 0
    for m in request.messages:
        roles[m.role] = roles.get(m.role, 0) + 1
        characters += len(m.content or "") + sum(len(c.arguments) + len(c.name) for c in m.tool_calls)
    return {"messages": len(request.messages), "roles": roles, "characters": characters, "tools": len(request.tools)}


class _Assembly:
    """Joins stream chunks into the reply they add up to.

    Tool-call deltas join by ``index``. Some OpenAI-compatible servers reuse
    one index for several parallel calls and tell them apart only by ``id``:
    a new id at an index already holding a call starts a new call.
    """

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self._slot: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.model: str | None = None
        self.request_id: str | None = None
        self.chunks = 0

    def add(self, chunk: ChatChunk) -> None:
        self.chunks += 1
        if chunk.content:
            self.parts.append(chunk.content)
        for delta in chunk.tool_calls:
            call = self._slot.get(delta.index)
            if call is None or (delta.id and call["id"] and delta.id != call["id"]):
                call = {"id": None, "name": None, "arguments": []}
                self._slot[delta.index] = call
                self.calls.append(call)
            if delta.id:
                call["id"] = delta.id
            if delta.name and delta.name != call["name"]:
                # Names normally arrive whole in the first delta; a few servers split them.
                call["name"] = (call["name"] or "") + delta.name
            if delta.arguments:
                call["arguments"].append(delta.arguments)  # joined once at the end, not per chunk
        if chunk.finish_reason:
            self.finish_reason = chunk.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage
        self.model = chunk.model or self.model
        self.request_id = chunk.request_id or self.request_id

    @property
    def content(self) -> str | None:
        return "".join(self.parts) if self.parts or not self.calls else None

    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(call["id"] or f"call_{n}", call["name"] or "", "".join(call["arguments"]))
            for n, call in enumerate(self.calls)
        )

    def output_text(self) -> str:
        return "".join(self.parts) + "".join(c.name + c.arguments for c in self.tool_calls())

    def response(self, model: str) -> ChatResponse:
        return ChatResponse(
            content=self.content,
            tool_calls=self.tool_calls(),
            finish_reason=_normal_finish(self.finish_reason),
            usage=self.usage,
            model=self.model or model,
            request_id=self.request_id,
        )


def _normal_finish(reason: str | None) -> str | None:
    return "tool_calls" if reason == "function_call" else reason


class LLM(_Caller):
    """Chat with a provider through the kernel: checks, retries, streaming, usage, cost and instrumentation."""

    def __init__(self, provider: LLMProvider, name: str, **options: Any) -> None:
        super().__init__(name, **options)
        self.provider = provider

    def close(self) -> None:
        self.provider.close()

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def capabilities(self, model: str | None = None) -> LLMCapabilities:
        return self.provider.capabilities(self._model(self.provider, model))

    def request(self, request: ChatRequest | Iterable[Message | Mapping[str, Any]], **options: Any) -> ChatRequest:
        """A ``ChatRequest`` from a request or a list of messages, with ``options`` (model, temperature ...) applied."""
        if isinstance(request, ChatRequest):
            return attrs.evolve(request, **options) if options else request
        return ChatRequest(request, **options)

    def count_input(self, request: ChatRequest) -> int:
        """Input tokens of ``request`` by the configured tokenizer: messages, reply priming and tool schemas."""
        tokens = self.tokenizer.count_messages(request.messages)
        for tool in request.tools:
            tokens += self.tokenizer.count(tool.name) + self.tokenizer.count(tool.description)
            tokens += self.tokenizer.count(json.dumps(tool.parameters))
        if request.response_format is not None and request.response_format.schema:
            tokens += self.tokenizer.count(json.dumps(request.response_format.schema))
        return tokens

    def _input_bound(self, request: ChatRequest) -> int:
        """A cheap upper bound of the input tokens, from sizes alone.

        A byte-level tokenizer never makes more tokens than UTF-8 bytes; the
        bound doubles that, so a scaled estimate (``approx@scale=...``) stays
        under it too. Requests under half the window are never counted.
        """
        overhead = self.tokenizer.overhead
        size = 0
        for m in request.messages:
            size += len(m.role) + len((m.name or "").encode()) + len((m.content or "").encode())
            size += sum(len(c.name.encode()) + len(c.arguments.encode()) for c in m.tool_calls)
        for t in request.tools:
            size += len(t.name) + len(t.description.encode()) + len(json.dumps(t.parameters).encode())
        if request.response_format is not None and request.response_format.schema:
            size += len(json.dumps(request.response_format.schema).encode())
        per_message = overhead.per_message + max(0, overhead.per_name) + 4
        return 2 * size + per_message * len(request.messages) + overhead.reply_priming

    def _check(self, request: ChatRequest, caps: LLMCapabilities, model: str) -> int | None:
        """Refuse what the model cannot do; return the input token count when it had to be computed."""

        def refuse(cls: type[_TaxonomyError], message: str, hint: str) -> None:
            raise cls(message, hint=hint, retryable=False, provider=self.name, model=model)

        if request.tools and not caps.tools:
            refuse(
                InvalidRequestError,
                f"{self.name} model {model!r} does not support tools",
                "use a model with tool calling, or send the request without tools",
            )
        if (
            request.response_format is not None
            and request.response_format.type == "json_schema"
            and not caps.json_schema
        ):
            refuse(
                InvalidRequestError,
                f"{self.name} model {model!r} does not support JSON-schema responses",
                "use ResponseFormat.json_object() or a model with structured outputs",
            )
        wanted = request.max_output_tokens
        if wanted is not None and caps.max_output_tokens is not None and wanted > caps.max_output_tokens:
            refuse(
                InvalidRequestError,
                f"max_output_tokens {wanted} is over {model!r}'s limit of {caps.max_output_tokens}",
                f"ask for at most {caps.max_output_tokens} output tokens",
            )
        if caps.context_window is None:
            return None
        room = caps.context_window - (wanted or 0)
        if self._input_bound(request) <= room:
            return None  # cannot overflow: skip counting
        tokens = self.count_input(request)
        if tokens > room:
            reserved = f" + {wanted} reserved for output" if wanted else ""
            refuse(
                ContextWindowExceededError,
                f"the request holds about {tokens} input tokens{reserved}, over {model!r}'s context window "
                f"of {caps.context_window} (counted with {self.tokenizer.name})",
                "materialize the context with a smaller budget, drop or skip items, or use a larger model",
            )
        return tokens

    def _prepare(self, request: ChatRequest, operation: str) -> tuple[ChatRequest, str, LLMCapabilities, _Echoes]:
        model = self._model(self.provider, request.model)
        if request.model != model:
            request = attrs.evolve(request, model=model)
        echoes = _Echoes(request.texts)
        caps = self.provider.capabilities(model)
        price = match_model(self.provider.prices, model)
        try:
            tokens = self._check(request, caps, model)
            if self.meter.has_ceiling:
                self.meter.check(self.name, model, price, tokens if tokens is not None else self.count_input(request))
        except _TaxonomyError as error:
            self._record(operation, request, model, error, sent=False, attempt=1, latency_s=0.0, usage=None)
            raise
        if self.meter.gate is not None:  # the policy gate: before anything is sent
            counted = tokens if tokens is not None else self.count_input(request)
            self.meter.admit(
                self.name, model, price, counted, request.max_output_tokens or 0, request.texts(), operation
            )
        return request, model, caps, echoes

    def _estimate(self, request: ChatRequest, output_text: str) -> Usage:
        return Usage(
            input_tokens=self.count_input(request),
            output_tokens=self.tokenizer.count(output_text) if output_text else 0,
            estimated=True,
        )

    def _record(
        self,
        operation: str,
        request: ChatRequest,
        model: str,
        error: _TaxonomyError | None,
        *,
        sent: bool,
        attempt: int,
        latency_s: float,
        usage: Usage | None,
        response: ChatResponse | None = None,
    ) -> float | None:
        cost = self._cost(self.provider, model, usage, sent, error)
        self.meter.record(
            operation=operation,
            provider=self.name,
            model=response.model if response and response.model else model,
            outcome=error.kind if error is not None else "ok",
            sent=sent,
            attempt=attempt,
            latency_s=latency_s,
            usage=usage,
            cost=cost,
            shape=_chat_shape(request),
            error=error,
            metadata=request.metadata,
            request_id=(response.request_id if response else None) or (error.request_id if error else None),
            finish_reason=response.finish_reason if response else None,
        )
        return cost

    def _failed(
        self,
        raw: BaseException,
        request: ChatRequest,
        model: str,
        echoes: _Echoes,
        attempt: int,
        started: float,
        output_text: str = "",
        operation: str = "complete",
    ) -> _TaxonomyError:
        error = _redact_error(_as_taxonomy(raw, self.name, model), self.secrets, echoes)
        if output_text and error.usage is None:
            error.usage = self._estimate(request, output_text)  # tokens were generated, and will be billed
        self._record(
            operation,
            request,
            model,
            error,
            sent=True,
            attempt=attempt,
            latency_s=self.clock() - started,
            usage=error.usage,
        )
        return error

    def complete(self, request: ChatRequest | Iterable[Message | Mapping[str, Any]], **options: Any) -> ChatResponse:
        """A whole reply; ``options`` are ``ChatRequest`` fields (model, max_output_tokens, temperature ...)."""
        request, model, _, echoes = self._prepare(self.request(request, **options), "complete")

        def attempt(number: int) -> ChatResponse:
            started = self.clock()
            try:
                response = self.provider.complete(request)
                if not isinstance(response, ChatResponse):
                    raise _own(
                        UpstreamError(
                            f"the {self.name} provider returned {type(response).__name__}, not a ChatResponse",
                            retryable=False,
                        )
                    )
            except Exception as raw:
                raise self._failed(raw, request, model, echoes, number, started) from None
            return self._finish(request, model, response, number, started, "complete")

        return retry_call(attempt, self.policy, sleep=self.sleep, clock=self.clock, rng=self.rng)

    def _finish(
        self, request: ChatRequest, model: str, response: ChatResponse, attempt: int, started: float, operation: str
    ) -> ChatResponse:
        latency = self.clock() - started
        usage = response.usage
        if usage is None:
            usage = self._estimate(
                request, (response.content or "") + "".join(c.name + c.arguments for c in response.tool_calls)
            )
        response = attrs.evolve(
            response,
            usage=usage,
            latency_s=latency,
            provider=self.name,
            model=response.model or model,
            finish_reason=_normal_finish(response.finish_reason),
        )
        cost = self._record(
            operation,
            request,
            model,
            None,
            sent=True,
            attempt=attempt,
            latency_s=latency,
            usage=usage,
            response=response,
        )
        return attrs.evolve(response, cost=cost)

    def stream(self, request: ChatRequest | Iterable[Message | Mapping[str, Any]], **options: Any) -> ChatStream:
        """The reply as it is generated: iterate the returned ``ChatStream`` for chunks, then read ``.response``.

        Checks run now; the call starts on the first ``next()``. A failure
        before the first chunk is retried like a whole call; once a chunk
        was delivered the error is raised (with the usage estimated from what
        arrived), since delivered text cannot be taken back. A model without
        streaming is called whole and delivered as one chunk.
        """
        request, model, caps, echoes = self._prepare(self.request(request, **options), "stream")
        return ChatStream(self, request, model, echoes, streaming=caps.streaming)


class ChatStream:
    """Iterate for ``ChatChunk``s; afterwards ``response`` holds the assembled ``ChatResponse``.

    Closing it early (``close()``, or leaving a ``with`` block) closes the
    provider's stream and records the call as ``cancelled`` with estimated usage.
    """

    def __init__(self, llm: LLM, request: ChatRequest, model: str, echoes: _Echoes, *, streaming: bool) -> None:
        self._llm = llm
        self.request = request
        self.model = model
        self._echoes = echoes
        self._streaming = streaming
        self.response: ChatResponse | None = None
        self._chunks = self._run()

    def __iter__(self) -> Iterator[ChatChunk]:
        return self

    def __next__(self) -> ChatChunk:
        return next(self._chunks)

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._chunks.close()

    def text(self) -> str:
        """Consume the stream and return the whole text."""
        for _ in self:
            pass
        assert self.response is not None
        return self.response.content or ""

    def _run(self) -> Generator[ChatChunk, None, None]:
        llm, request, model = self._llm, self.request, self.model
        start = llm.clock()
        number = 1
        operation = "stream"
        while True:
            started = llm.clock()
            assembly = _Assembly()
            source: Iterator[ChatChunk] | None = None
            delivered = False
            try:
                source = self._source()
                for chunk in source:
                    if not isinstance(chunk, ChatChunk):
                        raise _own(
                            UpstreamError(
                                f"the {llm.name} provider streamed {type(chunk).__name__}, not a ChatChunk",
                                retryable=False,
                            )
                        )
                    assembly.add(chunk)
                    if chunk.content or chunk.tool_calls or chunk.finish_reason:
                        delivered = True
                        yield chunk
            except GeneratorExit:
                close = getattr(source, "close", None)  # a generator has one; any other iterator may not
                if close is not None:
                    close()
                usage = assembly.usage or llm._estimate(request, assembly.output_text())
                llm.meter.record(
                    operation=operation,
                    provider=llm.name,
                    model=assembly.model or model,
                    outcome="cancelled",
                    sent=True,
                    attempt=number,
                    latency_s=llm.clock() - started,
                    usage=usage,
                    cost=llm._cost(llm.provider, model, usage, True),
                    shape=_chat_shape(request),
                    metadata=request.metadata,
                    request_id=assembly.request_id,
                )
                raise
            except Exception as raw:
                error = llm._failed(
                    raw, request, model, self._echoes, number, started, assembly.output_text(), operation
                )
                if delivered:
                    error.attempts = number
                    if error.retryable:
                        error.hint = (
                            (error.hint + "; ") if error.hint else ""
                        ) + "the reply broke off after text was delivered, so it was not retried"
                    raise error from None
                wait = llm.policy.delay(number, error, llm.clock() - start, llm.rng)
                if wait is None:
                    _explain_give_up(error, number, llm.policy, llm.clock() - start)
                    raise error from None
                llm.sleep(wait)
                number += 1
                continue
            if assembly.chunks == 0 or (assembly.finish_reason is None and not assembly.parts and not assembly.calls):
                error = llm._failed(
                    _own(UpstreamError(f"the {llm.name} stream ended without a reply", retryable=True)),
                    request,
                    model,
                    self._echoes,
                    number,
                    started,
                    "",
                    operation,
                )
                wait = llm.policy.delay(number, error, llm.clock() - start, llm.rng)
                if wait is None:
                    _explain_give_up(error, number, llm.policy, llm.clock() - start)
                    raise error
                llm.sleep(wait)
                number += 1
                continue
            self.response = llm._finish(request, model, assembly.response(model), number, started, operation)
            return

    def _source(self) -> Iterator[ChatChunk]:
        provider = self._llm.provider
        if self._streaming:
            return iter(provider.stream(self.request))
        return iter(LLMProvider.stream(provider, self.request))
