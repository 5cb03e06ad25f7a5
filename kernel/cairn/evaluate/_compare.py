"""Comparing two eval runs paired by sample id: mean difference, bootstrap and McNemar tests, a verdict."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from cairn.evaluate._record import EvalRun
from cairn.evaluate._scores import Score
from cairn.evaluate._stats import DEFAULT_RESAMPLES, DEFAULT_SEED, mcnemar_exact, mean_interval, paired_bootstrap

__all__ = ["Comparison", "EvaluatorComparison", "compare_runs", "compare_scores"]


# A change in a score smaller than this is float noise, not an improvement.
_EPSILON = 1e-9


@attrs.frozen
class EvaluatorComparison:
    """One evaluator across two runs, over the samples both scored."""

    label: str
    paired: int
    not_comparable: int
    base_mean: float | None
    run_mean: float | None
    mean_difference: float | None
    ci_low: float | None
    ci_high: float | None
    bootstrap_low: float | None
    bootstrap_high: float | None
    p_value: float | None
    improvements: list[str]
    regressions: list[str]
    unchanged: int
    base_pass_rate: float | None
    run_pass_rate: float | None
    passed_in_base_only: int
    passed_in_run_only: int
    mcnemar_p_value: float | None
    verdict: str
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Comparison:
    """Two eval runs paired by sample id."""

    base: str
    run: str
    evaluators: list[EvaluatorComparison]
    only_in_base: list[str]
    only_in_run: list[str]
    evaluators_only_in_base: list[str]
    evaluators_only_in_run: list[str]
    resamples: int
    seed: int
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        out = attrs.asdict(self, recurse=False)
        out["evaluators"] = [e.to_dict() for e in self.evaluators]
        return out


def compare_scores(
    base: Mapping[str, Mapping[str, Score]],
    run: Mapping[str, Mapping[str, Score]],
    labels: Sequence[str],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    alpha: float = 0.05,
    order: Sequence[str] | None = None,
) -> list[EvaluatorComparison]:
    """Compare per-sample scores (sample id -> label -> ``Score``) of two runs for each of ``labels``.

    A sample counts for an evaluator when both runs scored it ``ok``; a
    sample skipped or errored on either side is "not comparable". The verdict
    is ``better`` / ``worse`` when the bootstrap p-value is below ``alpha``,
    else ``no significant difference`` (``not comparable`` with no pairs).
    """
    ids = [i for i in (order or sorted(base)) if i in run]
    out = []
    for label in labels:
        pairs: list[tuple[str, Score, Score]] = []
        not_comparable = 0
        for sample_id in ids:
            a, b = base[sample_id].get(label), run[sample_id].get(label)
            if a is None or b is None:
                continue
            if a.ok and b.ok:
                pairs.append((sample_id, a, b))
            else:
                not_comparable += 1
        if not pairs:
            out.append(
                EvaluatorComparison(
                    label,
                    0,
                    not_comparable,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    [],
                    [],
                    0,
                    None,
                    None,
                    0,
                    0,
                    None,
                    "not comparable",
                    [],
                )
            )
            continue
        # Both scores of a pair are ok, so both values are set (here and for the means below); mypy cannot
        # see that through Score.ok.
        diffs = [b.value - a.value for _, a, b in pairs]  # type: ignore[operator]
        improvements = [i for (i, _, _), d in zip(pairs, diffs, strict=True) if d > _EPSILON]
        regressions = [i for (i, _, _), d in zip(pairs, diffs, strict=True) if d < -_EPSILON]
        interval = mean_interval(diffs, bounds=(-1.0, 1.0))
        boot = paired_bootstrap(diffs, resamples=resamples, seed=seed, confidence=1.0 - alpha)
        base_only = sum(1 for _, a, b in pairs if a.passed and not b.passed)
        run_only = sum(1 for _, a, b in pairs if b.passed and not a.passed)
        p = boot.p_value
        if p < alpha and boot.mean > 0:
            verdict = "better"
        elif p < alpha and boot.mean < 0:
            verdict = "worse"
        else:
            verdict = "no significant difference"
        out.append(
            EvaluatorComparison(
                label=label,
                paired=len(pairs),
                not_comparable=not_comparable,
                # values are set: both scores of a pair are ok (see diffs above)
                base_mean=math.fsum(a.value for _, a, _ in pairs) / len(pairs),  # type: ignore[misc]
                run_mean=math.fsum(b.value for _, _, b in pairs) / len(pairs),  # type: ignore[misc]  # as above
                mean_difference=boot.mean,
                ci_low=interval.low,
                ci_high=interval.high,
                bootstrap_low=boot.low,
                bootstrap_high=boot.high,
                p_value=p,
                improvements=improvements,
                regressions=regressions,
                unchanged=len(pairs) - len(improvements) - len(regressions),
                base_pass_rate=sum(1 for _, a, _ in pairs if a.passed) / len(pairs),
                run_pass_rate=sum(1 for _, _, b in pairs if b.passed) / len(pairs),
                passed_in_base_only=base_only,
                passed_in_run_only=run_only,
                mcnemar_p_value=mcnemar_exact(base_only, run_only),
                verdict=verdict,
                warnings=[],
            )
        )
    return out


def compare_runs(
    base: EvalRun, run: EvalRun, *, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED, alpha: float = 0.05
) -> Comparison:
    """Pair two recorded eval runs by sample id and compare every evaluator both ran (by label).

    A warning is attached where an evaluator's parameters or threshold
    differ between the runs, or the runs scored different datasets.
    """
    base_ids, run_ids = set(base.sample_ids), set(run.sample_ids)
    labels = [label for label in base.labels if label in run.labels]
    results = compare_scores(
        base.scores, run.scores, labels, resamples=resamples, seed=seed, alpha=alpha, order=list(base.sample_ids)
    )
    checked = []
    for result in results:
        warnings = []
        a, b = base.evaluator(result.label) or {}, run.evaluator(result.label) or {}
        if a.get("params") != b.get("params") or a.get("threshold") != b.get("threshold"):
            warnings.append("the evaluator's parameters differ between the runs")
        checked.append(attrs.evolve(result, warnings=warnings))
    return Comparison(
        base=base.run_id,
        run=run.run_id,
        evaluators=checked,
        only_in_base=[i for i in base.sample_ids if i not in run_ids],
        only_in_run=[i for i in run.sample_ids if i not in base_ids],
        evaluators_only_in_base=[label for label in base.labels if label not in run.labels],
        evaluators_only_in_run=[label for label in run.labels if label not in base.labels],
        resamples=resamples,
        seed=seed,
        alpha=alpha,
    )
