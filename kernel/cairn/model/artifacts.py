"""Artifacts in the data model: references to stored files, and the records of names and snapshots.

- ``ArtifactRef``: what a context item, a chat message or a run event
  carries to point at a stored file: its SHA-256, a name, a media type and
  its size. The bytes live elsewhere (inline in the store, or in the
  artifact store), found by the hash.
- ``ArtifactRecord``: one naming of a stored file (``cairn artifact put``,
  an attachment): the reference, when, who, what it was for (``referrer``:
  ``run:<id>``, ``chat:<id>``, ``commit:<hash>``), and whether its bytes
  are kept inline.
- ``SnapshotRecord``: one snapshot of a directory: its tree hash, the
  directory, when, what it held, who and what for.

Records are append-only; each is identified by the SHA-256 of its canonical
JSON (``id``), so adding the same record twice keeps one.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping
from typing import Any

import attrs

from cairn.errors import ValidationError
from cairn.model.canonical import canonical_json, format_time, is_hash, parse_time, sha256_hex

__all__ = [
    "IMAGE_TYPES",
    "MAX_NAME",
    "ArtifactRecord",
    "ArtifactRef",
    "SnapshotRecord",
    "check_mime",
    "check_name",
    "check_referrer",
    "guess_mime",
    "human_size",
]

#: The image types both OpenAI and Anthropic accept as image input.
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
MAX_NAME = 255
_MIME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\Z")
_REFERRER = re.compile(r"\A[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}\Z")


def check_name(name: object) -> str:
    """An artifact name: 1 to 255 characters of text, no control characters (it is shown, never a path)."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise ValidationError(
            f"artifact name {name!r:.80} must be 1 to {MAX_NAME} characters", hint="e.g. --name report.pdf"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValidationError(f"artifact name {name!r:.80} holds a control character", hint="use printable text")
    return name


def check_mime(mime: object) -> str:
    """A media type such as ``text/plain`` or ``image/png``, lowercased (parameters are not kept)."""
    if not isinstance(mime, str) or not _MIME.match(mime):
        raise ValidationError(f"{mime!r:.80} is not a media type", hint="write it as type/subtype, e.g. image/png")
    return mime.lower()


def guess_mime(name: str) -> str:
    """The media type a file name suggests, or ``application/octet-stream``."""
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


def check_referrer(value: object) -> str | None:
    """What a record was made for: None, or ``kind:id`` (``run:<run id>``, ``chat:<message id>``, ``commit:<hash>``)."""
    if value is None:
        return None
    if isinstance(value, str) and _REFERRER.match(value) and ".." not in value:
        return value
    raise ValidationError(
        f"{value!r:.80} is not a referrer",
        hint="write kind:id, e.g. run:<run id> or chat:<message id>",
    )


def _size(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{what} {value!r:.40} is not a byte count (a whole number >= 0)")
    return value


def _digest(value: object, what: str) -> str:
    if not is_hash(value):
        raise ValidationError(f"{what} {value!r:.80} is not a SHA-256 hash", hint="64 lowercase hex digits")
    return value


def _time(value: object, what: str) -> str:
    """A time in cairn's stored form (``format_time``): string order is then time order."""
    if not isinstance(value, str) or format_time(parse_time(value)) != value:
        raise ValidationError(f"{what} {value!r:.40} is not a time as cairn stores it", hint="use cairn.model.now()")
    return value


def _optional_text(value: object, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"{what} must be text, got {type(value).__name__}")
    return value


@attrs.frozen
class ArtifactRef:
    """A pointer at a stored file: its SHA-256, a name to show, its media type and size in bytes."""

    hash: str
    name: str
    mime: str
    size: int

    def __attrs_post_init__(self) -> None:
        _digest(self.hash, "artifact hash")
        check_name(self.name)
        if check_mime(self.mime) != self.mime:
            raise ValidationError(f"media type {self.mime!r} must be lowercase", hint=f"write {self.mime.lower()!r}")
        _size(self.size, "artifact size")

    @property
    def is_image(self) -> bool:
        """True when models that take images can be shown it (PNG, JPEG, GIF or WebP)."""
        return self.mime in IMAGE_TYPES

    def to_record(self) -> dict[str, Any]:
        return {"hash": self.hash, "name": self.name, "mime": self.mime, "size": self.size}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ArtifactRef:
        if not isinstance(record, Mapping) or set(record) != {"hash", "name", "mime", "size"}:
            raise ValidationError(
                f"an artifact reference has exactly hash, name, mime and size; got {record!r:.120}",
                what="artifact reference",
            )
        return cls(record["hash"], record["name"], record["mime"], record["size"])

    def describe(self) -> str:
        """``report.pdf (application/pdf, 12.3 KiB, sha256 3f2a9c4b1d0e)``: how a placeholder names it."""
        return f"{self.name} ({self.mime}, {human_size(self.size)}, sha256 {self.hash[:12]})"


def human_size(n: int) -> str:
    """A byte count for people: ``512 B``, ``12.3 KiB``, ``4.0 MiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _record_id(record: Mapping[str, Any]) -> str:
    return sha256_hex(canonical_json(dict(record), check_keys=False))


@attrs.frozen
class ArtifactRecord:
    """One naming of a stored file: what it is called, when and by whom, what for, and where its bytes are.

    ``inline``: its bytes are kept in the store's metadata beside the record
    (small files) rather than in the artifact store.
    """

    hash: str
    name: str
    mime: str
    size: int
    created: str
    inline: bool = False
    user: str | None = None
    referrer: str | None = None

    def __attrs_post_init__(self) -> None:
        ArtifactRef(self.hash, self.name, self.mime, self.size)  # the same rules
        _time(self.created, "created")
        if not isinstance(self.inline, bool):
            raise ValidationError(f"inline must be true or false, got {self.inline!r:.20}")
        _optional_text(self.user, "user")
        check_referrer(self.referrer)

    @property
    def id(self) -> str:
        """The SHA-256 of the record's canonical JSON: the same record added twice is kept once."""
        return _record_id(self.to_record())

    @property
    def ref(self) -> ArtifactRef:
        return ArtifactRef(self.hash, self.name, self.mime, self.size)

    def to_record(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ArtifactRecord:
        found: ArtifactRecord = _from_record(cls, record, "artifact record")
        return found


@attrs.frozen
class SnapshotRecord:
    """One snapshot: the tree hash, the directory it was taken of, when, what it held, who and what for.

    ``problems`` counts the paths left out (unreadable, vanished, changed, special).
    """

    tree: str
    root: str
    created: str
    files: int
    bytes: int
    problems: int = 0
    user: str | None = None
    referrer: str | None = None

    def __attrs_post_init__(self) -> None:
        _digest(self.tree, "tree hash")
        if not isinstance(self.root, str) or not self.root or "\0" in self.root:
            raise ValidationError(f"snapshot root {self.root!r:.80} must be a directory's path")
        _time(self.created, "created")
        for name in ("files", "bytes", "problems"):
            _size(getattr(self, name), name)
        _optional_text(self.user, "user")
        check_referrer(self.referrer)

    @property
    def id(self) -> str:
        """The SHA-256 of the record's canonical JSON."""
        return _record_id(self.to_record())

    def to_record(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> SnapshotRecord:
        found: SnapshotRecord = _from_record(cls, record, "snapshot record")
        return found


def _from_record(cls: Any, record: Mapping[str, Any], what: str) -> Any:
    if not isinstance(record, Mapping):
        raise ValidationError(f"a {what} must be a JSON object, got {type(record).__name__}")
    known = {a.name for a in attrs.fields(cls)}
    unknown = sorted(set(record) - known)
    if unknown:
        raise ValidationError(f"a {what} has unknown fields: {', '.join(map(str, unknown))[:200]}")
    try:
        return cls(**record)
    except TypeError as exc:  # a required field missing
        raise ValidationError(f"a {what} is incomplete: {exc}") from None
