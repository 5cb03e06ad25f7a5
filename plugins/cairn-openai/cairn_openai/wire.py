"""The OpenAI wire format: request bodies, usage, server-sent events, and errors mapped to cairn's taxonomy.

Pure functions over parsed JSON and bytes (no httpx), so each mapping is
tested on its own. Error text from the server is redacted before it goes
into an error: the key, auth headers and any word of the request bodies
(gateways echo the prompt) are removed.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

from cairn.materialize import format_messages
from cairn.providers import (
    ChatChunk,
    ChatRequest,
    ProviderError,
    ToolCallDelta,
    Usage,
    error_for,
    parse_retry_after,
    redact_text,
)

__all__ = [
    "chat_body",
    "chunk_from_event",
    "decode_vector",
    "error_from_payload",
    "error_from_response",
    "sse_data",
    "usage_from",
]

_CONTEXT_CODES = {"context_length_exceeded", "string_above_max_length", "context_window_exceeded"}
_CONTEXT_TYPES = {"exceed_context_size_error"}  # llama.cpp's server
_CONTEXT_TEXT = re.compile(
    r"context[ _-]?(length|window|size)|maximum context|too many tokens|prompt is too long|input is too long"
    r"|exceeds? the (available )?context",
    re.IGNORECASE,
)
_FILTER_CODES = {"content_filter", "content_policy_violation", "content_filtered"}
_QUOTA_CODES = {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"}
_RATE_TYPES = {"rate_limit_error", "rate_limit_exceeded", "requests", "tokens"}
_AUTH_CODES = {"invalid_api_key", "invalid_authentication", "unauthorized"}


# -- requests ------------------------------------------------------------------------------


def chat_body(request: ChatRequest, *, stream: bool, stream_usage: bool, max_tokens_field: str) -> dict[str, Any]:
    """The JSON body of ``POST /chat/completions`` for ``request``."""
    body: dict[str, Any] = {"model": request.model, "messages": format_messages(list(request.messages), "openai")}
    if request.max_output_tokens is not None:
        body[max_tokens_field] = request.max_output_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.stop:
        body["stop"] = list(request.stop)
    if request.seed is not None:
        body["seed"] = request.seed
    if request.tools:
        body["tools"] = [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in request.tools
        ]
    if request.tool_choice is not None:
        body["tool_choice"] = (
            request.tool_choice
            if request.tool_choice in ("auto", "none", "required")
            else {"type": "function", "function": {"name": request.tool_choice}}
        )
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_object":
        body["response_format"] = {"type": "json_object"}
    elif fmt is not None and fmt.type == "json_schema":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": fmt.name, "schema": fmt.schema, "strict": fmt.strict},
        }
    if stream:
        body["stream"] = True
        if stream_usage:
            body["stream_options"] = {"include_usage": True}
    return body


# -- responses -------------------------------------------------------------------------------


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


_D = TypeVar("_D")


def _mapping(value: Any) -> Mapping[str, Any]:
    """A JSON object from a server, or an empty one when it sent something else."""
    return value if isinstance(value, Mapping) else {}


def _text(value: Any, default: _D) -> str | _D:
    """A string from a server, or ``default`` when it sent something else."""
    return value if isinstance(value, str) else default


def usage_from(data: Any) -> Usage | None:
    """Normalize OpenAI's usage object (``prompt_tokens`` includes cached tokens; reasoning is part of completion)."""
    if not isinstance(data, Mapping):
        return None
    prompt = _int(data.get("prompt_tokens"))
    completion = _int(data.get("completion_tokens"))
    details = _mapping(data.get("prompt_tokens_details"))
    output_details = _mapping(data.get("completion_tokens_details"))
    cached = min(_int(details.get("cached_tokens")), prompt)
    reasoning = min(_int(output_details.get("reasoning_tokens")), completion)
    return Usage(prompt, completion, cache_read_tokens=cached, reasoning_tokens=reasoning)


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The ``data`` of each server-sent event (multi-line data joined by newlines); comments skipped."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def chunk_from_event(data: Mapping[str, Any], request_id: str | None) -> ChatChunk:
    """One streamed ``chat.completion.chunk`` as a ``ChatChunk`` (the first choice; ``n`` is always 1)."""
    choices = data.get("choices") or []
    content = ""
    deltas: list[ToolCallDelta] = []
    finish = None
    if choices and isinstance(choices[0], Mapping):
        choice = choices[0]
        delta = _mapping(choice.get("delta"))
        content = _text(delta.get("content"), "")
        for position, call in enumerate(delta.get("tool_calls") or ()):
            if not isinstance(call, Mapping):
                continue
            function = _mapping(call.get("function"))
            index = call.get("index")
            deltas.append(
                ToolCallDelta(
                    index if isinstance(index, int) else position,
                    _text(call.get("id"), None),
                    _text(function.get("name"), None),
                    _text(function.get("arguments"), ""),
                )
            )
        finish = _text(choice.get("finish_reason"), None)
    model = _text(data.get("model"), None)
    return ChatChunk(content, tuple(deltas), finish, usage_from(data.get("usage")), model, request_id)


def decode_vector(value: Any) -> list[float]:
    """An embedding as floats: a JSON list, or base64 little-endian float32 from servers that ignore encoding_format."""
    if isinstance(value, list):
        return [float(x) for x in value]
    if isinstance(value, str):
        raw = base64.b64decode(value)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    raise ValueError("an embedding is neither a list nor base64")


# -- errors ----------------------------------------------------------------------------------


def _fields(payload: Any) -> tuple[str | None, str | None, str]:
    """(type, code, message) from an error payload in OpenAI's, vLLM's, llama.cpp's or a bare string shape."""
    error = payload.get("error", payload) if isinstance(payload, Mapping) else payload
    if isinstance(error, str):
        return None, None, error
    if not isinstance(error, Mapping):
        return None, None, ""
    type_ = _text(error.get("type"), None)
    code = error.get("code")
    code = code if isinstance(code, str) else None
    message = _text(error.get("message"), "")
    return type_, code, message


def _classify(status: int | None, type_: str | None, code: str | None, text: str) -> tuple[str, bool | None, str]:
    """(kind, retryable or None for the kind's default, hint) for one failure."""
    labels = {type_ or "", code or ""}
    if (
        labels & _CONTEXT_CODES
        or labels & _CONTEXT_TYPES
        or (status in (400, 413, 422, None) and _CONTEXT_TEXT.search(text))
    ):
        return (
            "context_window_exceeded",
            False,
            "materialize the context with a smaller budget, or use a model with a larger context window",
        )
    if labels & _FILTER_CODES:
        return "content_filtered", False, "the provider's content filter refused the request; rephrase it"
    if labels & _QUOTA_CODES:
        return "rate_limited", False, "the account's quota or credit is used up: check the provider's billing page"
    if status == 401 or labels & _AUTH_CODES:
        return "auth_failed", False, "check the key in the variable named by api_key_env, and organization"
    if status == 403:
        return "auth_failed", False, "the key is not allowed to use this model or endpoint (check project and region)"
    if status == 404:
        return (
            "misconfigured",
            False,
            "check the model name and base_url (it usually ends in /v1) in the provider's table",
        )
    if status == 408:
        return "timeout", True, "the server timed out the request"
    if status == 409:
        return "provider_error", True, "the server reported a conflict; retried"
    if status == 413:
        return "invalid_request", False, "the request body is too large for the server; send less context"
    if status == 429 or labels & _RATE_TYPES:
        return "rate_limited", True, "the provider is rate limiting; calls are retried per [providers] max_attempts"
    if status == 504:
        return "timeout", True, "the provider's gateway timed out"
    if status == 529:
        return "provider_error", True, "the provider is overloaded"
    if status is None:
        # An error event after HTTP 200: judge by its type.
        if type_ in ("invalid_request_error",):
            return "invalid_request", False, "the provider refused the request mid-stream"
        return "provider_error", True, "the provider failed while streaming"
    if status >= 500:
        return "provider_error", True, "the provider failed on its side"
    return "invalid_request", False, "the provider refused the request as malformed"


def error_from_payload(
    status: int | None,
    payload: Any,
    *,
    headers: Mapping[str, str] | None = None,
    provider: str,
    model: str | None,
    secrets: Iterable[str] = (),
    bodies: Iterable[str] = (),
) -> ProviderError:
    """The taxonomy error for an error payload (an HTTP error body, or a ``data: {"error": ...}`` event)."""
    headers = headers or {}
    type_, code, raw = _fields(payload)
    kind, retryable, hint = _classify(status, type_, code, raw)
    said = redact_text(raw, secrets=secrets, bodies=bodies, keep=(model, provider))
    label = " ".join(p for p in (f"HTTP {status}" if status else "error event", type_, code and f"({code})") if p)
    message = f"{provider} {label}" + (f": {said}" if said else "")
    lowered = {k.lower(): v for k, v in headers.items()}
    return error_for(
        kind,
        message,
        hint=hint,
        retryable=retryable,
        retry_after_s=parse_retry_after(headers) if headers else None,
        status=status,
        provider=provider,
        model=model,
        request_id=lowered.get("x-request-id"),
        code=code or type_,
    )


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    provider: str,
    model: str | None,
    secrets: Iterable[str] = (),
    bodies: Iterable[str] = (),
) -> ProviderError:
    """The taxonomy error for a non-200 HTTP response; a body that is not JSON is never quoted."""
    try:
        payload: Any = json.loads(content) if content else {}
    except ValueError:
        payload = {}  # an HTML page from a proxy, say: it may quote anything, so say only its size
        error = error_from_payload(status, payload, headers=headers, provider=provider, model=model)
        error.message += f" (a non-JSON body of {len(content)} bytes)"
        error.args = (error.message,)
        return error
    return error_from_payload(
        status, payload, headers=headers, provider=provider, model=model, secrets=secrets, bodies=bodies
    )
