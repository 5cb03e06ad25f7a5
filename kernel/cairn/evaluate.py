"""Evaluators and evaluation runs: the contract, datasets, statistics, comparisons, and the ledger record.

An evaluator plugin registers a factory through ``cairn_register_evaluators``;
the factory returns an ``Evaluator``: it declares its ``kind``
(``deterministic``, ``embedding`` or ``judge``), the sample ``inputs`` it
needs (``output``, ``expected``, ``input``, ``context``) and a default
``threshold``, and turns one ``Sample`` into one ``Score``. Everything else is
the kernel's, the same for every evaluator:

- ``load_dataset`` reads a JSONL dataset and lists every bad row with its file
  and line before anything runs;
- ``build_evaluators`` makes evaluators from ``[evaluators.<name>]`` tables and
  ``NAME:key=value,...`` specs, validated like any backend table;
- ``run_evaluation`` generates outputs through the configured LLM provider when
  asked (``cairn.providers``: retries, spend ceilings and redaction apply),
  skips a sample that lacks an input an evaluator needs, turns an evaluator's
  exception into an ``error`` score, and aggregates each evaluator's scores
  (mean, standard error, 95% confidence interval from the t distribution, pass
  rate, errors, skips);
- ``record_evaluation`` writes the run (type ``eval``) with its manifest and one
  event per sample in one ``Ledger.record`` call, so a run never half-records;
- ``compare_runs`` pairs two recorded runs by sample id: per-evaluator mean
  difference with a confidence interval, improvements and regressions, a seeded
  paired bootstrap test on the scores and an exact McNemar test on pass/fail.

A score has one of three outcomes: ``ok`` (a ``value`` in [0, 1] and
``passed``), ``skipped`` (the evaluator could not apply: an input is missing, or
a judge has no real provider) and ``error`` (it tried and failed). Only ``ok``
scores enter the statistics; skips and errors are counted apart.

Errors raised here (besides those of ``cairn.errors``)::

    cairn.errors.ValidationError
    └── DatasetError        a dataset has bad rows: every problem, with file and line
"""

from __future__ import annotations

import abc
import datetime as _dt
import hashlib
import json
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from cairn.errors import CairnError, NotFoundError, PluginError, ProviderError, ValidationError
from cairn.model import format_time, new_run_id, now, parse_time

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.ledger import Ledger
    from cairn.model import Run
    from cairn.plugins import Plugins
    from cairn.providers import LLM, Embedder, Providers

__all__ = [
    "Aggregate",
    "BootstrapResult",
    "Comparison",
    "ConfiguredEvaluator",
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "DatasetError",
    "DatasetProblem",
    "Dataset",
    "EVAL_RUN_TYPE",
    "EvalRun",
    "Evaluation",
    "Evaluator",
    "EvaluatorComparison",
    "EvaluatorInfo",
    "EvaluatorSpec",
    "INPUTS",
    "KINDS",
    "Interval",
    "OUTCOMES",
    "SAMPLE_EVENT",
    "Sample",
    "SampleResult",
    "Score",
    "ScoringContext",
    "aggregate",
    "build_evaluators",
    "compare_runs",
    "compare_scores",
    "describe_evaluators",
    "load_dataset",
    "load_eval_run",
    "manifest",
    "mcnemar_exact",
    "mean_interval",
    "new_eval_run_id",
    "paired_bootstrap",
    "record_evaluation",
    "resolve_dataset_path",
    "resolve_eval_run",
    "run_evaluation",
    "student_t_cdf",
    "t_quantile",
]

#: What an evaluator is: pure computation, a call to an embedding provider, or a call to an LLM judge.
KINDS = ("deterministic", "embedding", "judge")
#: The parts of a sample an evaluator may need.
INPUTS = ("output", "expected", "input", "context")
#: How a score came out.
OUTCOMES = ("ok", "error", "skipped")

#: The ledger run type of an evaluation run, and the event type of one sample.
EVAL_RUN_TYPE = "eval"
SAMPLE_EVENT = "sample"

#: Paired bootstrap resamples and seed used by ``compare_runs`` unless told otherwise.
DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0

# Provider failures that would fail every call alike: stop the run rather than
# record thousands of identical errors (and, for the ceiling, keep spending).
_FATAL_PROVIDER_KINDS = frozenset({"disabled", "misconfigured", "auth_failed"})

# A change in a score smaller than this is float noise, not an improvement.
_EPSILON = 1e-9


# -- scores --------------------------------------------------------------------------------


def _usage_dict(value: Any) -> dict | None:
    if value is None or isinstance(value, dict):
        return value
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):  # a cairn.providers.Usage
        return to_dict()
    raise ValidationError(
        f"usage must be a dict or a cairn.providers.Usage, got {type(value).__name__}", what="score", field="usage"
    )


@attrs.frozen
class Score:
    """What one evaluator made of one sample.

    ``outcome`` is ``ok`` (``value`` in [0, 1] and ``passed`` are set),
    ``skipped`` or ``error`` (both with a ``reason`` and no value). ``usage``
    (a ``Usage`` dict) and ``cost`` (None when the price is unknown) are set
    when the evaluator called a model; ``metadata`` holds anything else worth
    keeping (a judge's prompt and reply, the differing paths ...), as JSON.
    Build one with ``Score.of``, ``Score.skip`` or ``Score.error``.
    """

    outcome: str = attrs.field(validator=attrs.validators.in_(OUTCOMES))
    value: float | None = None
    passed: bool | None = None
    reason: str = ""
    metadata: dict = attrs.field(factory=dict)
    usage: dict | None = attrs.field(default=None, converter=_usage_dict)
    cost: float | None = None

    def __attrs_post_init__(self) -> None:
        if self.outcome == "ok":
            value = self.value
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or not 0.0 <= value <= 1.0
            ):
                raise ValidationError(
                    f"an ok score needs a value in [0, 1], got {value!r}", what="score", field="value"
                )
            if not isinstance(self.passed, bool):
                raise ValidationError(
                    f"an ok score needs passed = True or False, got {self.passed!r}", what="score", field="passed"
                )
        else:
            if self.value is not None or self.passed is not None:
                raise ValidationError(f"a {self.outcome} score has no value and no passed", what="score")
            if not self.reason:
                raise ValidationError(f"a {self.outcome} score needs a reason", what="score", field="reason")
        if not isinstance(self.metadata, dict):
            raise ValidationError("metadata must be a dict", what="score", field="metadata")

    @classmethod
    def of(
        cls,
        value: float,
        *,
        threshold: float,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
        usage: Any = None,
        cost: float | None = None,
    ) -> Score:
        """An ``ok`` score: ``passed`` is ``value >= threshold``."""
        value = float(value)
        return cls("ok", value, value >= threshold, reason, dict(metadata or {}), usage, cost)

    @classmethod
    def skip(cls, reason: str, *, metadata: Mapping[str, Any] | None = None) -> Score:
        """A ``skipped`` score: the evaluator does not apply to this sample, and says why."""
        return cls("skipped", reason=reason, metadata=dict(metadata or {}))

    @classmethod
    def error(
        cls, reason: str, *, metadata: Mapping[str, Any] | None = None, usage: Any = None, cost: float | None = None
    ) -> Score:
        """An ``error`` score: the evaluator tried and failed (a judge's unreadable reply, a provider error ...)."""
        return cls("error", reason=reason, metadata=dict(metadata or {}), usage=usage, cost=cost)

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def to_dict(self) -> dict[str, Any]:
        """The score as recorded: empty fields left out."""
        out: dict[str, Any] = {"outcome": self.outcome}
        if self.outcome == "ok":
            out["value"] = self.value
            out["passed"] = self.passed
        if self.reason:
            out["reason"] = self.reason
        if self.metadata:
            out["metadata"] = self.metadata
        if self.usage is not None:
            out["usage"] = self.usage
        if self.cost is not None:
            out["cost"] = self.cost
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Score:
        return cls(
            data["outcome"],
            data.get("value"),
            data.get("passed"),
            data.get("reason", ""),
            dict(data.get("metadata") or {}),
            data.get("usage"),
            data.get("cost"),
        )


# -- datasets ------------------------------------------------------------------------------


@attrs.frozen
class Sample:
    """One dataset row. ``None`` means absent: an empty string is an input like any other.

    ``input`` and ``expected`` are any JSON; ``output`` too (usually the text a
    system produced); ``context`` is a string or a list of strings;
    ``metadata`` a JSON object (``latency_ms``, ``cost`` ...). ``line`` is where
    the row came from, for messages.
    """

    id: str
    input: Any = None
    expected: Any = None
    metadata: dict = attrs.field(factory=dict)
    output: Any = None
    context: Any = None
    line: int | None = attrs.field(default=None, eq=False)

    def has(self, name: str) -> bool:
        """Whether the sample carries ``name`` (one of ``INPUTS``)."""
        return getattr(self, name) is not None


@attrs.frozen
class DatasetProblem:
    """One bad row: where (line, and column when known) and what."""

    line: int
    message: str
    column: int | None = None

    def render(self, path: str) -> str:
        where = f"{path}:{self.line}" + (f":{self.column}" if self.column else "")
        return f"{where}: {self.message}"


class DatasetError(ValidationError):
    """A dataset has bad rows; ``problems`` lists every one with its line, ``path`` names the file."""

    def __init__(self, path: str, problems: Sequence[DatasetProblem]) -> None:
        self.path = path
        self.problems = list(problems)
        count = len(self.problems)
        lines = "\n".join("  " + p.render(path) for p in self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(
            f"{count} {noun} in dataset {path}; nothing was run or recorded:\n{lines}",
            hint="fix these rows; each line is a JSON object with a string id and any of "
            "input, expected, output, context, metadata",
        )


@attrs.frozen
class Dataset:
    """A loaded dataset: its samples in file order, where it came from and the SHA-256 of its bytes."""

    samples: tuple[Sample, ...]
    path: str
    reference: str
    sha256: str

    @property
    def name(self) -> str:
        return Path(self.path).stem

    def __len__(self) -> int:
        return len(self.samples)


_FIELDS = ("id", "input", "expected", "metadata", "output", "context")
_PACKAGE_REF = re.compile(r"\A([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*):(.+)\Z")


def resolve_dataset_path(reference: str | Path, *, base: Path | None = None) -> Path:
    """The file a dataset reference names.

    A path (relative to ``base``, default the working directory), or
    ``package:path/inside/it`` for a file shipped inside an installed Python
    package (``cairn_evals:datasets/capitals-baseline.jsonl``). A file by that
    name wins over a package reference.
    """
    text = str(reference)
    path = Path(os.path.expanduser(text))
    if not path.is_absolute() and base is not None:
        path = base / path
    try:
        if path.exists():
            return path
    except OSError as exc:  # a name the system refuses (too long ...)
        raise NotFoundError(
            "dataset", text[:200], hint=f"{exc.strerror or exc}; give the path of a JSONL file"
        ) from None
    match = _PACKAGE_REF.match(text)
    # One letter before the colon is a Windows drive, not a package.
    if match and len(match.group(1)) > 1:
        import importlib.resources

        package, inner = match.groups()
        try:
            root = importlib.resources.files(package)
        except (ModuleNotFoundError, TypeError):
            raise NotFoundError(
                "dataset",
                text,
                hint=f"no installed Python package {package!r} holds it; give the path of a JSONL file instead",
            ) from None
        candidate = Path(str(root.joinpath(inner)))
        if candidate.is_file():
            return candidate
        raise NotFoundError("dataset", text, hint=f"package {package!r} has no file {inner!r}")
    raise NotFoundError("dataset", text, hint="give the path of a JSONL file (one JSON object per line)")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _type_name(value: Any) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def load_dataset(reference: str | Path, *, base: Path | None = None) -> Dataset:
    """Read a JSONL dataset: one object per line with ``id`` and any of ``input``, ``expected``,
    ``output``, ``context``, ``metadata``.

    Every problem (invalid JSON, a missing, non-string or duplicate id, a
    wrong type, an unknown key) is collected and raised together as a
    ``DatasetError`` naming file and line. Blank lines are ignored.
    """
    path = resolve_dataset_path(reference, base=base)
    shown = str(reference)
    if path.is_dir():
        raise ValidationError(f"dataset {shown} is a directory", hint="give the path of a JSONL file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read dataset {shown}: {exc.strerror}") from None
    digest = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DatasetError(shown, [DatasetProblem(line, f"not UTF-8 text ({exc.reason})")]) from None
    problems: list[DatasetProblem] = []
    samples: list[Sample] = []
    first_line: dict[str, int] = {}
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and friends, which splitlines() breaks on.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, parse_constant=_refuse_constant)
        except json.JSONDecodeError as exc:
            problems.append(DatasetProblem(number, f"invalid JSON: {exc.msg}", exc.colno))
            continue
        except RecursionError:
            problems.append(DatasetProblem(number, "JSON nested too deeply to read"))
            continue
        except ValueError as exc:
            problems.append(DatasetProblem(number, f"invalid JSON: {exc}"))
            continue
        if not isinstance(row, dict):
            problems.append(DatasetProblem(number, f"expected a JSON object, got {_type_name(row)}"))
            continue
        found = _check_row(row, number)
        problems.extend(found)
        sample_id = row.get("id")
        if isinstance(sample_id, str) and sample_id:
            if sample_id in first_line:
                problems.append(
                    DatasetProblem(number, f"duplicate id {sample_id!r} (first on line {first_line[sample_id]})")
                )
                continue
            first_line[sample_id] = number
        if found:
            continue
        samples.append(
            Sample(
                sample_id,
                row.get("input"),
                row.get("expected"),
                dict(row.get("metadata") or {}),
                row.get("output"),
                row.get("context"),
                number,
            )
        )
    if not problems and not samples:
        problems.append(DatasetProblem(1, "the dataset holds no samples"))
    if problems:
        raise DatasetError(shown, problems)
    return Dataset(tuple(samples), str(path.resolve()), shown, digest)


def _check_row(row: Mapping[str, Any], number: int) -> list[DatasetProblem]:
    problems: list[DatasetProblem] = []
    unknown = sorted(set(row) - set(_FIELDS))
    if unknown:
        problems.append(
            DatasetProblem(number, f"unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(_FIELDS)}")
        )
    if "id" not in row:
        problems.append(DatasetProblem(number, "missing id"))
    elif not isinstance(row["id"], str):
        problems.append(DatasetProblem(number, f"id must be a string, got {_type_name(row['id'])} {row['id']!r:.40}"))
    elif not row["id"].strip():
        problems.append(DatasetProblem(number, "id is empty"))
    metadata = row.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        problems.append(DatasetProblem(number, f"metadata must be an object, got {_type_name(metadata)}"))
    context = row.get("context")
    if (
        context is not None
        and not isinstance(context, str)
        and not (isinstance(context, list) and all(isinstance(c, str) for c in context))
    ):
        problems.append(
            DatasetProblem(number, f"context must be a string or a list of strings, got {_type_name(context)}")
        )
    return problems


# -- the evaluator contract ----------------------------------------------------------------


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


# -- building evaluators from tables and specs ----------------------------------------------

_NAME_RE = re.compile(r"\A[a-z][a-z0-9_]{0,63}\Z")
_KEY_RE = re.compile(r"\A\s*[A-Za-z_][A-Za-z0-9_]*\s*=")


@attrs.frozen
class EvaluatorSpec:
    """``NAME`` or ``NAME:key=value,key2=value2`` as written on the command line.

    Values are raw text until the evaluator's config class gives them a type:
    a text field takes the text as it is; other fields read it as a TOML value
    (``true``, ``0.5``, ``["a", "b"]``, ``{type = "object"}``); a list field
    also takes ``a|b|c``. Quote a value holding a comma followed by ``key=``.
    """

    name: str
    params: tuple[tuple[str, str], ...] = ()
    text: str = ""

    @property
    def label(self) -> str:
        """What the evaluator is called in results: the spec as written, so two settings of one evaluator differ."""
        return self.text or self.name

    @classmethod
    def parse(cls, text: str) -> EvaluatorSpec:
        text = text.strip()
        name, sep, rest = text.partition(":")
        name = name.strip()
        if not _NAME_RE.match(name):
            raise ValidationError(
                f"--evaluator {text!r}: {name!r} is not an evaluator name",
                hint="write NAME or NAME:key=value,key2=value2; `cairn evaluators` lists names",
            )
        if not sep:
            return cls(name, (), name)
        params: list[tuple[str, str]] = []
        for piece in _split_params(rest):
            key, eq, value = piece.partition("=")
            key = key.strip()
            if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValidationError(
                    f"--evaluator {text!r}: {piece!r} is not key=value", hint="write NAME:key=value,key2=value2"
                )
            if key in dict(params):
                raise ValidationError(f"--evaluator {text!r}: {key} is given twice")
            params.append((key, value.strip()))
        if not params:
            raise ValidationError(
                f"--evaluator {text!r}: nothing after the colon", hint="write NAME, or NAME:key=value"
            )
        return cls(name, tuple(params), text)


def _split_params(text: str) -> list[str]:
    """Split ``a=1,b="x,y",c=[1, 2]`` at the commas that start a new ``key=``.

    A comma inside quotes or brackets, or one not followed by ``key=``,
    belongs to the value (a regex like ``\\d{1,3}`` keeps its comma).
    """
    pieces: list[str] = []
    current: list[str] = []
    quote: str | None = None
    depth = 0
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\" and quote == '"' and i + 1 < len(text):
                current.append(char + text[i + 1])
                i += 2
                continue
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0 and _KEY_RE.match(text[i + 1 :]):
            pieces.append("".join(current))
            current = []
            i += 1
            continue
        current.append(char)
        i += 1
    if current or pieces:
        pieces.append("".join(current))
    return [p for p in pieces if p.strip()]


def _field_types(cls: type) -> dict[str, Any]:
    try:
        attrs.resolve_types(cls)
    except Exception:  # an annotation that cannot be resolved: read every value as TOML
        return {}
    return {f.name: f.type for f in attrs.fields(cls)}


def _accepts(annotation: Any, kind: type) -> bool:
    if annotation is kind:
        return True
    return kind in getattr(annotation, "__args__", ()) and getattr(annotation, "__origin__", None) is not list


def _is_list(annotation: Any) -> bool:
    if annotation is list or getattr(annotation, "__origin__", None) is list:
        return True
    return any(_is_list(a) for a in getattr(annotation, "__args__", ()) if a is not type(None))


def _coerce(raw: str, annotation: Any, *, source: str, path: tuple[str, ...]) -> Any:
    from cairn.config_toml import check_values, read_value

    # One reader for every TOML value cairn takes: nesting and numbers bounded, NUL refused.
    parsed, value = read_value(raw, source=source)
    check_values({path[-1]: value}, file=source, prefix=path[:-1], locate=False)
    if annotation is None:
        return value
    if _is_list(annotation):
        if parsed and isinstance(value, list):
            return value
        return [piece.strip() for piece in raw.split("|")]
    if _accepts(annotation, str):
        # A text field takes the text as written; a quoted value loses its quotes.
        return value if parsed and isinstance(value, str) else raw
    return value


@attrs.frozen
class ConfiguredEvaluator:
    """An evaluator ready to run: its label in results, registered name, plugin and effective parameters."""

    label: str
    name: str
    plugin: str
    params: dict
    evaluator: Evaluator

    @property
    def kind(self) -> str:
        return self.evaluator.kind

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.evaluator.inputs)

    @property
    def threshold(self) -> float:
        return float(self.evaluator.threshold)

    def describe(self) -> dict[str, Any]:
        """What the manifest records about this evaluator."""
        return {
            "label": self.label,
            "name": self.name,
            "plugin": self.plugin,
            "kind": self.kind,
            "inputs": list(self.inputs),
            "threshold": self.threshold,
            "params": self.params,
        }


def _empty_config() -> Config:
    from cairn.config import Config

    return Config(data={}, sources={})


def _with_params(config: Config, name: str, spec: EvaluatorSpec, config_cls: type) -> Config:
    """``config`` with the spec's parameters laid over ``[evaluators.<name>]``, remembered as their source."""
    if not spec.params:
        return config
    types = _field_types(config_cls)
    data = {**config.data}
    section = dict(data.get("evaluators") or {})
    table = dict(section.get(name) or {}) if isinstance(section.get(name), dict) else {}
    sources = dict(config.sources)
    for key, raw in spec.params:
        table[key] = _coerce(raw, types.get(key), source=f"--evaluator {spec.text}", path=("evaluators", name, key))
        sources[("evaluators", name, key)] = f"--evaluator {spec.text}"
    section[name] = table
    data["evaluators"] = section
    return attrs.evolve(config, data=data, sources=sources)


def _check_declarations(evaluator: Any, name: str, plugin: str) -> None:
    if not isinstance(evaluator, Evaluator):
        raise PluginError(
            f"evaluator {name!r}: the factory returned {type(evaluator).__name__}, not a cairn.evaluate.Evaluator",
            plugin=plugin,
        )
    kind = getattr(evaluator, "kind", None)
    if kind not in KINDS:
        raise PluginError(f"evaluator {name!r} declares kind {kind!r}; one of {', '.join(KINDS)}", plugin=plugin)
    inputs = tuple(getattr(evaluator, "inputs", ()))
    odd = [i for i in inputs if i not in INPUTS]
    if odd:
        raise PluginError(
            f"evaluator {name!r} needs unknown input(s) {', '.join(map(repr, odd))}; inputs are {', '.join(INPUTS)}",
            plugin=plugin,
        )
    threshold = getattr(evaluator, "threshold", None)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise PluginError(
            f"evaluator {name!r} has threshold {threshold!r}; a threshold is a number in [0, 1]", plugin=plugin
        )


def build_evaluators(
    specs: Iterable[str | EvaluatorSpec], plugins: Plugins, config: Config | None = None
) -> list[ConfiguredEvaluator]:
    """Evaluators from specs (``"exact"``, ``"regex:pattern=^a"``), each over its ``[evaluators.<name>]`` table.

    A spec's parameters override the table's keys. Unknown keys and wrong
    types are refused naming the key and where it was written, exactly as for
    any backend table. Two specs with the same label are refused.
    """
    from cairn.model import unstructure

    config = config if config is not None else _empty_config()
    out: list[ConfiguredEvaluator] = []
    seen: set[str] = set()
    for item in specs:
        spec = item if isinstance(item, EvaluatorSpec) else EvaluatorSpec.parse(item)
        if spec.label in seen:
            raise ValidationError(
                f"evaluator {spec.label!r} is given twice",
                hint="give each evaluator once, or with different parameters",
            )
        seen.add(spec.label)
        registration = plugins.evaluators.get(spec.name)
        effective = _with_params(config, spec.name, spec, registration.config_cls)
        settings = effective.structure_table(("evaluators", spec.name), registration.config_cls)
        evaluator = plugins.create("evaluators", spec.name, effective)
        _check_declarations(evaluator, spec.name, registration.plugin)
        evaluator.name = spec.name
        params = unstructure(settings) if attrs.has(type(settings)) else {}
        out.append(ConfiguredEvaluator(spec.label, spec.name, registration.plugin, params, evaluator))
    return out


@attrs.frozen
class EvaluatorInfo:
    """What ``cairn evaluators`` shows about one registered evaluator."""

    name: str
    kind: str | None
    inputs: list
    threshold: float | None
    plugin: str
    description: str
    parameters: dict
    configured: bool
    problem: str | None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def describe_evaluators(plugins: Plugins, config: Config | None = None) -> list[EvaluatorInfo]:
    """Every registered evaluator, built from its table to learn its kind, inputs and threshold.

    One that cannot be built as configured (a required key unset, a bad
    value) is listed with the problem, and with what its class declares when
    the factory is an ``Evaluator`` class.
    """
    from cairn.model import unstructure

    config = config if config is not None else _empty_config()
    out: list[EvaluatorInfo] = []
    tables = config.table("evaluators")
    for registration in plugins.evaluators:
        configured = isinstance(tables.get(registration.name), dict)
        parameters: dict = {}
        try:
            settings = config.structure_table(("evaluators", registration.name), registration.config_cls)
            parameters = unstructure(settings) if attrs.has(type(settings)) else {}
            evaluator = plugins.create("evaluators", registration.name, config)
            _check_declarations(evaluator, registration.name, registration.plugin)
            out.append(
                EvaluatorInfo(
                    registration.name,
                    evaluator.kind,
                    list(evaluator.inputs),
                    float(evaluator.threshold),
                    registration.plugin,
                    registration.description,
                    parameters,
                    configured,
                    None,
                )
            )
        except CairnError as exc:
            if not parameters:
                parameters = {f.name: _jsonable_default(f) for f in attrs.fields(registration.config_cls)}
            kind, inputs, threshold = _declared(registration.factory)
            out.append(
                EvaluatorInfo(
                    registration.name,
                    kind,
                    inputs,
                    threshold,
                    registration.plugin,
                    registration.description,
                    parameters,
                    configured,
                    str(exc),
                )
            )
    return out


def _declared(factory: Any) -> tuple[str | None, list, float | None]:
    """What a factory says of its evaluators without building one: an ``Evaluator`` class declares
    ``kind``, ``inputs`` and ``threshold``, and any factory may carry the same attributes."""
    kind = getattr(factory, "kind", None)
    if kind not in KINDS:
        return None, [], None
    inputs = getattr(factory, "inputs", ())
    threshold = getattr(factory, "threshold", None)
    return (
        kind,
        [i for i in inputs if i in INPUTS] if isinstance(inputs, (tuple, list)) else [],
        float(threshold) if isinstance(threshold, (int, float)) and not isinstance(threshold, bool) else None,
    )


def _jsonable_default(field: attrs.Attribute) -> Any:
    default = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        default = default.factory()  # type: ignore[call-arg]
    if default is attrs.NOTHING:
        return None
    try:
        json.dumps(default)
    except (TypeError, ValueError):
        return repr(default)
    return default


# -- statistics ----------------------------------------------------------------------------

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
        return cls(**{f.name: data.get(f.name) for f in attrs.fields(cls)})


def aggregate(scores: Sequence[Score], *, confidence: float = 0.95) -> Aggregate:
    """Summarize one evaluator's scores; only ``ok`` scores enter the mean, interval and pass rate.

    ``cost`` sums what the evaluator's model calls cost: None when any priced
    call's cost was unknown, 0 when it called no model.
    """
    values = [s.value for s in scores if s.outcome == "ok"]
    interval = mean_interval(values, confidence=confidence)  # type: ignore[arg-type]
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


# -- running an evaluation -----------------------------------------------------------------


@attrs.frozen
class SampleResult:
    """Every evaluator's score of one sample, and the output generated for it (with ``--generate``)."""

    sample_id: str
    scores: dict
    output: Any = None
    generation: dict | None = None

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
    aggregates: dict
    started_at: str
    ended_at: str
    scoring_s: float
    generated: bool = False
    generation: dict | None = None

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
) -> tuple[list[Sample], dict[str, dict], dict]:
    """Outputs for every sample from ``[cairn] llm``; a sample whose call fails keeps no output."""
    llm = context.llm()
    problem = llm.provider.readiness()
    if problem is not None:
        raise problem  # noop, a missing key: say so before any call, and record nothing
    generated: list[Sample] = []
    facts: dict[str, dict] = {}
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
                fact["error_facts"] = error.facts()  # type: ignore[attr-defined]
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
        generation_facts: dict[str, dict] = {}
        generation: dict | None = None
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


# -- recording -----------------------------------------------------------------------------


def _plugin_versions(plugins: Plugins | None) -> dict[str, str | None]:
    from cairn import __version__

    versions: dict[str, str | None] = {"cairn": __version__}
    if plugins is None:
        return versions
    for info in plugins.describe():
        if info.status == "ok" and not info.builtin:
            versions[info.name] = info.version
    return versions


def manifest(
    evaluation: Evaluation, *, name: str | None = None, plugins: Plugins | None = None, config: Config | None = None
) -> dict[str, Any]:
    """The run's metadata: what was evaluated, with what, by which versions, and the aggregates."""
    providers: dict[str, Any] = {}
    if config is not None:
        providers = {"llm": config.cairn.llm, "embeddings": config.cairn.embeddings}
    return {
        "name": name,
        "dataset": {
            "reference": evaluation.dataset.reference,
            "path": evaluation.dataset.path,
            "sha256": evaluation.dataset.sha256,
            "samples": len(evaluation.dataset),
        },
        "evaluators": [_described(e, evaluation) for e in evaluation.evaluators],
        "providers": providers,
        "generated": evaluation.generated,
        "generation": evaluation.generation,
        "plugins": _plugin_versions(plugins),
        "aggregates": {label: agg.to_dict() for label, agg in evaluation.aggregates.items()},
    }


def _described(configured: ConfiguredEvaluator, evaluation: Evaluation) -> dict[str, Any]:
    """The evaluator's manifest entry; a model-based one also lists the models that answered it."""
    entry = configured.describe()
    if configured.kind != "deterministic":
        models = {r.scores[configured.label].metadata.get("model") for r in evaluation.results}
        entry["models"] = sorted(m for m in models if isinstance(m, str))
    return entry


def _summary(evaluation: Evaluation, name: str | None) -> str:
    parts = []
    for label, agg in evaluation.aggregates.items():
        if agg.mean is None:
            parts.append(f"{label} -")
        else:
            parts.append(f"{label} {agg.mean:.3f} ({agg.passed}/{agg.scored} passed)")
    head = f"{name or evaluation.dataset.name}: {len(evaluation.dataset)} samples"
    return (head + "; " + ", ".join(parts))[:500]


def record_evaluation(
    ledger: Ledger,
    evaluation: Evaluation,
    *,
    name: str | None = None,
    plugins: Plugins | None = None,
    config: Config | None = None,
    run_id: str | None = None,
) -> Run:
    """Record ``evaluation`` as a run of type ``eval``: manifest in its metadata, one event per sample.

    One ``Ledger.record`` call, so the run and all its events are one store
    write. Status is ``partial`` when any score is an error or any generation
    failed, else ``ok``. ``run_id`` lets a caller fix the id up front (to tie
    provider spend to the run).
    """
    meta = manifest(evaluation, name=name, plugins=plugins, config=config)
    started = parse_time(evaluation.started_at)
    ended = parse_time(evaluation.ended_at)
    return ledger.record(
        EVAL_RUN_TYPE,
        status="partial" if evaluation.has_errors else "ok",
        # One time for every event: the samples were scored together, and it spares a clock read per event.
        events=[{**r.to_event(), "ts": evaluation.ended_at} for r in evaluation.results],
        run_id=run_id,
        started_at=format_time(started),
        ended_at=format_time(ended),
        duration_ms=max(0, int((ended - started) / _dt.timedelta(milliseconds=1))),
        subtype=(name or evaluation.dataset.name)[:64],
        summary=_summary(evaluation, name),
        metadata=meta,
    )


def new_eval_run_id() -> str:
    """A fresh id for an eval run (``<time>_eval_<random>``)."""
    return new_run_id(EVAL_RUN_TYPE)


# -- reading recorded runs -----------------------------------------------------------------


@attrs.frozen
class EvalRun:
    """A recorded eval run: the ledger run, its manifest, and every sample's scores in file order."""

    run: Any
    manifest: dict
    sample_ids: tuple[str, ...]
    scores: dict  # sample id -> label -> Score
    samples: tuple[dict, ...]  # the raw sample events' fields

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def name(self) -> str | None:
        return self.manifest.get("name")

    @property
    def labels(self) -> list[str]:
        return [e["label"] for e in self.manifest.get("evaluators", [])]

    def evaluator(self, label: str) -> dict[str, Any] | None:
        return next((e for e in self.manifest.get("evaluators", []) if e["label"] == label), None)

    def aggregates(self) -> dict[str, Aggregate]:
        return {label: Aggregate.from_dict(data) for label, data in self.manifest.get("aggregates", {}).items()}


_OFFSET_REF = re.compile(r"\A@last~(\d+)\Z")


def resolve_eval_run(ledger: Ledger, ref: str) -> str:
    """A run id from a reference to an eval run.

    ``@last`` is the newest eval run, ``@prev`` the one before, ``@last~N``
    the Nth before the newest; a run id is taken as is; anything else is the
    ``--name`` of an eval run (the newest with that name).
    """
    offset = None
    if ref == "@last":
        offset = 0
    elif ref == "@prev":
        offset = 1
    else:
        match = _OFFSET_REF.match(ref)
        if match:
            offset = int(match.group(1))
    if offset is not None:
        runs = ledger.list(type=EVAL_RUN_TYPE, limit=offset + 1)
        if len(runs) <= offset:
            have = len(runs)
            raise NotFoundError(
                "eval run",
                ref,
                hint=f"{have} eval run{'s' if have != 1 else ''} recorded; `cairn runs list --type eval` lists them",
            )
        return runs[offset].run_id
    if ref.startswith("@"):
        raise ValidationError(f"{ref!r} is not a run reference", hint="use @last, @prev, @last~N, a run id or a name")
    try:
        from cairn.model import validate_run_id

        validate_run_id(ref)
        if ledger.store.get_run(ref) is not None:
            return ref
    except ValidationError:
        pass
    for run in ledger.list(type=EVAL_RUN_TYPE):
        if run.metadata.get("name") == ref:
            return run.run_id
    raise NotFoundError(
        "eval run",
        ref,
        hint="give @last, @prev, a run id or the --name of an eval run; `cairn runs list --type eval` lists them",
    )


def load_eval_run(ledger: Ledger, ref: str) -> EvalRun:
    """Read an eval run and its sample events back (see ``resolve_eval_run`` for references)."""
    run = ledger.get(resolve_eval_run(ledger, ref))
    if run.type != EVAL_RUN_TYPE:
        raise ValidationError(
            f"run {run.run_id} is a {run.type!r} run, not an eval run",
            hint="`cairn runs list --type eval` lists eval runs",
        )
    ids: list[str] = []
    scores: dict[str, dict[str, Score]] = {}
    samples: list[dict] = []
    for event in ledger.events(run.run_id):
        if event.type != SAMPLE_EVENT:
            continue
        sample_id = event.fields["id"]
        ids.append(sample_id)
        scores[sample_id] = {label: Score.from_dict(data) for label, data in event.fields.get("scores", {}).items()}
        samples.append(event.fields)
    return EvalRun(run, dict(run.metadata), tuple(ids), scores, tuple(samples))


# -- comparing runs ------------------------------------------------------------------------


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
    improvements: list
    regressions: list
    unchanged: int
    base_pass_rate: float | None
    run_pass_rate: float | None
    passed_in_base_only: int
    passed_in_run_only: int
    mcnemar_p_value: float | None
    verdict: str
    warnings: list

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Comparison:
    """Two eval runs paired by sample id."""

    base: str
    run: str
    evaluators: list  # EvaluatorComparison
    only_in_base: list
    only_in_run: list
    evaluators_only_in_base: list
    evaluators_only_in_run: list
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
                base_mean=math.fsum(a.value for _, a, _ in pairs) / len(pairs),  # type: ignore[misc]
                run_mean=math.fsum(b.value for _, _, b in pairs) / len(pairs),  # type: ignore[misc]
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
