"""Statistics, standard library only: the t distribution, mean intervals, aggregates, paired bootstrap, McNemar."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import attrs

from cairn.errors import ValidationError
from cairn.evaluate._scores import Score

__all__ = [
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "Aggregate",
    "BootstrapResult",
    "Interval",
    "aggregate",
    "mcnemar_exact",
    "mean_interval",
    "paired_bootstrap",
    "student_t_cdf",
    "t_quantile",
]


#: Paired bootstrap resamples and seed used by ``compare_runs`` unless told otherwise.
DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0


# Beyond this many degrees of freedom the Cornish-Fisher expansion of the t
# quantile (Abramowitz & Stegun 26.7.5) agrees with the exact series below to
# better than 1e-12, and costs nothing; the series grows with the df.
_SERIES_MAX_DF = 1000


def _t_central(theta: float, df: int) -> float:
    """P(|T| < t) for T ~ Student t with integer ``df``, where theta = atan(t / sqrt(df)).

    The finite series of Abramowitz & Stegun 26.7.3 (odd df) and 26.7.4 (even df).
    """
    s, c = math.sin(theta), math.cos(theta)
    c2 = c * c
    if df % 2 == 1:
        if df == 1:
            return 2.0 * theta / math.pi
        term = c
        total = c
        for k in range(1, (df - 3) // 2 + 1):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        return 2.0 / math.pi * (theta + s * total)
    term = 1.0
    total = 1.0
    for k in range(1, (df - 2) // 2 + 1):
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return s * total


def _check_df(df: int) -> None:
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValidationError(f"degrees of freedom must be a positive integer, got {df!r}")


def student_t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t distribution with ``df`` (a positive integer) degrees of freedom; exact."""
    _check_df(df)
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    # Rounding in the series can overshoot 1 by an ulp far in the tail; a probability cannot.
    central = min(1.0, _t_central(math.atan(abs(t) / math.sqrt(df)), df))
    return 0.5 + 0.5 * central if t >= 0 else 0.5 - 0.5 * central


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (``t_quantile(0.975, 9)`` = 2.2622).

    Up to 1000 df: the exact CDF series inverted by bisection on the angle
    atan(t / sqrt(df)), to double precision. Beyond: the Cornish-Fisher
    expansion around the normal quantile (Abramowitz & Stegun 26.7.5, four
    terms), whose error there is far below 1e-12.
    """
    _check_df(df)
    if not 0.0 < p < 1.0:
        raise ValidationError(f"a quantile needs 0 < p < 1, got {p!r}")
    if p == 0.5:
        return 0.0
    upper = p > 0.5
    target = 2.0 * (p if upper else 1.0 - p) - 1.0  # P(|T| < t)
    if df > _SERIES_MAX_DF:
        from statistics import NormalDist

        x = NormalDist().inv_cdf(0.5 + target / 2.0)
        g1 = (x**3 + x) / 4
        g2 = (5 * x**5 + 16 * x**3 + 3 * x) / 96
        g3 = (3 * x**7 + 19 * x**5 + 17 * x**3 - 15 * x) / 384
        g4 = (79 * x**9 + 776 * x**7 + 1482 * x**5 - 1920 * x**3 - 945 * x) / 92160
        value = x + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4
    else:
        lo, hi = 0.0, math.pi / 2
        for _ in range(200):
            mid = (lo + hi) / 2
            if mid in (lo, hi):
                break
            if _t_central(mid, df) < target:
                lo = mid
            else:
                hi = mid
        value = math.sqrt(df) * math.tan((lo + hi) / 2)
    return value if upper else -value


@attrs.frozen
class Interval:
    """A mean with its standard error and confidence interval; None where ``n`` is too small to say."""

    n: int
    mean: float | None
    stdev: float | None
    stderr: float | None
    low: float | None
    high: float | None
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def mean_interval(
    values: Sequence[float], *, confidence: float = 0.95, bounds: tuple[float, float] | None = (0.0, 1.0)
) -> Interval:
    """Mean, sample standard deviation, standard error and the t-distribution confidence interval.

    The interval is mean +- t((1 + confidence) / 2, n - 1) * stdev / sqrt(n),
    clipped to ``bounds`` (a score cannot leave [0, 1]; pass None to keep it
    unclipped). One value has a mean but no spread; none has nothing.
    """
    n = len(values)
    if n == 0:
        return Interval(0, None, None, None, None, None, confidence)
    mean = math.fsum(values) / n
    if n == 1:
        return Interval(1, mean, None, None, None, None, confidence)
    stdev = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    stderr = stdev / math.sqrt(n)
    half = t_quantile((1.0 + confidence) / 2.0, n - 1) * stderr
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(bounds[0], low), min(bounds[1], high)
    return Interval(n, mean, stdev, stderr, low, high, confidence)


@attrs.frozen
class Aggregate:
    """One evaluator's results over a run: counts by outcome, the mean with its interval, the pass rate."""

    count: int
    scored: int
    passed: int
    failed: int
    errors: int
    skipped: int
    mean: float | None
    stdev: float | None
    stderr: float | None
    ci_low: float | None
    ci_high: float | None
    pass_rate: float | None
    cost: float | None
    input_tokens: int
    output_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Aggregate:
        fields: dict[str, Any] = {f.name: data.get(f.name) for f in attrs.fields(cls)}
        return cls(**fields)


def aggregate(scores: Sequence[Score], *, confidence: float = 0.95) -> Aggregate:
    """Summarize one evaluator's scores; only ``ok`` scores enter the mean, interval and pass rate.

    ``cost`` sums what the evaluator's model calls cost: None when any priced
    call's cost was unknown, 0 when it called no model.
    """
    values = [s.value for s in scores if s.outcome == "ok" and s.value is not None]  # an ok score has a value
    interval = mean_interval(values, confidence=confidence)
    passed = sum(1 for s in scores if s.outcome == "ok" and s.passed)
    errors = sum(1 for s in scores if s.outcome == "error")
    skipped = sum(1 for s in scores if s.outcome == "skipped")
    cost: float | None = 0.0
    input_tokens = output_tokens = 0
    for s in scores:
        if s.usage is not None:
            input_tokens += int(s.usage.get("input_tokens") or 0)
            output_tokens += int(s.usage.get("output_tokens") or 0)
            if s.cost is None:
                cost = None
        if s.cost is not None and cost is not None:
            cost += s.cost
    return Aggregate(
        count=len(scores),
        scored=len(values),
        passed=passed,
        failed=len(values) - passed,
        errors=errors,
        skipped=skipped,
        mean=interval.mean,
        stdev=interval.stdev,
        stderr=interval.stderr,
        ci_low=interval.low,
        ci_high=interval.high,
        pass_rate=(passed / len(values)) if values else None,
        cost=None if cost is None else round(cost, 12),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )


@attrs.frozen
class BootstrapResult:
    """A paired bootstrap of mean differences: the observed mean, a percentile interval, a two-sided p-value."""

    mean: float
    low: float
    high: float
    p_value: float
    resamples: int
    seed: int


# A value shared by at least this many differences is drawn as one binomial count per resample instead of
# one draw per copy; most evaluators score 0 or 1, so their differences take three values and a resample
# costs a few binomial draws whatever the number of samples.
_HEAVY_COUNT = 16
_HEAVY_LEVELS = 32


def _binomial(n: int, p: float, rng: random.Random) -> int:
    """A Binomial(n, p) variate from ``rng``.

    Inversion (walking the probabilities up from 0) when n * p < 10; else
    Hörmann's transformed rejection with squeeze, BTRS (Hörmann 1993, "The
    generation of binomial random variates"), O(1) per variate.
    """
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - _binomial(n, 1.0 - p, rng)
    q = 1.0 - p
    if n * p < 10.0:
        u = rng.random()
        k = 0
        f = q**n
        ratio = p / q
        while u > f:
            u -= f
            k += 1
            if k >= n:
                return n  # rounding left a sliver of probability past the end
            f *= ratio * (n - k + 1) / k
        return k
    spq = math.sqrt(n * p * q)
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    vr = 0.92 - 4.2 / b
    alpha = (2.83 + 5.1 / b) * spq
    lpq = math.log(p / q)
    m = int((n + 1) * p)
    h = math.lgamma(m + 1) + math.lgamma(n - m + 1)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        if us == 0.0:
            continue
        k = math.floor((2 * a / us + b) * u + c)
        if k < 0 or k > n:
            continue
        if us >= 0.07 and v <= vr:
            return k
        v = math.log(v * alpha / (a / (us * us) + b))
        if v <= h - math.lgamma(k + 1) - math.lgamma(n - k + 1) + (k - m) * lpq:
            return k


def _resampler(values: Sequence[float], rng: random.Random) -> Callable[[], float]:
    """A function drawing the sum of one resample (len(values) draws with replacement).

    Frequent values are drawn as counts, by sequential binomials (the
    multinomial split of the draws among them); the remaining draws are
    uniform over the other values, one by one.
    """
    n = len(values)
    counts: dict[float, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    heavy = [(value, count) for value, count in ordered[:_HEAVY_LEVELS] if count >= _HEAVY_COUNT]
    heavy_values = {value for value, _ in heavy}
    rest = [value for value in values if value not in heavy_values]
    if not rest and heavy:
        last = heavy.pop()[0]
    else:
        last = None

    def draw() -> float:
        remaining, pool, total = n, n, 0.0
        for value, count in heavy:
            x = _binomial(remaining, count / pool, rng)
            total += value * x
            remaining -= x
            pool -= count
        if last is not None:
            return total + last * remaining
        return total + sum(rng.choices(rest, k=remaining))

    return draw


def paired_bootstrap(
    differences: Sequence[float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = 0.95,
) -> BootstrapResult:
    """Resample the paired differences with replacement ``resamples`` times (``random.Random(seed)``).

    The interval is the percentile interval of the resampled means. The
    p-value tests "no difference" by centring the resampled means on zero:
    p = (1 + #{|m* - mean| >= |mean|}) / (resamples + 1), so it is never 0 and
    identical runs give 1. Values shared by many differences are drawn as
    binomial counts (an exact multinomial draw), so 0/1 scores resample in
    time independent of the number of samples.
    """
    n = len(differences)
    if n == 0:
        raise ValidationError("a bootstrap needs at least one paired difference")
    if resamples < 1:
        raise ValidationError(f"resamples must be at least 1, got {resamples}")
    draw = _resampler(list(differences), random.Random(seed))
    observed = math.fsum(differences) / n
    means = sorted(draw() / n for _ in range(resamples))
    # Float sums of the same draws in another order differ in the last bits: allow for it.
    tolerance = 1e-12 * max(1.0, abs(observed))
    extreme = sum(1 for m in means if abs(m - observed) >= abs(observed) - tolerance)
    alpha = (1.0 - confidence) / 2.0
    low = means[max(0, min(resamples - 1, int(math.floor(alpha * resamples))))]
    high = means[max(0, min(resamples - 1, int(math.ceil((1.0 - alpha) * resamples)) - 1))]
    return BootstrapResult(observed, low, high, (1 + extreme) / (resamples + 1), resamples, seed)


def mcnemar_exact(base_only: int, run_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs.

    ``base_only``: pairs that passed in the base run only; ``run_only``: in
    the new run only. Under "no difference" each discordant pair is a fair
    coin, so p = min(1, 2 * P(X <= min(b, c))) with X ~ Binomial(b + c, 1/2).
    """
    if base_only < 0 or run_only < 0:
        raise ValidationError("discordant counts must be non-negative")
    n = base_only + run_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(base_only, run_only) + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2**n)))
