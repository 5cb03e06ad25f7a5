"""Session and checkpoint records as content: what ``refs/sessions/<id>`` and ``refs/checkpoints/<name>`` hold.

A session record is a chain of commits (each change a new commit whose
parent is the previous version) whose content is a ``session.record``; a
checkpoint is one commit whose content is a ``session.checkpoint`` and whose
parent is the context commit it names. Both are ordinary commits, so every
backend with the objects and refs facets keeps them, gc keeps what they
reach, fsck checks them and cairn-git pushes and pulls them with the other
refs. See ``cairn.sessions`` and ``cairn.checkpoints``.
"""

from __future__ import annotations

import re
import secrets
import string
from typing import Any, ClassVar

import attrs

from cairn.errors import ValidationError
from cairn.model.commit import validate_branch_name
from cairn.model.content import Content, ContentHints, Message, Priority

__all__ = [
    "SESSION_CONTENT_TYPES",
    "CheckpointRecord",
    "SessionRecord",
    "new_session_id",
    "validate_checkpoint_name",
    "validate_session_id",
]

SESSION_STATUSES = ("open", "closed")
_SESSION_ID = re.compile(r"\As-[a-z0-9]{4,32}\Z")
_ID_ALPHABET = string.ascii_lowercase + string.digits
_HINTS = ContentHints("system", Priority.SKIP, order=10, compression_priority=100)


def new_session_id() -> str:
    """``s-`` and 10 random lowercase letters and digits (about 52 bits)."""
    return "s-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


def validate_session_id(value: object) -> str:
    if not isinstance(value, str) or not _SESSION_ID.match(value):
        raise ValidationError(
            f"{value!r:.80} is not a session id",
            given=value,
            hint="session ids look like s-k3v9q2m7xa; `cairn session list` shows them",
        )
    return value


def validate_checkpoint_name(value: object) -> str:
    """A checkpoint name: a branch name's rules (so it is safe in a ref), at most 100 characters, no '/'."""
    if isinstance(value, str) and ("/" in value or len(value) > 100):
        raise ValidationError(
            f"checkpoint name {value!r:.80} has a '/' or is longer than 100 characters",
            given=value,
            hint="name checkpoints with letters, digits, '.', '_' and '-'",
        )
    try:
        return validate_branch_name(value)
    except ValidationError as exc:
        exc.message = exc.message.replace("branch name", "checkpoint name")
        raise


def _text(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{attribute.name} must be a non-empty string")


def _optional_text(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise TypeError(f"{attribute.name} must be a non-empty string or absent")


def _status(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in SESSION_STATUSES:
        raise TypeError(f"{attribute.name} must be one of {', '.join(SESSION_STATUSES)}")


def _names(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise TypeError(f"{attribute.name} must be a list of names")


def _count(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"{attribute.name} must be a whole number from 0")


@attrs.frozen
class SessionRecord(Content):
    """One version of a session's record: who it talks to, its branch, status and times.

    Totals (tokens, spend, runs) are not here: each reply commit on the
    session's branch carries the running totals, written in the same
    transaction as the reply, so they can never disagree with the turns.
    """

    content_type: ClassVar[str] = "session.record"
    hints: ClassVar[ContentHints] = _HINTS
    id: str = attrs.field(validator=_text)
    title: str = attrs.field(validator=_text)
    branch: str = attrs.field(validator=_text)
    created: str = attrs.field(validator=_text)
    status: str = attrs.field(default="open", validator=_status)
    provider: str | None = attrs.field(default=None, validator=_optional_text)
    model: str | None = attrs.field(default=None, validator=_optional_text)
    # Bare list, for the converter's strict hook (see cairn.model.content.ToolIO.payload).
    tools: list = attrs.field(factory=list, validator=_names)  # type: ignore[type-arg]
    #: The commit the branch started from (None: an empty branch); totals count what follows it.
    start: str | None = attrs.field(default=None, validator=_optional_text)

    def render(self) -> tuple[Message, ...]:
        return (Message("system", f"Session {self.id} ({self.status}): {self.title}"),)


@attrs.frozen
class CheckpointRecord(Content):
    """A named point of a branch: the commit (the record commit's parent), its session, tokens and time."""

    content_type: ClassVar[str] = "session.checkpoint"
    hints: ClassVar[ContentHints] = _HINTS
    name: str = attrs.field(validator=_text)
    commit: str = attrs.field(validator=_text)
    created: str = attrs.field(validator=_text)
    branch: str | None = attrs.field(default=None, validator=_optional_text)
    session: str | None = attrs.field(default=None, validator=_optional_text)
    message: str | None = attrs.field(default=None, validator=_optional_text)
    #: The branch's effective context tokens at the commit.
    tokens: int = attrs.field(default=0, validator=_count)
    #: True for the checkpoint ``restore`` records of the tip it moves away from.
    auto: bool = False

    def render(self) -> tuple[Message, ...]:
        return (Message("system", f"Checkpoint {self.name} at {self.commit[:12]}"),)


SESSION_CONTENT_TYPES: tuple[type[Content], ...] = (SessionRecord, CheckpointRecord)
