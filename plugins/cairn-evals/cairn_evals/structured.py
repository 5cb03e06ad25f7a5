"""JSON evaluators: json_valid, json_schema (the jsonschema package, imported on use) and json_diff."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cairn.errors import ConfigError
from cairn.evaluate import Sample, Score, ScoringContext
from cairn_evals import text as T
from cairn_evals.config import JsonDiffConfig, JsonSchemaConfig, JsonValidConfig
from cairn_evals.deterministic import TableEvaluator

__all__ = ["JsonDiff", "JsonSchema", "JsonValid", "json_path", "leaves", "parse_output"]

#: How many validation errors or differing paths a score's metadata keeps.
MAX_LISTED = 20


class _Invalid(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _Invalid(f"{name} is not valid JSON")


def parse_output(output: Any, *, strip_fences: bool = False) -> Any:
    """The JSON value of an output: a string is parsed (strictly: no NaN), anything else is already JSON.

    Raises ``ValueError`` with the parser's message, line and column.
    """
    if not isinstance(output, str):
        return output
    text = T.strip_fences(output) if strip_fences else output
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at line {exc.lineno}, column {exc.colno}") from None


def _expected_json(expected: Any) -> Any:
    """Expected as JSON: a string holding a JSON object or array is parsed; any other value is taken as it is."""
    if isinstance(expected, str):
        try:
            value = json.loads(expected, parse_constant=_refuse_constant)
        except ValueError:
            return expected
        if isinstance(value, (dict, list)):
            return value
    return expected


class JsonValid(TableEvaluator):
    """1 when the output is JSON (of the required shape); else 0, with the parser's message."""

    kind = "deterministic"
    inputs = ("output",)
    threshold = 1.0

    def __init__(self, config: JsonValidConfig, context: Any = None) -> None:
        super().__init__(config, context)

    def score(self, sample: Sample, context: ScoringContext) -> Score:
        try:
            value = parse_output(sample.output, strip_fences=self.config.strip_fences)
        except ValueError as exc:
            return self.result(0.0, reason=f"not valid JSON: {exc}")
        require = self.config.require
        if require == "object" and not isinstance(value, dict) or require == "array" and not isinstance(value, list):
            return self.result(0.0, reason=f"valid JSON, but not an {require}: {type(value).__name__}")
        return self.result(1.0)


def json_path(parts: tuple[Any, ...]) -> str:
    """``("a", 0, "b c")`` -> ``$.a[0]["b c"]``."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            out += f".{part}"
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


class JsonSchema(TableEvaluator):
    """1 when the output is JSON valid against the schema (from the table, a file, or the sample's expected)."""

    kind = "deterministic"
    threshold = 1.0

    def __init__(self, config: JsonSchemaConfig, context: Any = None) -> None:
        super().__init__(config, context)
        schema = config.schema
        key = "schema"
        if config.schema_file is not None:
            key = "schema_file"
            schema = self._read_schema(config.schema_file, context)
        self._validator = self._make_validator(schema, key) if schema is not None else None
        self.inputs = ("output",) if schema is not None else ("output", "expected")

    @staticmethod
    def _read_schema(name: str, context: Any) -> Any:
        path = Path(os.path.expanduser(name))
        project = getattr(context, "project_dir", None)
        if not path.is_absolute() and project is not None:
            path = Path(project) / path
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(
                f"cannot read the schema file {str(path)!r}: {exc.strerror}",
                table="evaluators.json_schema",
                key="schema_file",
                hint="the path is relative to the project directory",
            ) from None
        except ValueError as exc:
            raise ConfigError(
                f"the schema file {str(path)!r} is not JSON: {exc}", table="evaluators.json_schema", key="schema_file"
            ) from None

    def _make_validator(self, schema: Any, key: str) -> Any:
        """A jsonschema validator for ``schema``; an invalid schema is a config error naming ``key``."""
        import jsonschema

        try:
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ConfigError(
                f"not a valid JSON Schema: {exc.message}",
                table="evaluators.json_schema",
                key=key,
                hint="see https://json-schema.org for the syntax",
            ) from None
        checker = cls.FORMAT_CHECKER if self.config.check_formats else None
        return cls(schema, format_checker=checker)

    def score(self, sample: Sample, context: ScoringContext) -> Score:
        validator = self._validator
        if validator is None:
            import jsonschema

            schema = _expected_json(sample.expected)
            if not isinstance(schema, (dict, bool)):
                return Score.error("expected must be a JSON Schema (an object) when the table sets no schema")
            try:
                cls = jsonschema.validators.validator_for(schema)
                # types-jsonschema's Validator protocol takes only a dict, but JSON Schema's boolean
                # schemas (true, false) are valid and jsonschema checks them.
                cls.check_schema(schema)  # type: ignore[arg-type]
            except jsonschema.SchemaError as exc:
                return Score.error(f"expected is not a valid JSON Schema: {exc.message}")
            validator = cls(schema, format_checker=cls.FORMAT_CHECKER if self.config.check_formats else None)
        try:
            instance = parse_output(sample.output, strip_fences=self.config.strip_fences)
        except ValueError as exc:
            return self.result(0.0, reason=f"not valid JSON: {exc}")
        errors = sorted(validator.iter_errors(instance), key=lambda e: (list(map(str, e.absolute_path)), e.message))
        if not errors:
            return self.result(1.0)
        listed = [{"path": json_path(tuple(e.absolute_path)), "message": e.message} for e in errors[:MAX_LISTED]]
        shown = "; ".join(f"{item['path']}: {item['message']}" for item in listed[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        return self.result(
            0.0,
            reason=f"{len(errors)} schema violation{'s' if len(errors) != 1 else ''}: {shown}{more}",
            metadata={"errors": listed},
        )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def leaves(value: Any, *, ignore_order: bool = False, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[tuple, Any]]:
    """Every (path, leaf) of a JSON value; an empty object or array is a leaf of its own.

    With ``ignore_order`` array elements are sorted by their canonical JSON
    first, so two arrays holding the same elements in any order agree.
    """
    if isinstance(value, dict) and value:
        for key in sorted(value):
            yield from leaves(value[key], ignore_order=ignore_order, prefix=(*prefix, key))
    elif isinstance(value, list) and value:
        items = sorted(value, key=_canonical) if ignore_order else value
        for index, item in enumerate(items):
            yield from leaves(item, ignore_order=ignore_order, prefix=(*prefix, index))
    else:
        yield prefix, value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return "array"


def _same(a: Any, b: Any, tolerance: float) -> bool:
    # True == 1 in Python, but a boolean is not a number in JSON.
    if _kind(a) != _kind(b):
        return False
    if _kind(a) == "number":
        return a == b or math.isclose(a, b, rel_tol=0.0, abs_tol=tolerance)
    return a == b


class JsonDiff(TableEvaluator):
    """The share of leaves (paths to values) on which output and expected agree; the reason lists what differs."""

    kind = "deterministic"
    inputs = ("output", "expected")
    threshold = 1.0

    def __init__(self, config: JsonDiffConfig, context: Any = None) -> None:
        super().__init__(config, context)

    def score(self, sample: Sample, context: ScoringContext) -> Score:
        try:
            actual = parse_output(sample.output, strip_fences=self.config.strip_fences)
        except ValueError as exc:
            return self.result(0.0, reason=f"the output is not valid JSON: {exc}")
        expected = _expected_json(sample.expected)
        order = self.config.ignore_order
        got = dict(leaves(actual, ignore_order=order))
        want = dict(leaves(expected, ignore_order=order))
        differences: list[dict[str, str]] = []
        matching = 0
        for path in sorted(set(got) | set(want), key=lambda p: tuple(map(str, p))):
            if path not in got:
                differences.append({"path": json_path(path), "kind": "missing"})
            elif path not in want:
                differences.append({"path": json_path(path), "kind": "extra"})
            elif _same(got[path], want[path], self.config.float_tol):
                matching += 1
            else:
                kind = "changed" if _kind(got[path]) == _kind(want[path]) else "type"
                differences.append({"path": json_path(path), "kind": kind})
        total = matching + len(differences)
        value = matching / total if total else 1.0
        meta: dict[str, Any] = {"matching": matching, "total": total}
        if not differences:
            return self.result(value, metadata=meta)
        meta["differences"] = differences[:MAX_LISTED]
        shown = ", ".join(f"{d['path']} ({d['kind']})" for d in differences[:8])
        more = f", and {len(differences) - 8} more" if len(differences) > 8 else ""
        return self.result(value, reason=f"{len(differences)} of {total} leaves differ: {shown}{more}", metadata=meta)
