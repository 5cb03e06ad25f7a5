"""The request and response types: chat requests, replies and chunks, tools, response formats, embeddings, capabilities.

Messages are ``cairn.model.Message`` values (provider-neutral, what the
materializer produces); OpenAI-format dicts are accepted too and converted
(``message_from_dict``) when a ``ChatRequest`` is built.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from cairn.errors import ValidationError
from cairn.model import Message, ToolCall
from cairn.providers._usage import Usage

__all__ = [
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "EmbeddingCapabilities",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "LLMCapabilities",
    "ResponseFormat",
    "Tool",
    "ToolCallDelta",
    "message_from_dict",
]


def _optional_positive(instance: Any, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
        raise ValidationError(
            f"must be a positive integer or None, got {value!r}", what=type(instance).__name__, field=attribute.name
        )


@attrs.frozen
class LLMCapabilities:
    """What one model of an LLM provider can do; None for a size the provider does not know."""

    streaming: bool = True
    tools: bool = False
    json_schema: bool = False
    #: Takes images in user messages (artifact references are then sent as images, see ``cairn.images``).
    images: bool = False
    context_window: int | None = attrs.field(default=None, validator=_optional_positive)
    max_output_tokens: int | None = attrs.field(default=None, validator=_optional_positive)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class EmbeddingCapabilities:
    """The bounds of one embedding model: vector size, texts per request, tokens per text."""

    dimensions: int | None = attrs.field(default=None, validator=_optional_positive)
    max_batch: int = attrs.field(default=1, validator=_optional_positive)
    max_input_tokens: int | None = attrs.field(default=None, validator=_optional_positive)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


# -- chat requests and responses -------------------------------------------------------


@attrs.frozen
class Tool:
    """A function the model may call: its name, what it does and a JSON schema of its arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = attrs.field(factory=lambda: {"type": "object", "properties": {}})

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.name):
            raise ValidationError(f"tool name {self.name!r:.70} must be 1-64 letters, digits, '_' or '-'", what="tool")
        if not isinstance(self.parameters, dict):
            raise ValidationError("parameters must be a JSON schema object", what="tool", field="parameters")


_RESPONSE_TYPES = ("text", "json_object", "json_schema")


@attrs.frozen
class ResponseFormat:
    """How the reply must be shaped: free text, any JSON object, or JSON matching ``schema``."""

    type: str = attrs.field(default="text", validator=attrs.validators.in_(_RESPONSE_TYPES))
    schema: dict[str, Any] | None = None
    name: str = "response"
    strict: bool = True

    def __attrs_post_init__(self) -> None:
        if self.type == "json_schema" and not isinstance(self.schema, dict):
            raise ValidationError("a json_schema response format needs a schema (a dict)", what="response_format")

    @classmethod
    def json_schema(cls, schema: dict[str, Any], *, name: str = "response", strict: bool = True) -> ResponseFormat:
        return cls("json_schema", schema, name, strict)

    @classmethod
    def json_object(cls) -> ResponseFormat:
        return cls("json_object")


def message_from_dict(data: Mapping[str, Any]) -> Message:
    """An OpenAI-format chat message dict as a provider-neutral ``Message`` (text content only)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("role"), str):
        raise ValidationError("a message dict needs a 'role' string", what="message")
    content = data.get("content")
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ValidationError(
                    "only text content parts are supported",
                    what="message",
                    field="content",
                    hint="send images and audio through a provider's own API",
                )
            texts.append(part["text"])
        content = "".join(texts)
    if content is not None and not isinstance(content, str):
        raise ValidationError(
            "content must be a string, a list of text parts, or null", what="message", field="content"
        )
    calls = []
    for call in data.get("tool_calls") or ():
        function = call.get("function") or {}
        calls.append(
            ToolCall(str(call.get("id") or ""), str(function.get("name") or ""), str(function.get("arguments") or ""))
        )
    return Message(
        data["role"],
        content,
        name=data.get("name"),
        tool_calls=tuple(calls),
        tool_call_id=data.get("tool_call_id"),
    )


def _messages(value: Iterable[Message | Mapping[str, Any]]) -> tuple[Message, ...]:
    if isinstance(value, (str, bytes)) or isinstance(value, Mapping):
        raise ValidationError("messages must be a list of messages", what="chat request", field="messages")
    return tuple(m if isinstance(m, Message) else message_from_dict(m) for m in value)


def _tools(value: Iterable[Tool | Mapping[str, Any]]) -> tuple[Tool, ...]:
    out = []
    for tool in value:
        if isinstance(tool, Tool):
            out.append(tool)
        elif isinstance(tool, Mapping):
            spec = tool.get("function", tool)  # an OpenAI {"type": "function", "function": {...}} or the inner dict
            out.append(
                Tool(
                    spec.get("name"),
                    spec.get("description") or "",
                    spec.get("parameters") or {"type": "object", "properties": {}},
                )
            )
        else:
            raise ValidationError(
                f"a tool must be a Tool or a dict, got {type(tool).__name__}", what="chat request", field="tools"
            )
    return tuple(out)


def _strings(value: str | Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _json_metadata(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, dict):
        raise ValidationError("metadata must be a dict", what="chat request", field="metadata")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"metadata must be JSON: {exc}", what="chat request", field="metadata") from None


@attrs.frozen
class ChatRequest:
    """One chat request, provider-neutral.

    ``model`` None means the provider's default model. ``tool_choice`` is
    ``"auto"``, ``"none"``, ``"required"`` or a tool's name. ``metadata`` is
    the caller's own (JSON) and is copied into the ``provider:call`` event;
    it is never sent to the provider, so keep bodies and secrets out of it.
    """

    messages: tuple[Message, ...] = attrs.field(converter=_messages)
    model: str | None = None
    max_output_tokens: int | None = attrs.field(default=None, validator=_optional_positive)
    temperature: float | None = None
    stop: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    seed: int | None = None
    tools: tuple[Tool, ...] = attrs.field(default=(), converter=_tools)
    tool_choice: str | None = None
    response_format: ResponseFormat | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict, validator=_json_metadata)

    def __attrs_post_init__(self) -> None:
        if not self.messages:
            raise ValidationError("a chat request needs at least one message", what="chat request", field="messages")
        if self.tool_choice not in (None, "auto", "none", "required") and self.tool_choice not in {
            t.name for t in self.tools
        }:
            raise ValidationError(
                f"tool_choice {self.tool_choice!r} is neither auto, none, required nor one of the tools",
                what="chat request",
                field="tool_choice",
            )

    def texts(self) -> list[str]:
        """Every body text of the request (contents, tool arguments and schemas): what must never be recorded."""
        out: list[str] = []
        for m in self.messages:
            if m.content:
                out.append(m.content)
            out.extend(c.arguments for c in m.tool_calls if c.arguments)
        for tool in self.tools:
            out.append(tool.description)
            out.append(json.dumps(tool.parameters))
        if self.response_format is not None and self.response_format.schema:
            out.append(json.dumps(self.response_format.schema))
        out.extend(self.stop)
        return out


@attrs.frozen
class ChatResponse:
    """A whole reply: text and/or tool calls, why it ended, usage, and where it came from.

    Providers fill what they know (``usage`` None when the provider reported
    none); the kernel fills ``usage`` (estimated if need be), ``latency_s``,
    ``provider`` and ``cost`` (None when the model's price is unknown).
    """

    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str = ""
    request_id: str | None = None
    latency_s: float = 0.0
    provider: str = ""
    cost: float | None = None

    @property
    def message(self) -> Message:
        """The reply as an assistant message, ready to append to a conversation."""
        return Message("assistant", self.content, tool_calls=self.tool_calls)

    def to_dict(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "tool_calls": [attrs.asdict(c) for c in self.tool_calls],
            "finish_reason": self.finish_reason,
            "usage": self.usage.to_dict() if self.usage else None,
            "model": self.model,
            "request_id": self.request_id,
            "latency_s": self.latency_s,
            "provider": self.provider,
            "cost": self.cost,
        }


@attrs.frozen
class ToolCallDelta:
    """A piece of a streamed tool call; pieces with the same ``index`` join into one call."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@attrs.frozen
class ChatChunk:
    """One piece of a streamed reply: a text delta, tool-call deltas, and at the end finish reason and usage."""

    content: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    request_id: str | None = None


# -- embeddings ------------------------------------------------------------------------


def _texts(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class EmbeddingRequest:
    """Texts to embed with ``model`` (None: the provider's default)."""

    texts: tuple[str, ...] = attrs.field(converter=_texts)
    model: str | None = None

    def __attrs_post_init__(self) -> None:
        for i, text in enumerate(self.texts):
            if not isinstance(text, str):
                raise ValidationError(f"text {i} is {type(text).__name__}, not a string", what="embedding request")


@attrs.frozen
class EmbeddingResponse:
    """One vector per text, in input order; usage, model and (filled by the kernel) latency, provider, cost.

    A vector is a sequence of floats: a list from HTTP providers, a row of a
    NumPy array from local ones (``numpy.asarray(response.vectors)`` gives a
    matrix either way).
    """

    vectors: list[Any]
    usage: Usage | None = None
    model: str = ""
    request_id: str | None = None
    latency_s: float = 0.0
    provider: str = ""
    cost: float | None = None

    @property
    def dimensions(self) -> int | None:
        return len(self.vectors[0]) if self.vectors else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "provider": self.provider,
            "dimensions": self.dimensions,
            "vectors": [[float(x) for x in v] for v in self.vectors],
            "usage": self.usage.to_dict() if self.usage else None,
            "cost": self.cost,
            "latency_s": self.latency_s,
            "request_id": self.request_id,
        }
