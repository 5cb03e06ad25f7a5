"""``openai`` embeddings: POST /embeddings, one request per batch, vectors put back in input order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cairn.providers import (
    EmbeddingCapabilities,
    EmbeddingProvider,
    EmbeddingRequest,
    EmbeddingResponse,
    ProviderError,
    ProviderMisconfiguredError,
    UpstreamError,
    Usage,
    match_model,
)
from cairn_openai._http import Connection
from cairn_openai.config import EmbeddingsConfig
from cairn_openai.models import EMBEDDING_MODELS, EMBEDDING_PRICES, SHORTENABLE
from cairn_openai.wire import decode_vector, usage_from

__all__ = ["OpenAIEmbeddings"]


class OpenAIEmbeddings(EmbeddingProvider):
    """An OpenAI-compatible embeddings endpoint."""

    def __init__(self, config: EmbeddingsConfig, *, name: str = "openai", model: str | None = None) -> None:
        self.config = config
        self.name = name
        self.default_model = model or config.model
        self.prices = config.price_table(EMBEDDING_PRICES)
        self.connection = Connection(config, provider=name, section="embeddings")

    def capabilities(self, model: str) -> EmbeddingCapabilities:
        known = match_model(EMBEDDING_MODELS, model)
        c = self.config
        if known is None:
            return EmbeddingCapabilities(
                dimensions=c.dimensions, max_batch=c.max_batch, max_input_tokens=c.max_input_tokens
            )
        return EmbeddingCapabilities(
            dimensions=c.dimensions or known.dimensions,
            max_batch=min(c.max_batch, known.max_batch),
            max_input_tokens=c.max_input_tokens or known.max_input_tokens,
        )

    def readiness(self) -> ProviderError | None:
        problem = self.connection.readiness()
        if (
            problem is None
            and self.config.dimensions
            and match_model(EMBEDDING_MODELS, self.default_model)
            and not any(self.default_model.startswith(m) for m in SHORTENABLE)
        ):
            return ProviderMisconfiguredError(
                f"{self.default_model} cannot shorten its vectors",
                retryable=False,
                hint=f"remove dimensions from [embeddings.{self.name}]",
                provider=self.name,
            )
        return problem

    def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        model = request.model or self.default_model
        body: dict[str, Any] = {"model": model, "input": list(request.texts), "encoding_format": "float"}
        if self.config.dimensions:
            body["dimensions"] = self.config.dimensions
        data, headers = self.connection.post("embeddings", body, model=model, bodies=request.texts)
        request_id = headers.get("x-request-id")
        items = data.get("data") if isinstance(data, Mapping) else None
        if not isinstance(items, list):
            raise UpstreamError(
                f"{self.name} answered without embeddings",
                retryable=True,
                provider=self.name,
                model=model,
                request_id=request_id,
            )
        vectors: list[Any] = [None] * len(request.texts)
        try:
            for position, item in enumerate(items):
                index = item.get("index", position)
                if not isinstance(index, int) or not 0 <= index < len(vectors) or vectors[index] is not None:
                    raise ValueError(f"index {index!r}")
                vectors[index] = decode_vector(item.get("embedding"))
        except (ValueError, TypeError, AttributeError) as exc:
            raise UpstreamError(
                f"{self.name} answered a malformed embedding list ({exc})",
                retryable=False,
                provider=self.name,
                model=model,
                request_id=request_id,
            ) from None
        missing = [i for i, v in enumerate(vectors) if v is None]
        if missing:
            raise UpstreamError(
                f"{self.name} returned no vector for text {missing[0]} of {len(vectors)}",
                retryable=False,
                provider=self.name,
                model=model,
                request_id=request_id,
            )
        usage = usage_from(data.get("usage"))
        if usage is not None:
            usage = Usage(input_tokens=usage.input_tokens)  # embeddings have no output tokens
        response_model = data.get("model") if isinstance(data.get("model"), str) else model
        return EmbeddingResponse(vectors, usage, response_model, request_id)

    def close(self) -> None:
        self.connection.close()
