"""Embed through the kernel: ``Embedder`` (bounds checked, batches split, retries, usage, cost, instrumentation)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from cairn.errors import ValidationError
from cairn.providers._caller import _Caller
from cairn.providers._contract import EmbeddingProvider
from cairn.providers._errors import ContextWindowExceededError, UpstreamError, _as_taxonomy, _TaxonomyError
from cairn.providers._redact import _Echoes, _own, _redact_error
from cairn.providers._retry import retry_call
from cairn.providers._types import EmbeddingCapabilities, EmbeddingRequest, EmbeddingResponse
from cairn.providers._usage import Usage, match_model

__all__ = ["Embedder"]


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
        if self.meter.gate is not None:  # the policy gate: before anything is sent
            total = sum(counts) if counts is not None else sum(self.tokenizer.count_many(list(request.texts)))
            self.meter.admit(self.name, model, price, total, 0, request.texts, "embed")
        if not request.texts:
            return EmbeddingResponse([], Usage(), model, provider=self.name, cost=0.0)
        size = caps.max_batch
        vectors: list[Any] = []
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
