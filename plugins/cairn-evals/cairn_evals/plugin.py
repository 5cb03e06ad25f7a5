"""cairn's hook module for cairn-evals: registers the built-in evaluators.

Light on purpose, since every ``cairn`` command loads it: the evaluator
modules (and the kernel's ``cairn.evaluate``) are imported when an
evaluator is first built, through ``Deferred`` factories that carry what
each class declares (kind, inputs, threshold) so ``cairn evaluators`` can
show it without building. jsonschema is imported by ``json_schema`` when it
checks a schema; providers are reached through the kernel when a
model-based evaluator runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from cairn.hookspecs import hookimpl

__all__ = ["Deferred", "cairn_register_evaluators"]


class Deferred:
    """A factory that imports ``module`` and builds its class ``name`` as ``cls(config, context)``.

    ``kind``, ``inputs`` and ``threshold`` repeat the class's declarations
    (a test keeps them equal); ``inputs`` are those with no parameters set.
    """

    __slots__ = ("module", "name", "kind", "inputs", "threshold")

    def __init__(self, module: str, name: str, kind: str, inputs: tuple[str, ...], threshold: float) -> None:
        self.module = module
        self.name = name
        self.kind = kind
        self.inputs = inputs
        self.threshold = threshold

    def load(self) -> type:
        return getattr(importlib.import_module(self.module), self.name)

    def __call__(self, config: Any, context: Any) -> Any:
        return self.load()(config, context)

    def __repr__(self) -> str:
        return f"<Deferred {self.module}.{self.name}>"


_D = "cairn_evals.deterministic"
_S = "cairn_evals.structured"
_M = "cairn_evals.models"
_OE = ("output", "expected")

#: name -> (factory, config class name, description)
EVALUATORS: dict[str, tuple[Deferred, str, str]] = {
    "exact": (
        Deferred(_D, "Exact", "deterministic", _OE, 1.0),
        "ExactConfig",
        "the output equals the expected text (or one of a list), after optional normalization",
    ),
    "includes": (
        Deferred(_D, "Includes", "deterministic", _OE, 1.0),
        "IncludesConfig",
        "the output contains any (or all) of the given or expected strings",
    ),
    "regex": (
        Deferred(_D, "Regex", "deterministic", _OE, 1.0),
        "RegexConfig",
        "the output matches a regular expression",
    ),
    "numeric": (
        Deferred(_D, "Numeric", "deterministic", _OE, 1.0),
        "NumericConfig",
        "a number read from the output is within an absolute or relative tolerance",
    ),
    "token_f1": (
        Deferred(_D, "TokenF1", "deterministic", _OE, 0.5),
        "TokenF1Config",
        "F1 of the words shared with the expected text",
    ),
    "edit_distance": (
        Deferred(_D, "EditDistance", "deterministic", _OE, 0.8),
        "EditDistanceConfig",
        "normalized Levenshtein similarity to the expected text",
    ),
    "rouge_l": (
        Deferred(_D, "RougeL", "deterministic", _OE, 0.5),
        "RougeLConfig",
        "ROUGE-L F-measure: the longest common word subsequence with the expected text",
    ),
    "json_valid": (
        Deferred(_S, "JsonValid", "deterministic", ("output",), 1.0),
        "JsonValidConfig",
        "the output parses as JSON",
    ),
    "json_schema": (
        Deferred(_S, "JsonSchema", "deterministic", _OE, 1.0),
        "JsonSchemaConfig",
        "the output is JSON valid against a JSON Schema (the table's, or the expected)",
    ),
    "json_diff": (
        Deferred(_S, "JsonDiff", "deterministic", _OE, 1.0),
        "JsonDiffConfig",
        "share of JSON leaves equal to the expected; the reason lists differing paths",
    ),
    "embedding_similarity": (
        Deferred(_M, "EmbeddingSimilarity", "embedding", _OE, 0.8),
        "EmbeddingConfig",
        "cosine similarity of output and expected through the configured embedding provider",
    ),
    "rubric": (
        Deferred(_M, "Rubric", "judge", ("output",), 0.75),
        "RubricConfig",
        "an LLM grades the output against a rubric (skipped with the noop provider)",
    ),
    "factuality": (
        Deferred(_M, "Factuality", "judge", _OE, 0.5),
        "FactualityConfig",
        "an LLM checks the output's facts against the expected answer (skipped with noop)",
    ),
    "latency": (
        Deferred(_D, "Latency", "deterministic", (), 1.0),
        "LatencyConfig",
        "the sample's metadata latency_ms is within max_ms",
    ),
    "cost": (
        Deferred(_D, "Cost", "deterministic", (), 1.0),
        "CostConfig",
        "the sample's metadata cost is within max_cost",
    ),
}


@hookimpl
def cairn_register_evaluators(register: Callable[..., None]) -> None:
    """Register the fifteen built-in evaluators (``cairn evaluators`` lists them)."""
    from cairn_evals import config

    for name, (factory, config_name, description) in EVALUATORS.items():
        register(name, factory, getattr(config, config_name), description=description)
