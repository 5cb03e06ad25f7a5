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
  event on the bus and a ``SpendRecord`` in the store's ledger facet,
  metadata only (never a message body, a key, or error text that could echo
  them), and refuses calls once a spend ceiling from ``[providers]`` is
  reached. A store without the ledger facet records no spend; with a ceiling
  set, calls on it are refused (``MissingFacetError``): a ceiling cannot be
  enforced without spend history.
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

The public API is this package; its modules are private, each one concern,
each importing only those above it::

    _usage      Usage, Price, match_model
    _errors     the nine kinds, SpendCeilingError, ERROR_KINDS, error_for, kind_of
    _redact     redact_text: keys (through cairn.redact) and echoes of the request
    _types      ChatRequest, ChatResponse, ChatChunk, ToolCallDelta, Tool, ResponseFormat,
                EmbeddingRequest, EmbeddingResponse, the capabilities, message_from_dict
    _contract   LLMProvider, EmbeddingProvider
    _retry      RetryPolicy, retry_call, parse_retry_after
    _meter      Meter, CALL_EVENT: events, spend records, spend ceilings
    _caller     what LLM and Embedder share: model choice, pricing a call
    _llm        LLM, ChatStream
    _embedder   Embedder
    _build      Providers, ProviderInfo: providers from the configuration

``cairn.providers`` is imported by the commands that call a provider, never
at ``cairn`` start-up.
"""

from __future__ import annotations

from cairn.errors import ProviderError
from cairn.providers._build import ProviderInfo, Providers
from cairn.providers._contract import EmbeddingProvider, LLMProvider
from cairn.providers._embedder import Embedder
from cairn.providers._errors import (
    ERROR_KINDS,
    AuthFailedError,
    ContentFilteredError,
    ContextWindowExceededError,
    InvalidRequestError,
    ProviderDisabledError,
    ProviderMisconfiguredError,
    ProviderTimeoutError,
    RateLimitedError,
    SpendCeilingError,
    UpstreamError,
    error_for,
    kind_of,
)
from cairn.providers._llm import LLM, ChatStream
from cairn.providers._meter import CALL_EVENT, Meter
from cairn.providers._redact import redact_text
from cairn.providers._retry import RetryPolicy, parse_retry_after, retry_call
from cairn.providers._types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingCapabilities,
    EmbeddingRequest,
    EmbeddingResponse,
    LLMCapabilities,
    ResponseFormat,
    Tool,
    ToolCallDelta,
    message_from_dict,
)
from cairn.providers._usage import Price, Usage, match_model

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
