"""The evaluator contract: what a plugin's factory returns (``Evaluator``) and what it may use (``ScoringContext``)."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from cairn.evaluate._datasets import Sample
from cairn.evaluate._scores import Score

if TYPE_CHECKING:  # pragma: no cover
    from cairn.providers import LLM, Embedder, Providers

__all__ = ["INPUTS", "KINDS", "Evaluator", "ScoringContext"]


#: What an evaluator is: pure computation, a call to an embedding provider, or a call to an LLM judge.
KINDS = ("deterministic", "embedding", "judge")
#: The parts of a sample an evaluator may need.
INPUTS = ("output", "expected", "input", "context")


class ScoringContext:
    """What an evaluator may use besides the sample: the project's providers, built on first use.

    ``llm(name)`` and ``embeddings(name)`` return the kernel's ``LLM`` /
    ``Embedder`` for the provider ``name`` (default ``[cairn] llm`` /
    ``embeddings``), so retries, spend ceilings and redaction apply. With no
    providers (a Python caller that passed none) they raise
    ``ProviderDisabledError``; raised from ``Evaluator.prepare``, the kernel
    turns it into a ``skipped`` score for every sample.
    """

    def __init__(self, providers: Providers | Callable[[], Providers] | None = None) -> None:
        self._source = providers
        self._providers: Providers | None = None
        self._llms: dict[str | None, LLM] = {}
        self._embedders: dict[str | None, Embedder] = {}

    @property
    def providers(self) -> Providers:
        if self._providers is None:
            if self._source is None:
                from cairn.providers import ProviderDisabledError

                raise ProviderDisabledError(
                    "this evaluation was given no providers",
                    hint="pass providers=cairn.providers.Providers(...) to run_evaluation, or use `cairn eval run`",
                    retryable=False,
                )
            self._providers = self._source() if callable(self._source) else self._source
        return self._providers

    def llm(self, name: str | None = None) -> LLM:
        """The LLM provider ``name`` (default ``[cairn] llm``), built once per evaluation."""
        if name not in self._llms:
            self._llms[name] = self.providers.llm(name)
        return self._llms[name]

    def embeddings(self, name: str | None = None) -> Embedder:
        """The embedding provider ``name`` (default ``[cairn] embeddings``), built once per evaluation."""
        if name not in self._embedders:
            self._embedders[name] = self.providers.embeddings(name)
        return self._embedders[name]

    def close(self) -> None:
        """Close the providers this context built (not those it was handed)."""
        if self._providers is not None and callable(self._source):
            self._providers.close()


class Evaluator(abc.ABC):
    """What an evaluator plugin's factory returns: scores one sample at a time.

    Declare, on the class or the instance:

    - ``kind``: ``deterministic``, ``embedding`` or ``judge``;
    - ``inputs``: the parts of a sample that must be present (``INPUTS``); the
      kernel skips a sample that lacks one, with the reason, before ``score``
      is called;
    - ``threshold``: the value at or above which a score passes (the default;
      a ``threshold`` key in the evaluator's table usually overrides it).

    ``score`` returns a ``Score`` (``self.result(value, ...)`` applies the
    threshold). It may raise: the kernel records the exception as an ``error``
    score, except provider errors that would fail every call (disabled,
    misconfigured, auth failed, a spend ceiling), which stop the run.
    ``name`` is set by the kernel to the registered name.
    """

    name: str = ""
    kind: ClassVar[str] = "deterministic"
    inputs: tuple[str, ...] = ("output",)
    threshold: float = 1.0

    @abc.abstractmethod
    def score(self, sample: Sample, context: ScoringContext) -> Score:
        """Score one sample that has every one of ``inputs``."""

    def score_many(self, samples: Sequence[Sample], context: ScoringContext) -> list[Score]:
        """Score several samples, one ``Score`` each in order; override to batch (one embedding call ...).

        An exception from an override turns every sample of the batch into an
        ``error`` score; the default scores one at a time, so an exception costs
        only its own sample.
        """
        return [self.score(sample, context) for sample in samples]

    def prepare(self, context: ScoringContext) -> Score | None:
        """Called once before scoring: a ``Score`` returned here applies to every sample.

        Judges return ``Score.skip(...)`` when the provider is the ``noop``
        default, so an evaluation without a model skips them with the reason
        instead of making (and recording) one refused call per sample.
        """
        return None

    def result(
        self,
        value: float,
        *,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
        usage: Any = None,
        cost: float | None = None,
    ) -> Score:
        """An ``ok`` score for ``value``, passed when it reaches this evaluator's ``threshold``."""
        return Score.of(value, threshold=self.threshold, reason=reason, metadata=metadata, usage=usage, cost=cost)
