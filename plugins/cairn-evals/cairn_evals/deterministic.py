"""Deterministic evaluators: exact, includes, regex, numeric, token_f1, edit_distance, rouge_l, latency, cost.

Each is a ``cairn.evaluate.Evaluator`` class built as ``cls(config, context)``
(the factory signature), so ``cairn evaluators`` can read what it declares
without building it. Standard library only.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

from cairn.errors import ConfigError
from cairn.evaluate import Evaluator, Sample, Score, ScoringContext
from cairn_evals import text as T
from cairn_evals.config import CostConfig, IncludesConfig, LatencyConfig, RegexConfig

__all__ = [
    "Cost",
    "EditDistance",
    "Exact",
    "Includes",
    "Latency",
    "Numeric",
    "Regex",
    "RougeL",
    "TableEvaluator",
    "TokenF1",
]


def _clip(value: Any, width: int = 80) -> str:
    shown = repr(value)
    return shown if len(shown) <= width else shown[: width - 1] + "…"


class TableEvaluator(Evaluator):
    """An evaluator over one config class: keeps the config and applies its ``threshold`` override."""

    def __init__(self, config: Any, context: Any = None) -> None:
        self.config = config
        if getattr(config, "threshold", None) is not None:
            self.threshold = float(config.threshold)

    def _normalize(self, text: str) -> str:
        c = self.config
        return T.normalize(
            text,
            ignore_case=c.ignore_case,
            collapse_whitespace=c.collapse_whitespace,
            strip_punctuation=c.strip_punctuation,
            nfkc=c.nfkc,
        )


class Exact(TableEvaluator):
    """1 when the output equals the expected text, or one of a list of acceptable texts; else 0."""

    kind = "deterministic"
    inputs = ("output", "expected")
    threshold = 1.0

    def score(self, sample: Sample, context: ScoringContext) -> Score:
        output = self._normalize(T.as_text(sample.output))
        refs = T.references(sample.expected)
        for ref in refs:
            if self._normalize(ref) == output:
                return self.result(1.0, metadata={"matched": ref} if len(refs) > 1 else None)
        wanted = refs[0] if len(refs) == 1 else refs
        return self.result(0.0, reason=f"expected {_clip(wanted)}, got {_clip(T.as_text(sample.output))}")


class Includes(TableEvaluator):
    """The output contains the strings: any of them (0 or 1), or all of them (the share found)."""

    kind = "deterministic"
    threshold = 1.0

    def __init__(self, config: IncludesConfig, context: Any = None) -> None:
        super().__init__(config, context)
        self.inputs = ("output",) if config.values else ("output", "expected")

    def score(self, sample: Sample, context: ScoringContext) -> Score:
        values = list(self.config.values) or T.references(sample.expected)
        output = self._normalize(T.as_text(sample.output))
        found = [v for v in values if self._normalize(v) in output]
        missing = [v for v in values if v not in found]
        if self.config.mode == "any":
            value = 1.0 if found else 0.0
            reason = "" if found else f"none of {_clip(values)} in the output"
        else:
            value = len(found) / len(values)
            reason = f"missing {_clip(missing)}" if missing else ""
        return self.result(value, reason=reason, metadata={"found": found, "missing": missing})


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str, flags: int) -> re.Pattern[str]:
    return re.compile(pattern, flags)


class Regex(TableEvaluator):
    """1 when the output matches the pattern (searched anywhere, or matching whole); else 0."""

    kind = "deterministic"
    threshold = 1.0

    def __init__(self, config: RegexConfig, context: Any = None) -> None:
        super().__init__(config, context)
        self.inputs = ("output",) if config.pattern is not None else ("output", "expected")
        self._pattern = _compiled(config.pattern, config.compiled_flags) if config.pattern is not None else None

    def score(self, sample: Sample, context: ScoringContext) -> Score:
        pattern = self._pattern
        if pattern is None:
            if not isinstance(sample.expected, str):
                return Score.error(
                    f"expected must be a pattern (a string) when [evaluators.regex] pattern is unset, "
                    f"got {type(sample.expected).__name__}"
                )
            try:
                pattern = _compiled(sample.expected, self.config.compiled_flags)
            except re.error as exc:
                return Score.error(f"expected is not a valid regular expression: {exc}")
        output = T.as_text(sample.output)
        found = pattern.fullmatch(output) if self.config.match == "fullmatch" else pattern.search(output)
        if found is None:
            verb = "does not fully match" if self.config.match == "fullmatch" else "has no match for"
            return self.result(0.0, reason=f"the output {verb} /{pattern.pattern}/")
        return self.result(1.0, metadata={"match": found.group(0)[:200], "span": list(found.span())})


def _expected_numbers(expected: Any) -> list[float] | str:
    """The acceptable numbers, or why there are none."""
    items = expected if isinstance(expected, list) else [expected]
    out: list[float] = []
    for item in items:
        if isinstance(item, bool):
            return f"expected must be a number, got {item!r}"
        if isinstance(item, (int, float)):
            out.append(float(item))
        elif isinstance(item, str):
            numbers = T.find_numbers(item)
            if len(numbers) != 1:
                return f"expected {item!r} holds {len(numbers)} numbers, not one"
            out.append(numbers[0])
        else:
            return f"expected must be a number or a numeric string, got {type(item).__name__}"
    return out or "expected is an empty list"


class Numeric(TableEvaluator):
    """1 when a number read from the output is within tolerance of the expected number; else 0."""

    kind = "deterministic"
    inputs = ("output", "expected")
    threshold = 1.0

    def score(self, sample: Sample, context: ScoringContext) -> Score:
        wanted = _expected_numbers(sample.expected)
        if isinstance(wanted, str):
            return Score.error(wanted)
        output = sample.output
        if isinstance(output, (int, float)) and not isinstance(output, bool):
            numbers = [float(output)]
        else:
            numbers = T.find_numbers(T.as_text(output))
        if not numbers:
            return self.result(0.0, reason="no number in the output")
        if self.config.pick == "only" and len(numbers) > 1:
            return self.result(
                0.0,
                reason=f"the output holds {len(numbers)} numbers, expected exactly one",
                metadata={"found": numbers[:20]},
            )
        found = numbers[-1] if self.config.pick == "last" else numbers[0]
        best = min(wanted, key=lambda e: abs(found - e))
        error = abs(found - best)
        meta = {
            "found": found,
            "expected": best,
            "abs_error": error,
            "rel_error": error / abs(best) if best else (0.0 if error == 0 else None),
        }
        if math.isclose(found, best, rel_tol=self.config.rel_tol, abs_tol=self.config.abs_tol):
            return self.result(1.0, metadata=meta)
        return self.result(0.0, reason=f"found {found:g}, expected {best:g} (off by {error:g})", metadata=meta)


class TokenF1(TableEvaluator):
    """F1 of the words shared by output and expected (multiset overlap); the best over several expected."""

    kind = "deterministic"
    inputs = ("output", "expected")
    threshold = 0.5

    def _words(self, text: str) -> list[str]:
        c = self.config
        return T.words(text, ignore_case=c.ignore_case, nfkc=c.nfkc, remove_articles=c.remove_articles)

    def score(self, sample: Sample, context: ScoringContext) -> Score:
        predicted = self._words(T.as_text(sample.output))
        best = max(
            (T.token_f1(predicted, self._words(ref)) for ref in T.references(sample.expected)), key=lambda prf: prf[2]
        )
        precision, recall, f1 = best
        return self.result(f1, metadata={"precision": precision, "recall": recall})


class EditDistance(TableEvaluator):
    """Normalized Levenshtein similarity: 1 - distance / length of the longer text (1 for two empty texts)."""

    kind = "deterministic"
    inputs = ("output", "expected")
    threshold = 0.8

    def _units(self, text: str) -> Any:
        text = self._normalize(text)
        return text.split() if self.config.unit == "words" else text

    def score(self, sample: Sample, context: ScoringContext) -> Score:
        output = self._units(T.as_text(sample.output))
        best: tuple[float, int] | None = None
        for ref in T.references(sample.expected):
            target = self._units(ref)
            longest = max(len(output), len(target))
            distance = T.levenshtein(output, target)
            similarity = 1.0 if longest == 0 else 1.0 - distance / longest
            if best is None or similarity > best[0]:
                best = (similarity, distance)
        assert best is not None
        return self.result(best[0], metadata={"distance": best[1]})


class RougeL(TableEvaluator):
    """ROUGE-L F-measure over words: the longest common subsequence of output and expected."""

    kind = "deterministic"
    inputs = ("output", "expected")
    threshold = 0.5

    def score(self, sample: Sample, context: ScoringContext) -> Score:
        c = self.config
        candidate = T.words(T.as_text(sample.output), ignore_case=c.ignore_case, nfkc=c.nfkc)
        best = max(
            (
                T.rouge_l(candidate, T.words(ref, ignore_case=c.ignore_case, nfkc=c.nfkc), beta=c.beta)
                for ref in T.references(sample.expected)
            ),
            key=lambda prf: prf[2],
        )
        return self.result(best[2], metadata={"precision": best[0], "recall": best[1]})


class _Limit(TableEvaluator):
    """A number from the sample's metadata against a maximum: 1 within it, else maximum / value."""

    kind = "deterministic"
    inputs = ()
    threshold = 1.0
    what = ""
    limit_key = ""
    table = ""

    def __init__(self, config: Any, context: Any = None) -> None:
        super().__init__(config, context)
        self.limit = getattr(config, self.limit_key)
        if self.limit is None:
            raise ConfigError(
                f"{self.limit_key} is required: the most {self.what} a sample may take",
                table=f"evaluators.{self.table}",
                key=self.limit_key,
                hint=f"set it in [evaluators.{self.table}] or on the command line, e.g. "
                f"--evaluator {self.table}:{self.limit_key}=...",
            )

    def score(self, sample: Sample, context: ScoringContext) -> Score:
        key = self.config.key
        if key not in sample.metadata or sample.metadata[key] is None:
            return Score.skip(f"the sample has no {key} in its metadata")
        value = sample.metadata[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            return Score.error(f"metadata {key} is {_clip(value, 40)}, not a number of 0 or more")
        meta = {key: value, "max": self.limit}
        if value <= self.limit:
            return self.result(1.0, metadata=meta)
        return self.result(
            self.limit / value, reason=f"{key} {value:g} is over the limit of {self.limit:g}", metadata=meta
        )


class Latency(_Limit):
    """The sample's ``latency_ms`` (metadata) is at most ``max_ms``; over it, the score is max_ms / latency."""

    what = "milliseconds"
    limit_key = "max_ms"
    table = "latency"

    def __init__(self, config: LatencyConfig, context: Any = None) -> None:
        super().__init__(config, context)


class Cost(_Limit):
    """The sample's ``cost`` (metadata) is at most ``max_cost``; over it, the score is max_cost / cost."""

    what = "money"
    limit_key = "max_cost"
    table = "cost"

    def __init__(self, config: CostConfig, context: Any = None) -> None:
        super().__init__(config, context)
