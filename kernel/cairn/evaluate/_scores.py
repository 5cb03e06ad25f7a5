"""Scores: what one evaluator made of one sample (``ok``, ``skipped`` or ``error``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from cairn.errors import ValidationError

__all__ = ["OUTCOMES", "Score"]


#: How a score came out.
OUTCOMES = ("ok", "error", "skipped")


def _usage_dict(value: Any) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):  # a cairn.providers.Usage
        usage: dict[str, Any] = to_dict()
        return usage
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
    metadata: dict[str, Any] = attrs.field(factory=dict)
    usage: dict[str, Any] | None = attrs.field(default=None, converter=_usage_dict)
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
