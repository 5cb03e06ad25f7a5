"""Governance in the data model: directives and their events, approvals, and idempotency records.

- ``Directive``: frozen intent. Its content (intent, constraints, scope,
  budget, who and when, what it supersedes) is hashed; the id is made from
  that hash, so a directive's content can never change under its id. Only
  its status moves, by compare-and-swap (``cairn.directives``).
- ``DirectiveEvent``: one status transition (or a run linked), in order.
- ``Approval``: an action parked by the policy gate, bound to the action's
  hash; pending until approved, denied or expired, and used at most once.
- ``NonceRecord``: an idempotency key, claimed by one caller, with the
  result recorded once the action finished.

Times are ``format_time`` strings (UTC, fixed width), so they compare as text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from cairn.errors import ValidationError
from cairn.model.canonical import canonical_json, is_hash, sha256_hex

__all__ = [
    "APPROVAL_STATUSES",
    "DIRECTIVE_STATUSES",
    "DIRECTIVE_TRANSITIONS",
    "FINAL_DIRECTIVE_STATUSES",
    "NONCE_STATES",
    "Approval",
    "Directive",
    "DirectiveEvent",
    "NonceRecord",
    "check_nonce_key",
    "validate_approval_id",
    "validate_directive_id",
]

DIRECTIVE_STATUSES = ("draft", "approved", "rejected", "running", "succeeded", "failed", "cancelled")
FINAL_DIRECTIVE_STATUSES = frozenset({"rejected", "succeeded", "failed", "cancelled"})
#: status -> the statuses it may move to; every other move is refused.
DIRECTIVE_TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"approved", "rejected", "cancelled"}),
    "approved": frozenset({"running", "cancelled"}),
    "running": frozenset({"succeeded", "failed", "cancelled"}),
    "rejected": frozenset(),
    "succeeded": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
APPROVAL_STATUSES = ("pending", "approved", "denied", "used")
NONCE_STATES = ("pending", "done")

_DIRECTIVE_ID = re.compile(r"\Adir_[0-9a-f]{16}\Z")
_APPROVAL_ID = re.compile(r"\Aapr_[0-9a-f]{16}\Z")
_SCOPE_KEYS = ("tools", "providers", "models", "paths", "executors", "remotes")
_BUDGET_KEYS = ("tokens", "cost", "wall_time_s")
MAX_KEY = 200


def validate_directive_id(value: object) -> str:
    if not isinstance(value, str) or not _DIRECTIVE_ID.match(value):
        raise ValidationError(
            f"{value!r:.80} is not a directive id", hint="ids look like dir_0123456789abcdef; `cairn directive list`"
        )
    return value


def validate_approval_id(value: object) -> str:
    if not isinstance(value, str) or not _APPROVAL_ID.match(value):
        raise ValidationError(
            f"{value!r:.80} is not an approval id", hint="ids look like apr_0123456789abcdef; `cairn approvals list`"
        )
    return value


def check_nonce_key(key: object) -> str:
    """An idempotency key: 1 to 200 printable characters (stored hashed where it would become a path)."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise ValidationError(
            f"idempotency key {key!r:.80} must be 1 to {MAX_KEY} printable characters",
            hint="use a stable name for the action, e.g. deploy-2026-12-03",
        )
    return key


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
        raise ValidationError(f"{what} must be a list of non-empty strings, got {value!r:.80}")
    return tuple(value)


def _tuple(value: Iterable[str]) -> tuple[str, ...]:
    # A typed converter: with converter=tuple, mypy's attrs plugin types the argument Iterable[_T_co] and refuses all.
    return tuple(value)


def _scope(value: Mapping[str, Any] | None) -> dict[str, tuple[str, ...]]:
    value = dict(value or {})
    unknown = sorted(set(value) - set(_SCOPE_KEYS))
    if unknown:
        raise ValidationError(
            f"unknown scope key(s): {', '.join(unknown)}", hint=f"scope keys: {', '.join(_SCOPE_KEYS)}"
        )
    return {k: _strings(v, f"scope.{k}") for k, v in sorted(value.items())}


def _budget(value: Mapping[str, Any] | None) -> dict[str, float]:
    value = dict(value or {})
    unknown = sorted(set(value) - set(_BUDGET_KEYS))
    if unknown:
        raise ValidationError(
            f"unknown budget key(s): {', '.join(unknown)}", hint=f"budget keys: {', '.join(_BUDGET_KEYS)}"
        )
    out = {}
    for key, amount in sorted(value.items()):
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not amount > 0:
            raise ValidationError(f"budget.{key} must be a number above 0, got {amount!r:.40}")
        out[key] = amount
    return out


@attrs.frozen
class Directive:
    """Frozen intent: what to do, within which scope and budget. ``id`` comes from ``content_hash``."""

    intent: str
    created_by: str
    created_at: str
    constraints: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    scope: dict[str, tuple[str, ...]] = attrs.field(factory=dict, converter=_scope)
    budget: dict[str, float] = attrs.field(factory=dict, converter=_budget)
    supersedes: str | None = None
    content_hash: str = ""
    id: str = ""

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.intent, str) or not self.intent.strip():
            raise ValidationError("a directive needs an intent", hint='e.g. cairn directive new "summarize the logs"')
        if len(self.intent) > 10_000:
            raise ValidationError("a directive's intent is at most 10000 characters")
        _strings(self.constraints, "constraints")
        if self.supersedes is not None:
            validate_directive_id(self.supersedes)
        digest = sha256_hex(canonical_json(self.content()))
        if self.content_hash and self.content_hash != digest:
            raise ValidationError(f"directive {self.id}: its content does not match its hash {self.content_hash}")
        object.__setattr__(self, "content_hash", digest)
        object.__setattr__(self, "id", "dir_" + digest[:16])

    def content(self) -> dict[str, Any]:
        """What the hash covers: everything but the status."""
        return {
            "intent": self.intent,
            "constraints": list(self.constraints),
            "scope": {k: list(v) for k, v in self.scope.items()},
            "budget": dict(self.budget),
            "created_by": self.created_by,
            "created_at": self.created_at,
            "supersedes": self.supersedes,
        }

    def to_record(self) -> dict[str, Any]:
        return {**self.content(), "id": self.id, "content_hash": self.content_hash}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Directive:
        fields = {k: record[k] for k in ("intent", "created_by", "created_at")}
        return cls(
            **fields,
            constraints=tuple(record.get("constraints") or ()),
            scope=record.get("scope") or {},
            budget=record.get("budget") or {},
            supersedes=record.get("supersedes"),
            content_hash=record.get("content_hash", ""),
        )

    def allows(self, kind: str, name: str) -> bool:
        """Whether the scope lets ``kind`` (``tools``, ``providers``, ...) touch ``name``; an unset kind allows all."""
        import fnmatch

        patterns = self.scope.get(kind)
        return patterns is None or any(fnmatch.fnmatchcase(name, p) for p in patterns)


@attrs.frozen
class DirectiveEvent:
    """One step in a directive's history: a transition (``from_status`` -> ``to_status``) or a linked run."""

    directive_id: str
    seq: int
    ts: str
    type: str  # "created", "transition" or "run"
    by: str
    from_status: str | None = None
    to_status: str | None = None
    reason: str | None = None
    run_id: str | None = None

    def to_record(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> DirectiveEvent:
        fields: dict[str, Any] = {f.name: record.get(f.name) for f in attrs.fields(cls)}
        return cls(**fields)


@attrs.frozen
class Approval:
    """An action waiting for (or given) a person's approval, bound to the action's hash."""

    id: str
    action_hash: str
    action: dict[str, Any]  # the action's metadata (never a body or a secret)
    rule: str
    reason: str
    policy_version: int
    created_at: str
    expires_at: str
    status: str = attrs.field(default="pending", validator=attrs.validators.in_(APPROVAL_STATUSES))
    decided_by: str | None = None
    decided_at: str | None = None
    decision_reason: str | None = None
    directive_id: str | None = None
    run_id: str | None = None

    def __attrs_post_init__(self) -> None:
        validate_approval_id(self.id)
        if not is_hash(self.action_hash):
            raise ValidationError(f"approval {self.id}: {self.action_hash!r:.80} is not an action hash")

    def expired(self, moment: str) -> bool:
        return moment >= self.expires_at

    def to_record(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Approval:
        return cls(**{f.name: record[f.name] for f in attrs.fields(cls) if f.name in record})


@attrs.frozen
class NonceRecord:
    """An idempotency key: who claimed it, when it lapses, and (once done) the recorded result."""

    key: str = attrs.field(converter=check_nonce_key)
    owner: str
    claimed_at: str
    expires_at: str
    state: str = attrs.field(default="pending", validator=attrs.validators.in_(NONCE_STATES))
    result: Any = None
    done_at: str | None = None
    #: What the key was used for (an action's hash): reusing a key for something else is refused.
    fingerprint: str | None = None

    @property
    def digest(self) -> str:
        """The SHA-256 of the key: what a backend uses where the key would become a path or a ref."""
        return sha256_hex(self.key.encode("utf-8"))

    def to_record(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> NonceRecord:
        return cls(**{f.name: record[f.name] for f in attrs.fields(cls) if f.name in record})
