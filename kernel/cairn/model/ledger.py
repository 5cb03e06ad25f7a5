"""The run ledger's data model: runs, their events, and spend records.

A run is one recorded operation (a command, an agent session, an evaluation)
with an ordered stream of events. Run ids are made by the kernel as
``<UTC timestamp>_<type>_<random suffix>``; an id from anywhere else is
validated before it reaches a path, a ref name or a command line.
"""

from __future__ import annotations

import datetime as _dt
import re
import secrets
from collections.abc import Mapping
from typing import Any

import attrs

from cairn.errors import ValidationError
from cairn.model.canonical import canonical_json, format_time, parse_time

__all__ = [
    "RUN_STATUSES",
    "Run",
    "RunEvent",
    "SpendRecord",
    "new_run_id",
    "validate_run_id",
]

#: ``open`` while events are still being appended; one of the others once closed.
RUN_STATUSES = ("open", "ok", "failed", "partial")

_RUN_ID_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_TYPE_RE = re.compile(r"\A[a-z][a-z0-9_-]{0,31}\Z")


def validate_run_id(value: object) -> str:
    """A run id safe as a path component, a ref name and a command-line argument."""
    if not isinstance(value, str) or not _RUN_ID_RE.match(value) or ".." in value or value.endswith((".", ".lock")):
        raise ValidationError(
            f"{value!r:.80} is not a valid run id",
            given=value,
            hint="run ids use letters, digits, '.', '_' and '-' (not first), at most 128 characters, no '..'",
        )
    return value


def validate_run_type(value: object) -> str:
    if not isinstance(value, str) or not _TYPE_RE.match(value):
        raise ValidationError(
            f"{value!r:.40} is not a valid run type",
            given=value,
            hint="lowercase letters, digits, '_' and '-', starting with a letter, at most 32 characters",
        )
    return value


def new_run_id(run_type: str, moment: _dt.datetime | None = None) -> str:
    """``20261122T101500.123456Z_eval_k3j9x2qa``: sortable by time, unique by its random suffix."""
    validate_run_type(run_type)
    moment = moment or _dt.datetime.now(_dt.timezone.utc)
    stamp = moment.astimezone(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    suffix = secrets.token_hex(4)
    return f"{stamp}_{run_type}_{suffix}"


def _check_id(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    validate_run_id(value)


def _check_type(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    validate_run_type(value)


def _json_object(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, dict):
        raise ValidationError(f"must be a JSON object, got {type(value).__name__}", field=attribute.name)
    canonical_json(value)


def _time(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        parse_time(value)


@attrs.frozen
class Run:
    """One recorded operation. ``status`` is ``open`` until the run is closed."""

    run_id: str = attrs.field(validator=_check_id)
    type: str = attrs.field(validator=_check_type)
    status: str = attrs.field(validator=attrs.validators.in_(RUN_STATUSES))
    started_at: str = attrs.field(validator=_time)
    subtype: str | None = None
    user: str | None = None
    code_ref: str | None = None
    ended_at: str | None = attrs.field(default=None, validator=_time)
    duration_ms: int | None = None
    environment: dict[str, Any] = attrs.field(factory=dict, validator=_json_object)
    modules_affected: list[str] = attrs.field(factory=list)
    summary: str = ""
    metadata: dict[str, Any] = attrs.field(factory=dict, validator=_json_object)

    def __attrs_post_init__(self) -> None:
        if not all(isinstance(m, str) for m in self.modules_affected):
            raise ValidationError("modules_affected must be a list of strings", what="run")
        if self.duration_ms is not None and (not isinstance(self.duration_ms, int) or self.duration_ms < 0):
            raise ValidationError(f"duration_ms must be a non-negative integer, got {self.duration_ms!r}", what="run")

    def to_record(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Run:
        return cls(**record)

    @property
    def is_open(self) -> bool:
        return self.status == "open"


@attrs.frozen
class RunEvent:
    """One event of a run: its position, time, type and any JSON fields."""

    run_id: str = attrs.field(validator=_check_id)
    seq: int
    ts: str = attrs.field(validator=_time)
    type: str
    fields: dict[str, Any] = attrs.field(factory=dict, validator=_json_object)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.seq, int) or isinstance(self.seq, bool) or self.seq < 0:
            raise ValidationError(f"seq must be a non-negative integer, got {self.seq!r}", what="event")
        if not isinstance(self.type, str) or not self.type:
            raise ValidationError("type must be a non-empty string", what="event")

    def to_record(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RunEvent:
        return cls(**record)


@attrs.frozen
class SpendRecord:
    """What one provider call cost: metadata only, never a message body or a key.

    ``cost`` is None when the price is unknown (never 0 for "unknown").
    """

    ts: str = attrs.field(validator=_time)
    provider: str
    model: str
    outcome: str  # "ok" or an error kind from the provider taxonomy
    calls: int = 1
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None
    run_id: str | None = None

    @property
    def day(self) -> str:
        return self.ts[:10]

    def to_record(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> SpendRecord:
        return cls(**record)


def run_time(moment: _dt.datetime | None = None) -> str:
    return format_time(moment or _dt.datetime.now(_dt.timezone.utc))
