"""What ``LLM`` and ``Embedder`` share: the provider's name, tokenizer, meter, retry policy, clocks, and pricing a call."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

from cairn.providers._contract import EmbeddingProvider, LLMProvider
from cairn.providers._errors import ProviderMisconfiguredError, _TaxonomyError
from cairn.providers._meter import Meter
from cairn.providers._retry import RetryPolicy
from cairn.providers._usage import Usage, match_model
from cairn.tokenizers import Tokenizer

__all__: list[str] = []


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

    def _model(self, provider: LLMProvider | EmbeddingProvider, model: str | None) -> str:
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
        self,
        provider: LLMProvider | EmbeddingProvider,
        model: str,
        usage: Usage | None,
        sent: bool,
        error: _TaxonomyError | None = None,
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
