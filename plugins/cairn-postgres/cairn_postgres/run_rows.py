"""Runs as rows of typed columns, and back: what the ledger writes and lists, and migration 10 uses.

A run is stored one column per field. Free text (subtype, user, code ref,
summary) and the JSON objects and list are canonical JSON text, where a NUL
is escaped (PostgreSQL text cannot hold one). Reading builds the ``Run``
without its validators: every row was validated as a ``Run`` when it was
written, and re-checking thousands of them was most of the cost of listing
them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from cairn.errors import ValidationError
from cairn.model import Run

__all__ = ["RUN_COLUMNS", "run_from_row", "run_row"]

#: The run's fields in ``Run``'s order, as columns (``user`` is a reserved word in SQL).
RUN_COLUMNS = (
    "run_id", "type", "status", "started_at", "subtype", "run_user", "code_ref", "ended_at", "duration_ms",
    "environment", "modules_affected", "summary", "metadata",
)  # fmt: skip
_NAMES = tuple("user" if c == "run_user" else c for c in RUN_COLUMNS)
_FIELDS = tuple(f.name for f in attrs.fields(Run))
#: True while ``Run``'s fields are the columns above, in their order: rows become runs without ``Run(**...)``.
_SAME_SHAPE = _FIELDS == _NAMES
_TEXT = (4, 5, 6, 11)  # subtype, user, code_ref, summary: JSON strings, or NULL for None (summary is never None)
_MAX_BIGINT = 2**63 - 1
_new = object.__new__
_set = object.__setattr__


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def run_row(run: Run | Mapping[str, Any]) -> tuple[Any, ...]:
    """The column values of a run (a ``Run``, or a record ``Run.to_record`` made), in ``RUN_COLUMNS`` order."""
    get = run.get if isinstance(run, Mapping) else lambda name, default=None: getattr(run, name, default)
    duration = get("duration_ms")
    if isinstance(duration, int) and duration > _MAX_BIGINT:
        raise ValidationError(f"run {get('run_id')}: duration_ms {duration} is too large to store", what="run")
    values: list[Any] = []
    for i, name in enumerate(_NAMES):
        value = get(name)
        if i in _TEXT:
            value = None if value is None else _json(value)
        elif i in (9, 10, 12):
            value = _json([] if value is None and i == 10 else {} if value is None else value)
        values.append(value)
    return tuple(values)


def _text_of(value: str | None) -> str | None:
    return value if value is None else "" if value == '""' else json.loads(value)


def run_from_row(row: Sequence[Any]) -> Run:
    """The run a row of ``RUN_COLUMNS`` holds, built without the validators (it was validated when written)."""
    (run_id, kind, status, started_at, subtype, user, code_ref, ended_at, duration_ms,
     environment, modules, summary, metadata) = row  # fmt: skip
    values = (
        run_id, kind, status, started_at, _text_of(subtype), _text_of(user), _text_of(code_ref), ended_at, duration_ms,
        {} if environment == "{}" else json.loads(environment), [] if modules == "[]" else json.loads(modules),
        "" if summary == '""' else json.loads(summary), {} if metadata == "{}" else json.loads(metadata),
    )  # fmt: skip
    if not _SAME_SHAPE:  # a newer kernel's Run: let it fill its defaults (and check)
        return Run(**dict(zip(_NAMES, values, strict=True)))
    run = _new(Run)
    for name, value in zip(_FIELDS, values, strict=True):
        _set(run, name, value)
    return run
