"""The provider contracts: what an LLM or embedding plugin's factory returns."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping

from cairn.errors import ProviderError
from cairn.providers._types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingCapabilities,
    EmbeddingRequest,
    EmbeddingResponse,
    LLMCapabilities,
    ToolCallDelta,
)
from cairn.providers._usage import Price

__all__ = ["EmbeddingProvider", "LLMProvider"]


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
