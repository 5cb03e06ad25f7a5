"""The tables ``[evaluators.<name>]``: one frozen attrs class per evaluator.

Only attrs and the standard library are imported here. Every table takes
``threshold`` (a number in [0, 1]; unset: the evaluator's default). A key can
also be given on the command line: ``--evaluator exact:ignore_case=true``.
Validators raise ``ValueError("<key> must ...")`` so the kernel's error names the key.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

__all__ = [
    "CostConfig",
    "EditDistanceConfig",
    "EmbeddingConfig",
    "ExactConfig",
    "FactualityConfig",
    "IncludesConfig",
    "JsonDiffConfig",
    "JsonSchemaConfig",
    "JsonValidConfig",
    "LatencyConfig",
    "NumericConfig",
    "RegexConfig",
    "RougeLConfig",
    "RubricConfig",
    "TokenF1Config",
    "DEFAULT_RUBRIC",
    "REGEX_FLAGS",
]


def _threshold(instance: Any, attribute: attrs.Attribute, value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be a number from 0 to 1, got {value}")


def _not_negative(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be 0 or more, got {value}")


def _not_negative_or_none(instance: Any, attribute: attrs.Attribute, value: float | None) -> None:
    if value is not None:
        _not_negative(instance, attribute, value)


def _positive(instance: Any, attribute: attrs.Attribute, value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be greater than 0, got {value}")


def _one_of(*choices: str):
    def check(instance: Any, attribute: attrs.Attribute, value: str) -> None:
        if value not in choices:
            raise ValueError(f"{attribute.name} must be one of {', '.join(map(repr, choices))}, got {value!r}")

    return check


def _threshold_field() -> Any:
    return attrs.field(default=None, validator=_threshold)


#: Letters accepted in ``[evaluators.regex] flags`` and what they turn on.
REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "a": re.ASCII}

DEFAULT_RUBRIC = "The response answers the input correctly and completely, without unsupported claims."


@attrs.frozen
class ExactConfig:
    """``[evaluators.exact]``: the output equals the expected text (or one of a list), after the chosen normalizations."""

    threshold: float | None = _threshold_field()
    #: Compare case-insensitively (Unicode case folding).
    ignore_case: bool = False
    #: Trim the ends and turn every run of whitespace into one space.
    collapse_whitespace: bool = False
    #: Remove punctuation (every Unicode P* character).
    strip_punctuation: bool = False
    #: Apply Unicode NFKC first (full-width letters, ligatures, compatibility digits).
    nfkc: bool = False


@attrs.frozen
class IncludesConfig:
    """``[evaluators.includes]``: the output contains the given strings (or the expected ones)."""

    threshold: float | None = _threshold_field()
    #: Strings to look for; empty: the sample's expected (a string or a list of strings).
    values: list[str] = attrs.field(factory=list)
    #: "any": one of them is enough (score 0 or 1); "all": the score is the share found.
    mode: str = attrs.field(default="any", validator=_one_of("any", "all"))
    ignore_case: bool = False
    collapse_whitespace: bool = False
    strip_punctuation: bool = False
    nfkc: bool = False


@attrs.frozen
class RegexConfig:
    """``[evaluators.regex]``: the output matches a regular expression (Python ``re`` syntax)."""

    threshold: float | None = _threshold_field()
    #: The pattern; unset: each sample's expected is its pattern.
    pattern: str | None = None
    #: Letters: i (ignore case), m (multiline), s (dot matches newline), x (verbose), a (ASCII classes).
    flags: str = ""
    #: "search": anywhere in the output; "fullmatch": the whole output.
    match: str = attrs.field(default="search", validator=_one_of("search", "fullmatch"))

    def __attrs_post_init__(self) -> None:
        unknown = sorted(set(self.flags) - set(REGEX_FLAGS))
        if unknown:
            raise ValueError(f"flags must be letters among {''.join(REGEX_FLAGS)}, got {''.join(unknown)!r}")
        if self.pattern is not None:
            try:
                re.compile(self.pattern, self.compiled_flags)
            except re.error as exc:
                raise ValueError(f"pattern must be a valid regular expression: {exc}") from None

    @property
    def compiled_flags(self) -> int:
        value = 0
        for letter in self.flags:
            value |= REGEX_FLAGS[letter]
        return value


@attrs.frozen
class NumericConfig:
    """``[evaluators.numeric]``: a number read from the output is close enough to the expected number."""

    threshold: float | None = _threshold_field()
    #: Largest allowed absolute difference.
    abs_tol: float = attrs.field(default=0.0, validator=_not_negative)
    #: Largest allowed difference relative to the larger magnitude (0.01: within 1%).
    rel_tol: float = attrs.field(default=0.0, validator=_not_negative)
    #: Which number of the output counts: "first", "last", or "only" (exactly one number must be there).
    pick: str = attrs.field(default="first", validator=_one_of("first", "last", "only"))


@attrs.frozen
class TokenF1Config:
    """``[evaluators.token_f1]``: F1 of the shared words of output and expected (the best of several expected)."""

    threshold: float | None = _threshold_field()
    ignore_case: bool = True
    nfkc: bool = True
    #: Drop the English articles a, an, the (as SQuAD's scorer does).
    remove_articles: bool = False


@attrs.frozen
class EditDistanceConfig:
    """``[evaluators.edit_distance]``: 1 - Levenshtein distance / length of the longer text."""

    threshold: float | None = _threshold_field()
    #: "chars": edits of characters (code points); "words": edits of whole words.
    unit: str = attrs.field(default="chars", validator=_one_of("chars", "words"))
    ignore_case: bool = False
    collapse_whitespace: bool = False
    strip_punctuation: bool = False
    nfkc: bool = False


@attrs.frozen
class RougeLConfig:
    """``[evaluators.rouge_l]``: ROUGE-L F-measure over words (longest common subsequence)."""

    threshold: float | None = _threshold_field()
    #: Weight of recall against precision in the F-measure (1: the harmonic mean).
    beta: float = attrs.field(default=1.0, validator=_positive)
    ignore_case: bool = True
    nfkc: bool = True


@attrs.frozen
class JsonValidConfig:
    """``[evaluators.json_valid]``: the output parses as JSON."""

    threshold: float | None = _threshold_field()
    #: "any" JSON value, or it must be an "object" or an "array".
    require: str = attrs.field(default="any", validator=_one_of("any", "object", "array"))
    #: Accept JSON wrapped in one Markdown code fence (```json ... ```).
    strip_fences: bool = False


@attrs.frozen
class JsonSchemaConfig:
    """``[evaluators.json_schema]``: the output is JSON valid against a JSON Schema."""

    threshold: float | None = _threshold_field()
    #: The schema, inline (a TOML table); unset with schema_file unset: each sample's expected is its schema.
    schema: dict | None = None
    #: A file holding the schema, relative to the project directory.
    schema_file: str | None = None
    #: Also check "format" keywords (date-time, email ...).
    check_formats: bool = False
    strip_fences: bool = False

    def __attrs_post_init__(self) -> None:
        if self.schema is not None and self.schema_file is not None:
            raise ValueError("schema_file must not be set together with schema: give one of them")


@attrs.frozen
class JsonDiffConfig:
    """``[evaluators.json_diff]``: the share of JSON leaves on which output and expected agree."""

    threshold: float | None = _threshold_field()
    #: Compare arrays as multisets: element order does not matter.
    ignore_order: bool = False
    #: Numbers closer than this are equal.
    float_tol: float = attrs.field(default=0.0, validator=_not_negative)
    strip_fences: bool = False


@attrs.frozen
class EmbeddingConfig:
    """``[evaluators.embedding_similarity]``: cosine similarity of the embeddings of output and expected."""

    threshold: float | None = _threshold_field()
    #: The embedding provider; unset: [cairn] embeddings.
    provider: str | None = None
    #: The embedding model; unset: the provider's.
    model: str | None = None


@attrs.frozen
class RubricConfig:
    """``[evaluators.rubric]``: an LLM grades the output against a rubric on a 1..scale scale."""

    threshold: float | None = _threshold_field()
    #: What a good response does, in plain words.
    rubric: str = DEFAULT_RUBRIC
    #: The top grade; grades run from 1 to this and map to 0..1.
    scale: int = attrs.field(default=5, validator=[attrs.validators.ge(2), attrs.validators.le(100)])
    #: The judge's provider; unset: [cairn] llm.
    provider: str | None = None
    #: The judge's model; unset: the provider's.
    model: str | None = None
    #: Sampling temperature sent to the judge; unset: none is sent (some reasoning models refuse one).
    #: Set 0 for the most repeatable grades where the model accepts it.
    temperature: float | None = attrs.field(default=None, validator=_not_negative_or_none)
    #: The judge's reply budget, in tokens.
    max_output_tokens: int = attrs.field(default=512, validator=attrs.validators.ge(16))


@attrs.frozen
class FactualityConfig:
    """``[evaluators.factuality]``: an LLM judges whether the output agrees with the expected answer."""

    threshold: float | None = _threshold_field()
    #: The judge's provider; unset: [cairn] llm.
    provider: str | None = None
    #: The judge's model; unset: the provider's.
    model: str | None = None
    #: As for rubric: unset sends none.
    temperature: float | None = attrs.field(default=None, validator=_not_negative_or_none)
    max_output_tokens: int = attrs.field(default=512, validator=attrs.validators.ge(16))


@attrs.frozen
class LatencyConfig:
    """``[evaluators.latency]``: the sample's recorded latency is within a limit."""

    threshold: float | None = _threshold_field()
    #: The most milliseconds a sample may take (required).
    max_ms: float | None = attrs.field(default=None, validator=_positive)
    #: The metadata key holding the sample's latency in milliseconds.
    key: str = "latency_ms"


@attrs.frozen
class CostConfig:
    """``[evaluators.cost]``: the sample's recorded cost is within a limit."""

    threshold: float | None = _threshold_field()
    #: The most a sample may cost, in the unit of the metadata (required).
    max_cost: float | None = attrs.field(default=None, validator=_positive)
    #: The metadata key holding the sample's cost.
    key: str = "cost"
