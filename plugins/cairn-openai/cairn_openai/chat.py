"""``openai`` chat: POST /chat/completions, whole or streamed (server-sent events)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from cairn.model import ToolCall
from cairn.providers import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ContentFilteredError,
    LLMCapabilities,
    LLMProvider,
    ProviderError,
    UpstreamError,
    match_model,
)
from cairn_openai._http import Connection
from cairn_openai.config import ChatConfig
from cairn_openai.models import CHAT_MODELS, CHAT_PRICES
from cairn_openai.wire import chat_body, chunk_from_event, error_from_payload, error_from_response, sse_data, usage_from

__all__ = ["OpenAIChat"]


class OpenAIChat(LLMProvider):
    """An OpenAI-compatible chat endpoint. One method call is one HTTP request: the kernel retries."""

    def __init__(self, config: ChatConfig, *, name: str = "openai", model: str | None = None) -> None:
        self.config = config
        self.name = name
        self.default_model = model or config.model
        self.prices = config.price_table(CHAT_PRICES)
        self.connection = Connection(config, provider=name, section="llm")
        field = config.max_tokens_field
        self.max_tokens_field = (
            field if field != "auto" else ("max_completion_tokens" if self.connection.is_openai else "max_tokens")
        )

    def capabilities(self, model: str) -> LLMCapabilities:
        known = match_model(CHAT_MODELS, model)
        c = self.config
        base = known or LLMCapabilities(streaming=True, tools=True, json_schema=True)
        return LLMCapabilities(
            streaming=True,
            tools=base.tools if c.tools is None else c.tools,
            json_schema=base.json_schema if c.json_schema is None else c.json_schema,
            images=(known.images if known else False) if c.images is None else c.images,
            context_window=base.context_window if known else c.context_window,
            max_output_tokens=base.max_output_tokens if known else c.max_output_tokens,
        )

    def readiness(self) -> ProviderError | None:
        return self.connection.readiness()

    def _body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        return chat_body(
            request, stream=stream, stream_usage=self.config.stream_usage, max_tokens_field=self.max_tokens_field
        )

    def complete(self, request: ChatRequest) -> ChatResponse:
        model = request.model or self.default_model
        data, headers = self.connection.post(
            "chat/completions", self._body(request, False), model=model, bodies=request.texts()
        )
        request_id = headers.get("x-request-id")
        choices = data.get("choices") if isinstance(data, Mapping) else None
        if not choices or not isinstance(choices[0], Mapping) or not isinstance(choices[0].get("message"), Mapping):
            if isinstance(data, Mapping) and "error" in data:  # some servers answer errors with HTTP 200
                raise error_from_payload(
                    None,
                    data,
                    provider=self.name,
                    model=model,
                    secrets=self.connection.secrets(),
                    bodies=request.texts(),
                )
            raise UpstreamError(
                f"{self.name} answered without a message",
                retryable=True,
                provider=self.name,
                model=model,
                request_id=request_id,
            )
        choice = choices[0]
        message = choice["message"]
        calls = tuple(
            ToolCall(
                str(c.get("id") or ""),
                str((c.get("function") or {}).get("name") or ""),
                str((c.get("function") or {}).get("arguments") or ""),
            )
            for c in message.get("tool_calls") or ()
            if isinstance(c, Mapping)
        )
        content = message.get("content") if isinstance(message.get("content"), str) else None
        usage = usage_from(data.get("usage"))
        finish = choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None
        response_model = data.get("model") if isinstance(data.get("model"), str) else model
        if finish == "content_filter":
            raise ContentFilteredError(
                f"{self.name} withheld the reply (finish_reason content_filter)",
                hint="the provider's content filter flagged the request or the reply; rephrase the request",
                provider=self.name,
                model=response_model,
                request_id=request_id,
                usage=usage,
            )
        return ChatResponse(content, calls, finish, usage, response_model, request_id or data.get("id"))

    def stream(self, request: ChatRequest) -> Iterator[ChatChunk]:
        model = request.model or self.default_model
        body = self._body(request, True)
        headers = self.connection.headers()
        finish: str | None = None
        done = False
        try:
            with self.connection.client.stream("POST", "chat/completions", json=body, headers=headers) as response:
                if response.status_code != 200:
                    response.read()
                    raise error_from_response(
                        response.status_code,
                        response.headers,
                        response.content,
                        provider=self.name,
                        model=model,
                        secrets=self.connection.secrets(),
                        bodies=request.texts(),
                    )
                request_id = response.headers.get("x-request-id")
                usage = None
                for data in sse_data(response.iter_lines()):
                    if data.strip() == "[DONE]":
                        done = True
                        break
                    try:
                        event = json.loads(data)
                    except ValueError:
                        raise UpstreamError(
                            f"{self.name} streamed an event that is not JSON",
                            retryable=True,
                            provider=self.name,
                            model=model,
                            request_id=request_id,
                        ) from None
                    if isinstance(event, Mapping) and "error" in event:
                        # An error after HTTP 200: the status line said nothing, the event says it all.
                        raise error_from_payload(
                            None,
                            event,
                            provider=self.name,
                            model=model,
                            secrets=self.connection.secrets(),
                            bodies=request.texts(),
                        )
                    if not isinstance(event, Mapping):
                        continue
                    chunk = chunk_from_event(event, request_id)
                    finish = chunk.finish_reason or finish
                    usage = chunk.usage or usage
                    yield chunk
        except httpx.HTTPError as exc:
            raise self.connection.transport_error(exc, model) from None
        if not done and finish is None:
            raise UpstreamError(
                f"{self.name}: the stream ended before the reply was finished",
                retryable=True,
                provider=self.name,
                model=model,
            )
        if finish == "content_filter":
            raise ContentFilteredError(
                f"{self.name} stopped the reply (finish_reason content_filter)",
                hint="the provider's content filter flagged the request or the reply",
                provider=self.name,
                model=model,
                usage=usage,
            )

    def close(self) -> None:
        self.connection.close()
