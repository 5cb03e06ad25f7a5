"""Datasets: JSONL files of samples, read with every bad row reported by file and line.

Errors raised here (besides those of ``cairn.errors``)::

    cairn.errors.ValidationError
    └── DatasetError        a dataset has bad rows: every problem, with file and line
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from cairn.errors import NotFoundError, ValidationError

__all__ = ["Dataset", "DatasetError", "DatasetProblem", "Sample", "load_dataset", "resolve_dataset_path"]


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
    metadata: dict[str, Any] = attrs.field(factory=dict)
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
    path = Path(os.path.expanduser(text))  # Path.expanduser raises for ~unknown-user
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
        bad_line = raw[: exc.start].count(b"\n") + 1
        raise DatasetError(shown, [DatasetProblem(bad_line, f"not UTF-8 text ({exc.reason})")]) from None
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
                row["id"],  # a non-empty string: the row has no problem
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
