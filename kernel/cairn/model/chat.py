"""Chat messages and threads: what people and tools say about runs and work.

A message attaches to a run, to a thread, or to both; with neither it goes to
the ``general`` thread. Message ids sort by time and are unique:
``<UTC time>-<random>``. Text may be an encrypted envelope (``ENC:v1:...``,
see ``cairn.chat``); the ``encrypted`` flag says so.
"""

from __future__ import annotations

import datetime as _dt
import re
import secrets
from collections.abc import Mapping
from typing import Any

import attrs

from cairn.errors import ValidationError
from cairn.model.artifacts import ArtifactRef
from cairn.model.canonical import parse_time
from cairn.model.ledger import validate_run_id

__all__ = [
    "GENERAL_THREAD",
    "MESSAGE_SOURCES",
    "ChatMessage",
    "Thread",
    "new_message_id",
    "validate_thread_id",
]

GENERAL_THREAD = "general"
MESSAGE_SOURCES = ("manual", "trace", "system")

_ID_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


def _safe_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value) or ".." in value or value.endswith((".", ".lock")):
        raise ValidationError(
            f"{value!r:.80} is not a valid {what}",
            given=value,
            hint="use letters, digits, '.', '_' and '-' (not first), at most 128 characters, no '..'",
        )
    return value


def validate_thread_id(value: object) -> str:
    return _safe_id(value, "thread id")


def validate_message_id(value: object) -> str:
    return _safe_id(value, "message id")


def new_message_id(moment: _dt.datetime | None = None) -> str:
    """``20261122T101500.123456Z-1f2e3d4c5b6a``: sorts by time, unique by its random part."""
    moment = moment or _dt.datetime.now(_dt.timezone.utc)
    return moment.astimezone(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ") + "-" + secrets.token_hex(6)


def _message_id(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    validate_message_id(value)


def _optional_thread(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        validate_thread_id(value)


def _optional_run(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        validate_run_id(value)


def _time(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    parse_time(value)


def _text(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str):
        raise ValidationError(f"must be a string, got {type(value).__name__}", what="message", field=attribute.name)


def _attachments(value: Any) -> tuple[ArtifactRef, ...]:
    """Attached files as ``ArtifactRef`` values, from references or their records (dicts)."""
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise ValidationError("attachments must be a list of artifact references", what="message")
    return tuple(v if isinstance(v, ArtifactRef) else ArtifactRef.from_record(v) for v in value)


@attrs.frozen
class ChatMessage:
    """One message. ``text`` is the envelope, not the plaintext, when ``encrypted`` is set.

    ``attachments`` reference files kept by hash (``cairn chat send --attach``);
    their names and media types are stored in the clear, even when the text
    is encrypted.
    """

    id: str = attrs.field(validator=_message_id)
    ts: str = attrs.field(validator=_time)
    text: str = attrs.field(validator=_text)
    user: str | None = None
    thread_id: str | None = attrs.field(default=None, validator=_optional_thread)
    run_id: str | None = attrs.field(default=None, validator=_optional_run)
    source: str = attrs.field(default="manual", validator=attrs.validators.in_(MESSAGE_SOURCES))
    publish: bool = False
    encrypted: bool = False
    attachments: tuple[ArtifactRef, ...] = attrs.field(default=(), converter=_attachments)

    def __attrs_post_init__(self) -> None:
        if self.thread_id is None and self.run_id is None:
            raise ValidationError("a message belongs to a run, a thread or both", what="message")

    def to_record(self) -> dict[str, Any]:
        record = attrs.asdict(self, filter=lambda a, v: a.name != "attachments")
        if self.attachments:  # left out when empty: records stay as they were before attachments existed
            record["attachments"] = [ref.to_record() for ref in self.attachments]
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ChatMessage:
        return cls(**record)


@attrs.frozen
class Thread:
    """A conversation: a title, who started it, when, an optional run it is about, tags."""

    thread_id: str = attrs.field(validator=lambda i, a, v: validate_thread_id(v))
    title: str = attrs.field(validator=_text)
    created_at: str = attrs.field(validator=_time)
    created_by: str | None = None
    anchor_run: str | None = attrs.field(default=None, validator=_optional_run)
    tags: list[str] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        if not all(isinstance(t, str) and t for t in self.tags):
            raise ValidationError("tags must be non-empty strings", what="thread", field="tags")

    def to_record(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Thread:
        return cls(**record)
