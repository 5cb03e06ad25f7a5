"""Running an evaluation: optional generation, every evaluator over every sample, aggregates."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from cairn.errors import CairnError, ProviderError, ValidationError
from cairn.evaluate._build import ConfiguredEvaluator
from cairn.evaluate._contract import Evaluator, ScoringContext
from cairn.evaluate._datasets import Dataset, Sample, _type_name
from cairn.evaluate._scores import Score
from cairn.evaluate._stats import Aggregate, aggregate
from cairn.model import now

if TYPE_CHECKING:  # pragma: no cover
    from cairn.providers import Providers

__all__ = ["EVAL_RUN_TYPE", "SAMPLE_EVENT", "Evaluation", "SampleResult", "run_evaluation"]


#: The ledger run type of an evaluation run, and the event type of one sample (here, where
#: ``SampleResult.to_event`` writes them; ``_record`` reads them from here).
EVAL_RUN_TYPE = "eval"
SAMPLE_EVENT = "sample"

# Provider failures that would fail every call alike: stop the run rather than
# record thousands of identical errors (and, for the ceiling, keep spending).
_FATAL_PROVIDER_KINDS = frozenset({"disabled", "misconfigured", "auth_failed"})


@attrs.frozen
class SampleResult:
    """Every evaluator's score of one sample, and the output generated for it (with ``--generate``)."""

    sample_id: str
    scores: dict[str, Score]
    output: Any = None
    generation: dict[str, Any] | None = None

    def to_event(self) -> dict[str, Any]:
        """The ledger event of this sample."""
        fields: dict[str, Any] = {
            "type": SAMPLE_EVENT,
            "id": self.sample_id,
            "scores": {label: score.to_dict() for label, score in self.scores.items()},
        }
        if self.generation is not None:
            fields["output"] = self.output
            fields["generation"] = self.generation
        return fields


@attrs.frozen
class Evaluation:
    """What ``run_evaluation`` produced: per-sample scores, aggregates, timing, and generation facts."""

    dataset: Dataset
    evaluators: tuple[ConfiguredEvaluator, ...]
    results: tuple[SampleResult, ...]
    aggregates: dict[str, Aggregate]
    started_at: str
    ended_at: str
    scoring_s: float
    generated: bool = False
    generation: dict[str, Any] | None = None

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self.evaluators]

    @property
    def has_errors(self) -> bool:
        return any(a.errors for a in self.aggregates.values()) or bool(
            self.generation and self.generation.get("failed")
        )

    def scores(self) -> dict[str, dict[str, Score]]:
        """Sample id -> evaluator label -> score."""
        return {r.sample_id: dict(r.scores) for r in self.results}


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _fatal(error: BaseException) -> bool:
    from cairn.providers import SpendCeilingError

    if isinstance(error, SpendCeilingError):
        return True
    return isinstance(error, ProviderError) and getattr(error, "kind", None) in _FATAL_PROVIDER_KINDS


def _reason_of(error: BaseException) -> str:
    if isinstance(error, CairnError):
        return str(error)  # provider errors are redacted by the kernel already
    return f"{type(error).__name__}: {error}"


def _checked(score: Any, label: str) -> Score:
    if not isinstance(score, Score):
        return Score.error(f"evaluator {label!r} returned {type(score).__name__}, not a Score")
    return score


def _score_chunk(configured: ConfiguredEvaluator, chunk: Sequence[Sample], context: ScoringContext) -> list[Score]:
    evaluator = configured.evaluator
    if type(evaluator).score_many is not Evaluator.score_many:
        try:
            scores = evaluator.score_many(chunk, context)
        except CairnError as error:
            if _fatal(error):
                raise
            return [Score.error(_reason_of(error)) for _ in chunk]
        except Exception as error:
            return [Score.error(_reason_of(error)) for _ in chunk]
        if not isinstance(scores, list) or len(scores) != len(chunk):
            got = len(scores) if isinstance(scores, list) else type(scores).__name__
            return [
                Score.error(f"evaluator {configured.label!r} returned {got} scores for {len(chunk)} samples")
                for _ in chunk
            ]
        return [_checked(s, configured.label) for s in scores]
    out = []
    for sample in chunk:
        try:
            out.append(_checked(evaluator.score(sample, context), configured.label))
        except CairnError as error:
            if _fatal(error):
                raise
            out.append(Score.error(_reason_of(error)))
        except Exception as error:
            out.append(Score.error(_reason_of(error)))
    return out


def _prepare(configured: ConfiguredEvaluator, context: ScoringContext) -> Score | None:
    """The evaluator's ``prepare``; a disabled provider there (noop, or none given) skips every sample."""
    from cairn.providers import ProviderDisabledError

    try:
        shared = configured.evaluator.prepare(context)
    except ProviderDisabledError as error:
        return Score.skip(f"skipped: {error.message}" + (f" ({error.hint})" if error.hint else ""))
    return None if shared is None else _checked(shared, configured.label)


def _messages(sample: Sample) -> list[dict[str, Any]]:
    value = sample.input
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list) and value and all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in value):
        return value
    raise ValidationError(
        f"sample {sample.id!r}: input must be a string or a list of chat messages to generate "
        f"from, got {_type_name(value)}"
    )


def _generate(
    samples: Sequence[Sample],
    context: ScoringContext,
    model: str | None,
    progress: Callable[[int, int, str], None] | None,
) -> tuple[list[Sample], dict[str, dict[str, Any]], dict[str, Any]]:
    """Outputs for every sample from ``[cairn] llm``; a sample whose call fails keeps no output."""
    llm = context.llm()
    problem = llm.provider.readiness()
    if problem is not None:
        raise problem  # noop, a missing key: say so before any call, and record nothing
    generated: list[Sample] = []
    facts: dict[str, dict[str, Any]] = {}
    models: set[str] = set()
    failed = 0
    cost: float | None = 0.0
    input_tokens = output_tokens = 0
    for done, sample in enumerate(samples, start=1):
        try:
            messages = _messages(sample)
            response = llm.complete(messages, model=model, metadata={"eval_sample": sample.id})
        except CairnError as error:
            if _fatal(error):
                raise
            failed += 1
            fact: dict[str, Any] = {"error": _reason_of(error)}
            if isinstance(error, ProviderError) and hasattr(error, "facts"):
                fact["error_facts"] = error.facts()
            facts[sample.id] = fact
            generated.append(attrs.evolve(sample, output=None))
        else:
            usage = response.usage.to_dict() if response.usage else None
            facts[sample.id] = {
                "model": response.model,
                "usage": usage,
                "cost": response.cost,
                "latency_ms": round(response.latency_s * 1000, 3),
                "finish_reason": response.finish_reason,
            }
            models.add(response.model)
            if usage:
                input_tokens += usage["input_tokens"]
                output_tokens += usage["output_tokens"]
            cost = None if cost is None or response.cost is None else cost + response.cost
            generated.append(attrs.evolve(sample, output=response.content or ""))
        if progress is not None:
            progress(done, len(samples), "generate")
    summary = {
        "provider": llm.name,
        "models": sorted(models),
        "samples": len(samples),
        "failed": failed,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost": None if cost is None else round(cost, 12),
    }
    return generated, facts, summary


def run_evaluation(
    dataset: Dataset,
    evaluators: Sequence[ConfiguredEvaluator],
    *,
    providers: Providers | Callable[[], Providers] | None = None,
    generate: bool = False,
    model: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    batch_size: int = 64,
) -> Evaluation:
    """Score every sample of ``dataset`` with every evaluator.

    ``generate`` replaces the outputs with replies of ``[cairn] llm`` (model
    ``model``, default the provider's) to each sample's ``input``; the noop
    provider refuses before any call. ``progress(done, total, phase)`` is
    called as work completes (phase ``generate`` or an evaluator label).
    Provider errors that would fail every call stop the run and propagate;
    anything else becomes an ``error`` score of its sample.
    """
    if not evaluators:
        raise ValidationError("no evaluators to run", hint="name at least one evaluator; `cairn evaluators` lists them")
    context = ScoringContext(providers)
    started = now()
    clock = time.perf_counter()
    try:
        samples: Sequence[Sample] = dataset.samples
        generation_facts: dict[str, dict[str, Any]] = {}
        generation: dict[str, Any] | None = None
        if generate:
            samples, generation_facts, generation = _generate(samples, context, model, progress)
        table: dict[str, dict[str, Score]] = {s.id: {} for s in samples}
        total = len(samples) * len(evaluators)
        done = 0
        for configured in evaluators:
            shared = _prepare(configured, context)
            if shared is not None:
                for sample in samples:
                    table[sample.id][configured.label] = shared
                done += len(samples)
                if progress is not None:
                    progress(done, total, configured.label)
                continue
            ready: list[Sample] = []
            inputs = configured.inputs
            for sample in samples:
                for missing in inputs:
                    if getattr(sample, missing) is None:
                        break
                else:
                    ready.append(sample)
                    continue
                failed = generation_facts.get(sample.id, {}).get("error") if missing == "output" else None
                if failed is not None:
                    table[sample.id][configured.label] = Score.error(f"no output: generation failed: {failed}")
                else:
                    table[sample.id][configured.label] = Score.skip(f"the sample has no {missing}")
            done += len(samples) - len(ready)
            for chunk in _chunks(ready, max(1, batch_size)):
                for sample, score in zip(chunk, _score_chunk(configured, chunk, context), strict=True):
                    table[sample.id][configured.label] = score
                done += len(chunk)
                if progress is not None:
                    progress(done, total, configured.label)
    finally:
        context.close()
    scoring_s = time.perf_counter() - clock
    labels = [c.label for c in evaluators]
    results = tuple(
        SampleResult(
            s.id,
            {label: table[s.id][label] for label in labels},
            s.output if generate else None,
            generation_facts.get(s.id) if generate else None,
        )
        for s in samples
    )
    aggregates = {label: aggregate([r.scores[label] for r in results]) for label in labels}
    return Evaluation(dataset, tuple(evaluators), results, aggregates, started, now(), scoring_s, generate, generation)
