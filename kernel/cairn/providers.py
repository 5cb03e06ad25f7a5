"""LLM and embedding providers: contracts, the error taxonomy, usage and cost, retries, instrumentation.

A provider plugin registers a factory through ``cairn_register_llm_providers``
or ``cairn_register_embedding_providers``; the factory returns an
``LLMProvider`` or an ``EmbeddingProvider``. A provider makes exactly one
attempt per method call and reports failure as one of the taxonomy errors
below. Everything else is the kernel's, the same for every provider:

- ``LLM`` and ``Embedder`` wrap a provider. They check the request against
  the provider's declared capabilities (an oversized request fails locally
  as ``context_window_exceeded``, counted with the configured tokenizer),
  run the only retry loop (exponential backoff with full jitter, Retry-After
  honoured), assemble streams, normalize usage (estimating it with the
  tokenizer when the provider reports none) and price it.
- ``Meter`` records every attempt, success or failure: a ``provider:call``
  event on the bus and a ``SpendRecord`` in the store, metadata only (never a
  message body, a key, or error text that could echo them), and refuses calls
  once a spend ceiling from ``[providers]`` is reached.
- ``Providers`` builds them from the configuration: ``[cairn] llm`` /
  ``embeddings`` choose the provider, ``[providers]`` sets retries and
  ceilings, ``[llm.<name>]`` / ``[embeddings.<name>]`` the provider's own
  settings.

The error taxonomy is bounded: every failure is one of nine kinds, each a
subclass of ``cairn.errors.ProviderError`` carrying ``kind``, ``retryable``,
``retry_after_s``, ``status``, ``provider``, ``model``, ``request_id`` and,
when tokens were spent before the failure, ``usage``::

    cairn.errors.ProviderError
    ├── ProviderDisabledError       disabled                 no real provider configured (noop)
    ├── ProviderMisconfiguredError  misconfigured            missing key, unknown model, wrong URL
    ├── AuthFailedError             auth_failed              the key was refused (401, 403)
    ├── InvalidRequestError         invalid_request          the request is wrong (400, 413, 422, capabilities)
    ├── ContextWindowExceededError  context_window_exceeded  too many tokens for the model
    ├── ContentFilteredError        content_filtered         the provider's filter withheld the answer
    ├── RateLimitedError            rate_limited             slow down (429), or a quota is spent
    │   └── SpendCeilingError                                a [providers] spend ceiling is reached
    ├── ProviderTimeoutError        timeout                  no answer in time (408, 504, read timeouts)
    └── UpstreamError               provider_error           the provider failed (5xx, 529, broken streams)

Messages are ``cairn.model.Message`` values (provider-neutral, what the
materializer produces); OpenAI-format dicts are accepted too and converted
when a ``ChatRequest`` is built.
"""

from __future__ import annotations

import abc
import bisect
import datetime as _dt
import json
import math
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from cairn.config import ProvidersSettings
from cairn.errors import ProviderError, ValidationError
from cairn.events import EventBus
from cairn.events import bus as default_bus
from cairn.model import Message, ToolCall
from cairn.model.ledger import SpendRecord
from cairn.redact import redact_text as _redact_known
from cairn.tokenizers import Tokenizer

__all__ = [
    "AuthFailedError",
    "CALL_EVENT",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "ChatStream",
    "ContentFilteredError",
    "ContextWindowExceededError",
    "ERROR_KINDS",
    "EmbeddingCapabilities",
    "EmbeddingProvider",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "Embedder",
    "InvalidRequestError",
    "LLM",
    "LLMCapabilities",
    "LLMProvider",
    "Meter",
    "Price",
    "ProviderDisabledError",
    "ProviderError",
    "ProviderInfo",
    "ProviderMisconfiguredError",
    "ProviderTimeoutError",
    "Providers",
    "RateLimitedError",
    "ResponseFormat",
    "RetryPolicy",
    "SpendCeilingError",
    "Tool",
    "ToolCallDelta",
    "UpstreamError",
    "Usage",
    "error_for",
    "kind_of",
    "match_model",
    "message_from_dict",
    "parse_retry_after",
    "redact_text",
    "retry_call",
]

T = TypeVar("T")

#: The name of the event published for every provider call attempt.
CALL_EVENT = "provider:call"


# -- the error taxonomy ----------------------------------------------------------------

_CODE = re.compile(r"\A[A-Za-z0-9_.:-]{1,64}\Z")


class _TaxonomyError(ProviderError):
    """Shared constructor of the nine kinds; catch ``ProviderError`` or a kind, not this."""

    kind: str = "provider_error"
    default_retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        retryable: bool | None = None,
        retry_after_s: float | None = None,
        status: int | None = None,
        provider: str | None = None,
        model: str | None = None,
        request_id: str | None = None,
        code: str | None = None,
        usage: Usage | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.retryable = self.default_retryable if retryable is None else bool(retryable)
        self.retry_after_s = retry_after_s if retry_after_s is None or retry_after_s >= 0 else None
        self.status = status
        self.provider = provider
        self.model = model
        self.request_id = request_id
        # A provider's error code is a short identifier; anything longer might be echoed text.
        self.code = code if isinstance(code, str) and _CODE.match(code) else None
        self.usage = usage
        self.attempts = 1

    def __str__(self) -> str:
        text = f"[{self.kind}] {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def facts(self) -> dict[str, Any]:
        """What may be recorded about this error: its kind and metadata, never its message."""
        return {
            "kind": self.kind,
            "retryable": self.retryable,
            "retry_after_s": self.retry_after_s,
            "status": self.status,
            "code": self.code,
            "request_id": self.request_id,
            "attempts": self.attempts,
        }


class ProviderDisabledError(_TaxonomyError):
    """``disabled``: no real provider is configured (the ``noop`` default); the hint says how to enable one."""

    kind = "disabled"


class ProviderMisconfiguredError(_TaxonomyError):
    """``misconfigured``: the provider cannot work as configured (missing key, unknown model, wrong URL)."""

    kind = "misconfigured"


class AuthFailedError(_TaxonomyError):
    """``auth_failed``: the provider refused the credentials (HTTP 401, 403)."""

    kind = "auth_failed"


class InvalidRequestError(_TaxonomyError):
    """``invalid_request``: the request is malformed or asks for what the model cannot do."""

    kind = "invalid_request"


class ContextWindowExceededError(_TaxonomyError):
    """``context_window_exceeded``: the input (plus the output asked for) does not fit the model."""

    kind = "context_window_exceeded"


class ContentFilteredError(_TaxonomyError):
    """``content_filtered``: the provider's content filter refused the request or withheld the answer."""

    kind = "content_filtered"


class RateLimitedError(_TaxonomyError):
    """``rate_limited``: too many requests (retryable, often with ``retry_after_s``) or a spent quota (not)."""

    kind = "rate_limited"
    default_retryable = True


class SpendCeilingError(RateLimitedError):
    """A ``[providers]`` spend ceiling is reached: names the ceiling, its limit and the spend so far."""

    default_retryable = False

    def __init__(self, message: str, *, ceiling: str, limit: float, spent: float, **facts: Any) -> None:
        super().__init__(message, **facts)
        self.ceiling = ceiling
        self.limit = limit
        self.spent = spent


class ProviderTimeoutError(_TaxonomyError):
    """``timeout``: no (complete) answer in time."""

    kind = "timeout"
    default_retryable = True


class UpstreamError(_TaxonomyError):
    """``provider_error``: the provider failed on its side or answered something unusable."""

    kind = "provider_error"
    default_retryable = True


#: Every kind of the taxonomy and its error class.
ERROR_KINDS: dict[str, type[_TaxonomyError]] = {
    cls.kind: cls
    for cls in (
        ProviderDisabledError,
        ProviderMisconfiguredError,
        AuthFailedError,
        InvalidRequestError,
        ContextWindowExceededError,
        ContentFilteredError,
        RateLimitedError,
        ProviderTimeoutError,
        UpstreamError,
    )
}


def error_for(kind: str, message: str, **facts: Any) -> ProviderError:
    """Build the taxonomy error of ``kind`` (plugins map their provider's codes to kinds with it)."""
    try:
        cls = ERROR_KINDS[kind]
    except KeyError:
        raise ValueError(f"{kind!r} is not a provider error kind; one of {', '.join(ERROR_KINDS)}") from None
    return cls(message, **facts)


def kind_of(error: BaseException) -> str:
    """The taxonomy kind of any error a provider raised; anything outside the taxonomy is ``provider_error``."""
    return getattr(error, "kind", None) or "provider_error"


def _as_taxonomy(error: BaseException, provider: str, model: str) -> _TaxonomyError:
    """Bring any exception from a provider into the taxonomy (a plugin bug must not escape as a traceback)."""
    if isinstance(error, _TaxonomyError):
        if error.provider is None:
            error.provider = provider
        if error.model is None:
            error.model = model
        return error
    if isinstance(error, ProviderError):
        # A bare cairn.errors.ProviderError: keep its message, give it a kind.
        wrapped = UpstreamError(error.message, hint=error.hint, retryable=False, provider=provider, model=model)
    else:
        # Never str(error): an SDK's exception text may quote the request.
        wrapped = UpstreamError(
            f"the {provider} provider failed with {type(error).__name__}",
            hint="this is a bug in the provider plugin; report it with the error type",
            retryable=False,
            provider=provider,
            model=model,
        )
    wrapped.__cause__ = None
    return wrapped


# -- redaction ---------------------------------------------------------------------------

_SECRET_PATTERNS = re.compile(
    r"(?i)(bearer\s+[^\s\"',;]+"
    r"|\b(?:sk|pk|rk)-[A-Za-z0-9_-]{8,}"
    r"|\b(?:api[_-]?key|authorization|x-api-key|access[_-]?token)\b[\"']?\s*[:=]\s*[\"']?[^\s\"',;]+)"
)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
_WORD = re.compile(r"\w+", re.UNICODE)
_MIN_ECHO = 4  # shorter words are too common to be evidence of an echo
_ECHO_MARK = "[…]"
_MAX_ERROR_TEXT = 300


class _Echoes:
    """The words of request bodies (or of secrets), for spotting error text that quotes them.

    A gateway may echo the start of the prompt, cut anywhere: an error word
    that is a body word counts, and so does a cut piece of one (a prefix or
    suffix) where the text was cut. ``singles`` are the words of bodies that
    hold only one word long enough to count: a lone quoted word is the whole body.
    """

    def __init__(self, bodies: Iterable[str] | Callable[[], Iterable[str]]) -> None:
        # Built on first use: only a failed call needs it, and a long context makes it costly.
        self._bodies = bodies
        self._words: set[str] | None = None
        self.singles: set[str] = set()
        self.sorted: list[str] = []
        self.reversed: list[str] = []

    @property
    def words(self) -> set[str]:
        if self._words is None:
            bodies = self._bodies() if callable(self._bodies) else self._bodies
            self._words = set()
            for body in bodies:
                found = {w.lower() for w in _WORD.findall(body or "") if len(w) >= _MIN_ECHO}
                self._words |= found
                if len(found) == 1:
                    self.singles |= found
            self.sorted = sorted(self._words)
            self.reversed = sorted(w[::-1] for w in self._words)
            self._bodies = ()
        return self._words

    def __contains__(self, word: str) -> bool:
        w = word.lower()
        return w in self.words or self.starts(w) or self.ends(w)

    def starts(self, piece: str) -> bool:
        """Whether some word begins with ``piece`` (an echo cut at its end)."""
        return bool(self.words) and _has_prefix(self.sorted, piece)

    def ends(self, piece: str) -> bool:
        """Whether some word ends with ``piece`` (an echo cut at its start)."""
        return bool(self.words) and _has_prefix(self.reversed, piece[::-1])


def _has_prefix(ordered: list[str], prefix: str) -> bool:
    at = bisect.bisect_left(ordered, prefix)
    return at < len(ordered) and ordered[at].startswith(prefix)


# Where an echo was cut: an ellipsis, or a mask such as the *** a gateway or this module put there.
_CUT_MARK = re.compile(r"…|\.\.\.|\*\*\*")
_TAIL = re.compile(r"[\w\s/+=-]*")  # what may trail a word cut mid-token


def _echo_words(text: str, sources: Sequence[_Echoes], keep: set[str]) -> set[int]:
    """Start offsets of the words of ``text`` that echo a body or a secret.

    One word alone is not evidence: ``mini`` of ``nope-mini`` and ``JSON`` of
    cairn's own "a non-JSON body" are ordinary words that prompts hold too.
    A word counts when it stands where the text was cut (at its very end, or
    beside ``…`` / ``***``; there a cut piece of a word counts too), when it
    is the only word of a body, or when it is one of two or more echoed words
    in a row (short words and punctuation between them do not break a row).
    """
    words = [m for m in _WORD.finditer(text) if len(m.group(0)) >= _MIN_ECHO]
    sure: list[bool] = []
    maybe: list[bool] = []
    for i, match in enumerate(words):
        word = match.group(0).lower()
        before = text[words[i - 1].end() if i else 0 : match.start()]
        after = text[match.end() : words[i + 1].start() if i + 1 < len(words) else len(text)]
        cut_before = bool(_CUT_MARK.search(before))
        # The text cut off after the last long word: nothing but blanks or a short fragment follow it.
        cut_after = bool(_CUT_MARK.search(after)) or (i + 1 == len(words) and _TAIL.fullmatch(after) is not None)
        exact = word not in keep and any(word in source.words for source in sources)
        piece = word not in keep and any(
            (cut_after and source.starts(word)) or (cut_before and source.ends(word)) for source in sources
        )
        alone = exact and any(word in source.singles for source in sources)
        sure.append(piece or alone or (exact and (cut_before or cut_after)))
        maybe.append(exact or piece)
    marked: set[int] = set()
    for i, match in enumerate(words):
        beside = (i > 0 and maybe[i - 1]) or (i + 1 < len(words) and maybe[i + 1])
        if sure[i] or (maybe[i] and beside):
            marked.add(match.start())
    return marked


def redact_text(
    text: str, *, secrets: Iterable[str] = (), bodies: Iterable[str] = (), keep: Iterable[str | None] = ()
) -> str:
    """``text`` with secrets and echoes of the request bodies removed, cut to a readable length.

    ``secrets`` are replaced wherever they occur; auth headers, key shapes,
    ``api_key=...`` pairs and URL passwords are replaced whatever they hold
    (``cairn.redact``); words of ``text`` that echo ``bodies`` or a piece of a
    secret become ``[…]`` (see ``_echo_words`` for what counts as an echo: a
    lone ordinary word does not). Words of ``keep`` (the model and provider
    names) are never taken for echoes.
    """
    if not text:
        return text
    secrets = [s for s in secrets if s and len(s) >= 4]
    for secret in secrets:
        text = text.replace(secret, "***")
    text = _SECRET_PATTERNS.sub("***", text)
    text = _URL_USERINFO.sub(r"\1***@", text)
    text = _redact_known(text)
    echoes = bodies if isinstance(bodies, _Echoes) else _Echoes(bodies)
    # A key cut short in an echo no longer matches whole: its pieces are caught like prompt words.
    pieces = _Echoes(secrets)
    if echoes.words or pieces.words:
        kept = {w.lower() for name in keep if name for w in _WORD.findall(name)}
        marked = _echo_words(text, (echoes, pieces), kept)
        if marked:
            text = _WORD.sub(lambda m: _ECHO_MARK if m.start() in marked else m.group(0), text)
            text = re.sub(r"(?:\[…\][\s\W]*){2,}", _ECHO_MARK + " ", text).strip()
    if len(text) > _MAX_ERROR_TEXT:
        text = text[: _MAX_ERROR_TEXT - 1] + "…"
    return text


def _own(error: _TaxonomyError) -> _TaxonomyError:
    """Mark an error the kernel wrote itself: its text quotes nothing, so it is not redacted."""
    error._kernel_made = True  # type: ignore[attr-defined]
    return error


def _redact_error(error: _TaxonomyError, secrets: Sequence[str], echoes: _Echoes) -> _TaxonomyError:
    """Redact an error from a provider in place (defence in depth: plugins redact too)."""
    if getattr(error, "_kernel_made", False):
        return error
    keep = (error.model, error.provider)  # names the kernel knows are not echoes
    message = redact_text(error.message, secrets=secrets, bodies=echoes, keep=keep)
    hint = redact_text(error.hint, secrets=secrets, bodies=echoes, keep=keep) if error.hint else error.hint
    error.message, error.hint = message, hint
    error.args = (message,)
    return error


# -- usage, prices and cost ------------------------------------------------------------


def _count(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValidationError(f"must be a non-negative integer, got {value!r}", what="usage", field=attribute.name)


@attrs.frozen
class Usage:
    """Tokens one call used, normalized across providers.

    ``input_tokens`` counts every input token, cached ones included (OpenAI's
    ``prompt_tokens``; a provider that reports cached tokens apart, like
    Anthropic, adds them in). ``output_tokens`` includes reasoning tokens.
    ``cache_read_tokens`` / ``cache_write_tokens`` are the parts of the input
    read from / written to a prompt cache. ``estimated`` is True when the
    counts come from the configured tokenizer, not from the provider.
    """

    input_tokens: int = attrs.field(default=0, validator=_count)
    output_tokens: int = attrs.field(default=0, validator=_count)
    cache_read_tokens: int = attrs.field(default=0, validator=_count)
    cache_write_tokens: int = attrs.field(default=0, validator=_count)
    reasoning_tokens: int = attrs.field(default=0, validator=_count)
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.estimated or other.estimated,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "estimated": self.estimated,
        }


def _as_float(value: Any) -> Any:
    # TOML writes a round price as an integer (input = 1); prices are floats.
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _price(instance: Any, attribute: attrs.Attribute, value: float | None) -> None:
    if value is not None and (
        not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or not math.isfinite(value)
    ):
        raise ValueError(f"{attribute.name} must be a price of 0 or more per million tokens, got {value!r}")


@attrs.frozen
class Price:
    """What a model costs per million tokens; ``cached_input`` / ``cache_write`` default to ``input``.

    Plugins ship a table of these (``{model: Price}``); a provider's TOML
    table overrides it with ``prices``: ``[llm.openai.prices."gpt-4o"]``.
    """

    input: float = attrs.field(converter=lambda v: _as_float(v), validator=_price)
    output: float = attrs.field(default=0.0, converter=lambda v: _as_float(v), validator=_price)
    cached_input: float | None = attrs.field(default=None, converter=lambda v: _as_float(v), validator=_price)
    cache_write: float | None = attrs.field(default=None, converter=lambda v: _as_float(v), validator=_price)

    def cost(self, usage: Usage) -> float:
        """The cost of ``usage``: uncached input, cache reads, cache writes and output at their prices."""
        cached_read = self.input if self.cached_input is None else self.cached_input
        cached_write = self.input if self.cache_write is None else self.cache_write
        plain_input = max(0, usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens)
        total = (
            plain_input * self.input
            + usage.cache_read_tokens * cached_read
            + usage.cache_write_tokens * cached_write
            + usage.output_tokens * self.output
        )
        return total / 1_000_000


# Price is structured from TOML by the kernel's converter, which needs real types, not strings.
attrs.resolve_types(Price)

_SNAPSHOT = re.compile(r"\A-(?:\d{4}-\d{2}-\d{2}|\d{4}|\d{2}-\d{2}|latest|preview)\Z")


def match_model(table: Mapping[str, T], model: str) -> T | None:
    """The entry for ``model`` in a per-model table, or None.

    An exact name wins; otherwise the longest name of which ``model`` is a
    dated snapshot (``gpt-4o-2024-08-06`` -> ``gpt-4o``, ``gpt-3.5-turbo-0125``
    -> ``gpt-3.5-turbo``). Never a mere prefix: ``gpt-4o-mini`` does not get
    ``gpt-4o``'s entry.
    """
    if model in table:
        return table[model]
    best: str | None = None
    for name in table:
        if model.startswith(name) and _SNAPSHOT.match(model[len(name) :]):
            if best is None or len(name) > len(best):
                best = name
    return table[best] if best is not None else None


# -- capabilities ----------------------------------------------------------------------


def _optional_positive(instance: Any, attribute: attrs.Attribute, value: int | None) -> None:
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
    parameters: dict = attrs.field(factory=lambda: {"type": "object", "properties": {}})

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
    schema: dict | None = None
    name: str = "response"
    strict: bool = True

    def __attrs_post_init__(self) -> None:
        if self.type == "json_schema" and not isinstance(self.schema, dict):
            raise ValidationError("a json_schema response format needs a schema (a dict)", what="response_format")

    @classmethod
    def json_schema(cls, schema: dict, *, name: str = "response", strict: bool = True) -> ResponseFormat:
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


def _json_metadata(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
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
    stop: tuple[str, ...] = attrs.field(default=(), converter=lambda v: (v,) if isinstance(v, str) else tuple(v))
    seed: int | None = None
    tools: tuple[Tool, ...] = attrs.field(default=(), converter=_tools)
    tool_choice: str | None = None
    response_format: ResponseFormat | None = None
    metadata: dict = attrs.field(factory=dict, validator=_json_metadata)

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


# -- embeddings ------------------------------------------------------------------------


@attrs.frozen
class EmbeddingRequest:
    """Texts to embed with ``model`` (None: the provider's default)."""

    texts: tuple[str, ...] = attrs.field(converter=tuple)
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

    vectors: list
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


# -- the provider contracts --------------------------------------------------------------


class LLMProvider(abc.ABC):
    """What an LLM plugin's factory returns.

    Each method makes one attempt and never retries: the kernel owns the
    retry loop. Failures are taxonomy errors (``error_for(kind, ...)``) with
    messages that hold no key and no text from the request. ``request.model``
    always names a model when a method is called (the kernel fills the default).
    """

    #: The model used when a request names none.
    default_model: str = ""
    #: Prices by model (``match_model`` finds dated snapshots); a missing model costs ``None``.
    prices: Mapping[str, Price] = {}

    @abc.abstractmethod
    def capabilities(self, model: str) -> LLMCapabilities:
        """What ``model`` can do, as far as the provider knows."""

    @abc.abstractmethod
    def complete(self, request: ChatRequest) -> ChatResponse:
        """One whole reply."""

    def stream(self, request: ChatRequest) -> Iterator[ChatChunk]:
        """The reply as chunks, the last one carrying the finish reason (and usage, when reported).

        The default makes a whole call and yields it as one chunk; providers
        with ``streaming`` in their capabilities override it.
        """
        response = self.complete(request)
        deltas = tuple(ToolCallDelta(i, c.id, c.name, c.arguments) for i, c in enumerate(response.tool_calls))
        yield ChatChunk(
            response.content or "", deltas, response.finish_reason, response.usage, response.model, response.request_id
        )

    def readiness(self) -> ProviderError | None:
        """The error a call would fail with before reaching the provider (disabled, missing key), or None."""
        return None

    def close(self) -> None:  # optional: a provider holding nothing keeps this no-op
        """Release connections."""
        return None


class EmbeddingProvider(abc.ABC):
    """What an embedding plugin's factory returns; ``embed`` makes one attempt on at most ``max_batch`` texts."""

    default_model: str = ""
    prices: Mapping[str, Price] = {}

    @abc.abstractmethod
    def capabilities(self, model: str) -> EmbeddingCapabilities:
        """The bounds of ``model``."""

    @abc.abstractmethod
    def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """One vector per text, in the order of ``request.texts``."""

    def readiness(self) -> ProviderError | None:
        """The error a call would fail with before reaching the provider, or None."""
        return None

    def close(self) -> None:  # optional: a provider holding nothing keeps this no-op
        """Release connections and models."""
        return None


# -- retries ---------------------------------------------------------------------------


@attrs.frozen
class RetryPolicy:
    """When to try again: attempts, full-jitter exponential backoff, Retry-After, and a deadline."""

    max_attempts: int = 3
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 20.0
    max_retry_after_s: float = 60.0
    deadline_s: float | None = None

    @classmethod
    def from_settings(cls, settings: ProvidersSettings) -> RetryPolicy:
        return cls(
            settings.max_attempts,
            settings.backoff_initial_s,
            settings.backoff_max_s,
            settings.max_retry_after_s,
            settings.call_deadline_s,
        )

    def delay(self, attempt: int, error: ProviderError, elapsed_s: float, rng: Callable[[], float]) -> float | None:
        """Seconds to wait before attempt ``attempt + 1`` after ``error``, or None to give up.

        Full jitter: uniform in [0, min(cap, initial * 2**(attempt-1))]. A
        Retry-After is a floor: never retry sooner than the provider asked.
        """
        if not getattr(error, "retryable", False) or attempt >= self.max_attempts:
            return None
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * (2 ** (attempt - 1)))
        wait = rng() * ceiling
        after = getattr(error, "retry_after_s", None)
        if after is not None:
            if after > self.max_retry_after_s:
                return None
            wait = max(wait, after)
        if self.deadline_s is not None and elapsed_s + wait >= self.deadline_s:
            return None
        return wait


def retry_call(
    attempt: Callable[[int], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: Callable[[], float] = random.random,
) -> T:
    """Call ``attempt(n)`` for n = 1, 2, ... until it returns, retrying retryable ``ProviderError``s per ``policy``.

    The last error is raised with ``attempts`` set; when a Retry-After beyond
    ``max_retry_after_s`` or the deadline stopped the loop, its hint says so.
    """
    start = clock()
    number = 1
    while True:
        try:
            return attempt(number)
        except ProviderError as error:
            wait = policy.delay(number, error, clock() - start, rng)
            if wait is None:
                _explain_give_up(error, number, policy, clock() - start)
                raise
            sleep(wait)
            number += 1


def _explain_give_up(error: ProviderError, attempts: int, policy: RetryPolicy, elapsed: float) -> None:
    error.attempts = attempts  # type: ignore[attr-defined]
    if not getattr(error, "retryable", False):
        return
    after = getattr(error, "retry_after_s", None)
    if after is not None and after > policy.max_retry_after_s:
        why = (
            f"the provider asked to wait {after:g} s, over [providers] max_retry_after_s = {policy.max_retry_after_s:g}"
        )
    elif attempts >= policy.max_attempts or policy.deadline_s is None:
        why = f"gave up after {attempts} attempt{'s' if attempts != 1 else ''} ([providers] max_attempts)"
    else:
        why = f"gave up after {elapsed:.1f} s ([providers] call_deadline_s = {policy.deadline_s:g})"
    error.hint = f"{error.hint}; {why}" if error.hint else why


def parse_retry_after(headers: Mapping[str, str], *, now: Callable[[], _dt.datetime] | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date); None if absent or unreadable."""
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms:
        try:
            value = float(raw_ms) / 1000
            if math.isfinite(value) and value >= 0:
                return value
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if not raw:
        return None
    try:
        value = float(raw)
        return value if math.isfinite(value) and value >= 0 else None
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    current = now() if now else _dt.datetime.now(_dt.timezone.utc)
    return max(0.0, (when - current).total_seconds())


# -- instrumentation and spend ceilings ----------------------------------------------------


def _day_start(moment: str) -> str:
    return moment[:10] + "T00:00:00.000000Z"


class Meter:
    """Records every provider call attempt and enforces the spend ceilings of ``[providers]``.

    Each attempt publishes ``provider:call`` on the bus and appends a
    ``SpendRecord`` to the store (when there is one): provider, model, outcome,
    tokens, cost and run. Calls the kernel refused before reaching the
    provider (capabilities, ceilings) are recorded with ``calls=0``.

    The per-run ceiling counts the spend of ``run_id`` in the store, or, with
    no run id, everything this meter recorded (one command, one process).
    """

    def __init__(
        self,
        store: Any = None,
        *,
        settings: ProvidersSettings | None = None,
        bus: EventBus | None = None,
        run_id: str | None = None,
        now: Callable[[], str] | None = None,
    ) -> None:
        from cairn.model import now as _now

        self.store = store
        self.settings = settings or ProvidersSettings()
        self.bus = bus or default_bus
        self.run_id = run_id
        self.now = now or _now
        self.session_spend = 0.0

    @property
    def has_ceiling(self) -> bool:
        return self.settings.max_spend_per_day is not None or self.settings.max_spend_per_run is not None

    def spent_today(self) -> float:
        if self.store is None:
            return self.session_spend
        records = self.store.spend(since=_day_start(self.now()))
        return sum(r.cost for r in records if r.cost is not None)

    def spent_in_run(self) -> float:
        if self.store is None or self.run_id is None:
            return self.session_spend
        return sum(r.cost for r in self.store.spend(run_id=self.run_id) if r.cost is not None)

    def check(self, provider: str, model: str, price: Price | None, input_tokens: int | None) -> None:
        """Refuse the call when a ceiling is reached, counting what its input will cost at least."""
        if not self.has_ceiling:
            return
        if price is None:
            raise ProviderMisconfiguredError(
                f"a spend ceiling is set but the price of {provider} model {model!r} is unknown, "
                "so its spend could not be counted",
                hint=f'add a price to the provider\'s table, e.g. [llm.{provider}.prices."{model}"] input = 0.15, '
                "output = 0.60 (per million tokens; 0 for a free local model)",
                retryable=False,
                provider=provider,
                model=model,
            )
        upcoming = price.cost(Usage(input_tokens=input_tokens or 0))
        for ceiling, limit, spent, scope in (
            ("max_spend_per_day", self.settings.max_spend_per_day, self.spent_today, "today (UTC)"),
            ("max_spend_per_run", self.settings.max_spend_per_run, self.spent_in_run, "in this run"),
        ):
            if limit is None:
                continue
            so_far = spent()
            if so_far + upcoming > limit or so_far >= limit:
                raise SpendCeilingError(
                    f"spend ceiling reached: {_money(so_far)} spent {scope}"
                    + (f" and this call's input costs {_money(upcoming)}" if upcoming else "")
                    + f", against [providers] {ceiling} = {limit:g}",
                    ceiling=ceiling,
                    limit=limit,
                    spent=so_far,
                    hint=(
                        "wait until 00:00 UTC or raise the ceiling in cairn.toml"
                        if ceiling == "max_spend_per_day"
                        else "start a new run or raise the ceiling in cairn.toml"
                    ),
                    provider=provider,
                    model=model,
                )

    def record(
        self,
        *,
        operation: str,
        provider: str,
        model: str,
        outcome: str,
        sent: bool,
        attempt: int,
        latency_s: float,
        usage: Usage | None,
        cost: float | None,
        shape: Mapping[str, Any],
        error: _TaxonomyError | None = None,
        metadata: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        finish_reason: str | None = None,
    ) -> None:
        """Publish the ``provider:call`` event and append the spend record of one attempt."""
        if cost is not None:
            self.session_spend += cost
        ts = self.now()
        if self.store is not None:
            self.store.add_spend(
                [
                    SpendRecord(
                        ts=ts,
                        provider=provider,
                        model=model,
                        outcome=outcome,
                        calls=1 if sent else 0,
                        input_tokens=usage.input_tokens if usage else 0,
                        output_tokens=usage.output_tokens if usage else 0,
                        cost=cost,
                        run_id=self.run_id,
                    )
                ]
            )
        payload: dict[str, Any] = {
            "operation": operation,
            "provider": provider,
            "model": model,
            "outcome": outcome,
            "sent": sent,
            "attempt": attempt,
            "latency_ms": round(latency_s * 1000, 3),
            "usage": usage.to_dict() if usage else None,
            "cost": cost,
            "run_id": self.run_id,
            "request_id": request_id,
            "finish_reason": finish_reason,
            **shape,
        }
        if error is not None:
            payload["error"] = error.facts()
        if metadata:
            payload["metadata"] = dict(metadata)
        self.bus.publish(CALL_EVENT, payload, ts=ts)


def _money(amount: float) -> str:
    # Six decimals: one call to a small model costs around a millionth of a dollar.
    return f"{amount:.6f}" if amount < 100 else f"{amount:.2f}"


def _chat_shape(request: ChatRequest) -> dict[str, Any]:
    roles: dict[str, int] = {}
    characters = 0
    for m in request.messages:
        roles[m.role] = roles.get(m.role, 0) + 1
        characters += len(m.content or "") + sum(len(c.arguments) + len(c.name) for c in m.tool_calls)
    return {"messages": len(request.messages), "roles": roles, "characters": characters, "tools": len(request.tools)}


# -- the kernel's side of a call ---------------------------------------------------------


#: Failures that happen before any generation, so nothing is billed for them.
_UNBILLED = frozenset(
    {"disabled", "misconfigured", "auth_failed", "invalid_request", "context_window_exceeded", "rate_limited"}
)


def _monotonic() -> float:
    return time.perf_counter()


class _Caller:
    """What LLM and Embedder share: the provider's name, tokenizer, meter, retry policy and clocks."""

    def __init__(
        self,
        name: str,
        *,
        tokenizer: Tokenizer,
        meter: Meter | None = None,
        policy: RetryPolicy | None = None,
        secrets: Sequence[str] = (),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = _monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.name = name
        self.tokenizer = tokenizer
        self.meter = meter or Meter()
        self.policy = policy or RetryPolicy.from_settings(self.meter.settings)
        self.secrets = tuple(s for s in secrets if s)
        self.sleep = sleep
        self.clock = clock
        self.rng = rng

    def _model(self, provider: Any, model: str | None) -> str:
        chosen = model or provider.default_model
        if not chosen:
            raise ProviderMisconfiguredError(
                f"no model given and the {self.name} provider has no default model",
                hint=f'pass a model, or set model = "..." in its table ([llm.{self.name}] or [embeddings.{self.name}])',
                retryable=False,
                provider=self.name,
            )
        return chosen

    def _cost(
        self, provider: Any, model: str, usage: Usage | None, sent: bool, error: _TaxonomyError | None = None
    ) -> float | None:
        """The price of ``usage``; None when the price, or whether anything was billed, is unknown."""
        if not sent:
            return 0.0  # refused before anything reached the provider: nothing spent
        price = match_model(provider.prices, model)
        if price is None:
            return None
        if usage is None:
            if error is not None and error.kind in _UNBILLED:
                return 0.0  # refused up front: providers do not bill these
            if error is not None:
                return None  # a timeout or a server failure may or may not have been billed
            usage = Usage()
        return price.cost(usage)


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

    def _run(self) -> Iterator[ChatChunk]:
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
                if source is not None and hasattr(source, "close"):
                    source.close()
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


class Embedder(_Caller):
    """Embed texts through the kernel: bounds checked, batches split, retries, usage, cost and instrumentation."""

    def __init__(self, provider: EmbeddingProvider, name: str, **options: Any) -> None:
        super().__init__(name, **options)
        self.provider = provider

    def close(self) -> None:
        self.provider.close()

    def __enter__(self) -> Embedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def capabilities(self, model: str | None = None) -> EmbeddingCapabilities:
        return self.provider.capabilities(self._model(self.provider, model))

    def embed(
        self, texts: Sequence[str] | str, *, model: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> EmbeddingResponse:
        """One vector per text, in order; texts beyond the provider's batch size go in several requests."""
        if isinstance(texts, str):
            raise ValidationError("embed takes a list of texts", what="embed", hint="wrap a single text: embed([text])")
        request = EmbeddingRequest(texts, model)
        model = self._model(self.provider, model)
        request = attrs.evolve(request, model=model)
        caps = self.provider.capabilities(model)
        echoes = _Echoes(request.texts)
        shape = {"inputs": len(request.texts), "characters": sum(len(t) for t in request.texts)}
        price = match_model(self.provider.prices, model)
        counts: list[int] | None = None
        try:
            if caps.max_input_tokens is not None:
                counts = self.tokenizer.count_many(list(request.texts))
                for i, n in enumerate(counts):
                    if n > caps.max_input_tokens:
                        raise ContextWindowExceededError(
                            f"text {i} holds about {n} tokens, over {model!r}'s input limit of {caps.max_input_tokens} "
                            f"(counted with {self.tokenizer.name})",
                            hint="split the text into smaller chunks before embedding",
                            retryable=False,
                            provider=self.name,
                            model=model,
                        )
            if self.meter.has_ceiling:
                total = sum(counts) if counts is not None else sum(self.tokenizer.count_many(list(request.texts)))
                self.meter.check(self.name, model, price, total)
        except _TaxonomyError as error:
            self._record(model, error, shape, metadata, sent=False, attempt=1, latency=0.0, usage=None)
            raise
        if not request.texts:
            return EmbeddingResponse([], Usage(), model, provider=self.name, cost=0.0)
        size = caps.max_batch
        vectors: list = []
        usage = Usage()
        latency = 0.0
        request_id = None
        cost: float | None = 0.0
        for offset in range(0, len(request.texts), size):
            batch = attrs.evolve(request, texts=request.texts[offset : offset + size])
            part = self._embed_batch(batch, model, caps, echoes, metadata)
            vectors.extend(part.vectors)
            usage = usage + (part.usage or Usage())
            latency += part.latency_s
            request_id = part.request_id or request_id
            cost = None if cost is None or part.cost is None else cost + part.cost
        return EmbeddingResponse(vectors, usage, model, request_id, latency, self.name, cost)

    def _embed_batch(
        self,
        batch: EmbeddingRequest,
        model: str,
        caps: EmbeddingCapabilities,
        echoes: _Echoes,
        metadata: Mapping[str, Any] | None,
    ) -> EmbeddingResponse:
        shape = {"inputs": len(batch.texts), "characters": sum(len(t) for t in batch.texts)}

        def attempt(number: int) -> EmbeddingResponse:
            started = self.clock()
            try:
                response = self.provider.embed(batch)
                self._check_vectors(response, batch, caps, model)
            except Exception as raw:
                error = _redact_error(_as_taxonomy(raw, self.name, model), self.secrets, echoes)
                self._record(
                    model,
                    error,
                    shape,
                    metadata,
                    sent=True,
                    attempt=number,
                    latency=self.clock() - started,
                    usage=error.usage,
                )
                raise error from None
            latency = self.clock() - started
            usage = response.usage
            if usage is None:
                usage = Usage(input_tokens=sum(self.tokenizer.count_many(list(batch.texts))), estimated=True)
            cost = self._record(
                model,
                None,
                shape,
                metadata,
                sent=True,
                attempt=number,
                latency=latency,
                usage=usage,
                request_id=response.request_id,
                response_model=response.model,
            )
            return attrs.evolve(
                response, usage=usage, latency_s=latency, provider=self.name, cost=cost, model=response.model or model
            )

        return retry_call(attempt, self.policy, sleep=self.sleep, clock=self.clock, rng=self.rng)

    def _check_vectors(self, response: Any, batch: EmbeddingRequest, caps: EmbeddingCapabilities, model: str) -> None:
        if not isinstance(response, EmbeddingResponse):
            raise _own(
                UpstreamError(
                    f"the {self.name} provider returned {type(response).__name__}, not an EmbeddingResponse",
                    retryable=False,
                )
            )
        if len(response.vectors) != len(batch.texts):
            raise _own(
                UpstreamError(
                    f"{self.name} returned {len(response.vectors)} vectors for {len(batch.texts)} texts",
                    retryable=False,
                )
            )
        expected = caps.dimensions
        for i, vector in enumerate(response.vectors):
            size = len(vector)
            if expected is None:
                expected = size
            if size != expected:
                raise _own(
                    UpstreamError(
                        f"{self.name} returned a vector of {size} dimensions for text {i}, expected {expected}",
                        hint="check the model and the dimensions setting of the provider's table",
                        retryable=False,
                    )
                )

    def _record(
        self,
        model: str,
        error: _TaxonomyError | None,
        shape: Mapping[str, Any],
        metadata: Mapping[str, Any] | None,
        *,
        sent: bool,
        attempt: int,
        latency: float,
        usage: Usage | None,
        request_id: str | None = None,
        response_model: str | None = None,
    ) -> float | None:
        cost = self._cost(self.provider, model, usage, sent, error)
        self.meter.record(
            operation="embed",
            provider=self.name,
            model=response_model or model,
            outcome=error.kind if error is not None else "ok",
            sent=sent,
            attempt=attempt,
            latency_s=latency,
            usage=usage,
            cost=cost,
            shape=shape,
            error=error,
            metadata=metadata,
            request_id=request_id or (error.request_id if error else None),
        )
        return cost


# -- building providers from the configuration -------------------------------------------


@attrs.frozen
class ProviderInfo:
    """What ``cairn providers`` shows about one registered provider."""

    kind: str  # "llm" | "embeddings"
    name: str
    plugin: str
    description: str
    selected: bool
    ready: bool
    problem: str | None
    model: str | None
    capabilities: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


class Providers:
    """The providers of one project: builds ``LLM`` and ``Embedder`` objects that share one ``Meter``.

    ``[cairn] llm`` / ``embeddings`` name the default providers;
    ``[providers]`` sets retries and spend ceilings. Secrets named by the
    provider's ``*_env`` keys are redacted from every error it raises.
    """

    def __init__(
        self,
        config: Any,
        plugins: Any,
        *,
        store: Any,
        tokenizer: Tokenizer,
        bus: EventBus | None = None,
        run_id: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = _monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.plugins = plugins
        self.settings: ProvidersSettings = config.settings("providers", ProvidersSettings)
        self.meter = Meter(store, settings=self.settings, bus=bus, run_id=run_id)
        self.tokenizer = tokenizer
        self._options = {"sleep": sleep, "clock": clock, "rng": rng}
        self._open: list[Any] = []

    def _secrets(self, section: str, name: str) -> list[str]:
        import os

        base = name.partition(":")[0]
        table = self.config.table(section, base)
        return [os.environ.get(v, "") for k, v in table.items() if k.endswith("_env") and isinstance(v, str) and v]

    def llm(self, name: str | None = None) -> LLM:
        """The LLM provider ``name`` (default ``[cairn] llm``) behind the kernel's checks, retries and meter."""
        name = name or self.config.cairn.llm
        provider = self.plugins.create("llm", name, self.config)
        llm = LLM(
            provider,
            name.partition(":")[0],
            tokenizer=self.tokenizer,
            meter=self.meter,
            policy=RetryPolicy.from_settings(self.settings),
            secrets=self._secrets("llm", name),
            **self._options,
        )
        self._open.append(llm)
        return llm

    def embeddings(self, name: str | None = None) -> Embedder:
        """The embedding provider ``name`` (default ``[cairn] embeddings``)."""
        name = name or self.config.cairn.embeddings
        provider = self.plugins.create("embeddings", name, self.config)
        embedder = Embedder(
            provider,
            name.partition(":")[0],
            tokenizer=self.tokenizer,
            meter=self.meter,
            policy=RetryPolicy.from_settings(self.settings),
            secrets=self._secrets("embeddings", name),
            **self._options,
        )
        self._open.append(embedder)
        return embedder

    def describe(self) -> list[ProviderInfo]:
        """Every registered LLM and embedding provider: capabilities of its default model and readiness.

        Building a provider never loads a model or opens a connection, so
        this is cheap; a provider whose table is wrong is listed as not ready
        with the reason.
        """
        from cairn.errors import CairnError

        out: list[ProviderInfo] = []
        chosen = {"llm": self.config.cairn.llm, "embeddings": self.config.cairn.embeddings}
        for kind in ("llm", "embeddings"):
            for registration in self.plugins.registries[kind]:
                selected = chosen[kind].partition(":")[0] == registration.name
                name = chosen[kind] if selected else registration.name
                provider = None
                try:
                    provider = self.plugins.create(kind, name, self.config)
                    problem = provider.readiness()
                    model = provider.default_model or None
                    caps = provider.capabilities(model).to_dict() if model else None
                    secrets = self._secrets(kind, name)
                    reason = redact_text(problem.message, secrets=secrets) if problem is not None else None
                    if problem is not None and problem.hint:
                        reason += f" ({redact_text(problem.hint, secrets=secrets)})"
                    out.append(
                        ProviderInfo(
                            kind,
                            registration.name,
                            registration.plugin,
                            registration.description,
                            selected,
                            problem is None,
                            reason,
                            model,
                            caps,
                        )
                    )
                except CairnError as exc:
                    out.append(
                        ProviderInfo(
                            kind,
                            registration.name,
                            registration.plugin,
                            registration.description,
                            selected,
                            False,
                            str(exc),
                            None,
                            None,
                        )
                    )
                finally:
                    if provider is not None:
                        provider.close()
        return out

    def close(self) -> None:
        for item in self._open:
            item.close()
        self._open.clear()

    def __enter__(self) -> Providers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
