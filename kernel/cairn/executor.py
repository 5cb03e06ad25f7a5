"""The execution-module contract: bounded actions with a declared input schema, scopes and limits.

A plugin registers an execution module through ``cairn_register_executors``
(``register(name, factory, config_cls)``); the factory returns an
``Executor``. The kernel (``cairn.execution``) validates the input against
``input_schema``, asks the policy gate (``action = "exec"``, with the
module's ``scopes_for(input)``), honours idempotency keys, records the call
as a run with events, and maps the result's status onto the run statuses:

=============  ==========
result         run status
=============  ==========
``ok``         ``ok``
``failed``     ``failed``
``timed_out``  ``failed``
``cancelled``  ``partial``
=============  ==========

``input_schema`` is a JSON Schema in the subset ``check_input`` reads:
``type`` (object, array, string, integer, number, boolean, null, or a list
of them), ``properties``, ``required``, ``additionalProperties`` (false),
``items``, ``enum``, ``minimum``, ``maximum``, ``minLength``,
``maxLength``, ``maxItems``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs

from cairn.errors import ValidationError

__all__ = ["EXEC_STATUSES", "RUN_STATUS", "ExecResult", "Executor", "check_input"]

EXEC_STATUSES = ("ok", "failed", "timed_out", "cancelled")
#: An execution result's status -> the status of the run that records it.
RUN_STATUS = {"ok": "ok", "failed": "failed", "timed_out": "failed", "cancelled": "partial"}


@attrs.frozen
class ExecResult:
    """What an execution module did: a status, its output (JSON), and what went wrong (no secrets)."""

    status: str = attrs.field(validator=attrs.validators.in_(EXEC_STATUSES))
    output: dict[str, Any] = attrs.field(factory=dict)
    error: str | None = None

    @property
    def run_status(self) -> str:
        return RUN_STATUS[self.status]

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "output": dict(self.output), "error": self.error}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecResult:
        return cls(data["status"], dict(data.get("output") or {}), data.get("error"))


class Executor(abc.ABC):
    """A bounded action: ``execute(input, timeout_s=)`` returns an ``ExecResult``, never raises for a failure
    of the action itself (only ``ValidationError`` for input its schema cannot express)."""

    #: The JSON Schema (subset, see the module docstring) the input must match.
    input_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    #: What the module touches (``process``, ``fs``, ``net`` ...), for the policy's ``scopes`` and directives.
    scopes: ClassVar[tuple[str, ...]] = ()

    #: Seconds one call may take, the default when the input gives none.
    timeout_s: float = 60.0

    def check(self, input: Mapping[str, Any]) -> None:
        """Refuse input the schema cannot (an allowlist ...) with a ``ValidationError``, before anything is recorded."""
        return None

    def scopes_for(self, input: Mapping[str, Any]) -> tuple[str, ...]:
        """The scopes this call touches (default: the module's)."""
        return self.scopes

    def paths_for(self, input: Mapping[str, Any]) -> tuple[str, ...]:
        """The file paths this call names, checked against a directive's ``paths``."""
        return ()

    def describe(self, input: Mapping[str, Any]) -> dict[str, Any]:
        """Metadata about the call for the ledger and traces (never a body or a secret)."""
        return {}

    @abc.abstractmethod
    def execute(self, input: Mapping[str, Any], *, timeout_s: float) -> ExecResult:
        """Do it, within ``timeout_s`` seconds and the module's limits."""

    def close(self) -> None:
        return None


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list, tuple),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def check_input(schema: Mapping[str, Any], value: Any, where: str = "input") -> None:
    """``ValidationError`` naming the first place ``value`` does not match ``schema`` (the subset above)."""
    kinds = schema.get("type")
    if kinds is not None:
        names: Sequence[str] = [kinds] if isinstance(kinds, str) else kinds
        fits = any(
            isinstance(value, _TYPES[n]) and not (isinstance(value, bool) and n in ("integer", "number")) for n in names
        )
        if not fits:
            raise ValidationError(f"{where} must be {' or '.join(names)}, got {type(value).__name__}")
    if "enum" in schema and value not in schema["enum"]:
        raise ValidationError(f"{where} must be one of {schema['enum']}, got {value!r:.60}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise ValidationError(f"{where} must be at least {schema['minimum']}, got {value}")
        if "maximum" in schema and value > schema["maximum"]:
            raise ValidationError(f"{where} must be at most {schema['maximum']}, got {value}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise ValidationError(f"{where} must hold at least {schema['minLength']} character(s)")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise ValidationError(f"{where} must hold at most {schema['maxLength']} characters")
    if isinstance(value, (list, tuple)):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise ValidationError(f"{where} must hold at most {schema['maxItems']} items")
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise ValidationError(f"{where} must hold at least {schema['minItems']} item(s)")
        for i, item in enumerate(value):
            check_input(schema.get("items", {}), item, f"{where}[{i}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in value:
                raise ValidationError(f"{where} needs {key!r}", hint=f"keys: {', '.join(properties) or 'none'}")
        for key, item in value.items():
            if key in properties:
                check_input(properties[key], item, f"{where}.{key}")
            elif schema.get("additionalProperties", True) is False:
                raise ValidationError(f"{where} has an unknown key {key!r}", hint=f"keys: {', '.join(properties)}")
