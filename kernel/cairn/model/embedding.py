"""Memory in the data model: who embedded a vector, and the documents that search and recall read.

- ``EmbedderIdentity``: the provider, model and dimension count that made a
  vector. Vectors of two identities are not comparable, so everything that
  keeps vectors keys them by it.
- ``Document``: one searchable text: a context item, a run summary, a chat
  message, a memory fact or episode, or an entry of a user's collection. It
  is keyed by ``(collection, id)``; its ``text_hash`` (SHA-256 of the UTF-8
  text) is what its vector is keyed by, so the same text is embedded once
  per embedder however many documents hold it.
- Vectors travel as ``bytes``: little-endian float32, ``4 * dimensions``
  long (``pack_vector`` / ``unpack_vector``), so the storage contract needs
  no NumPy.
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from cairn.errors import ValidationError
from cairn.model.canonical import canonical_json, format_time, parse_time

__all__ = [
    "BUILTIN_COLLECTIONS",
    "MAX_DIMENSIONS",
    "MAX_TEXT",
    "Document",
    "EmbedderIdentity",
    "check_collection",
    "check_vector_bytes",
    "pack_vector",
    "text_hash",
    "unpack_vector",
]

#: Largest vector size an identity may declare (the biggest embedding models use 4096 or 8192).
MAX_DIMENSIONS = 65_536
#: Longest document text, in characters (a document is a passage, not a book: chunk longer texts).
MAX_TEXT = 1_000_000
#: The collections cairn fills itself, by ``cairn search --kind``; user collections cannot take these names.
BUILTIN_COLLECTIONS = {"context": "@context", "runs": "@runs", "chat": "@chat", "memory": "@memory"}
_COLLECTION = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_ID_MAX = 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _identity_text(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            f"must be a non-empty string, got {value!r}", what="embedder identity", field=attribute.name
        )


def _identity_dimensions(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DIMENSIONS:
        raise ValidationError(
            f"must be a whole number from 1 to {MAX_DIMENSIONS}, got {value!r}",
            what="embedder identity",
            field=attribute.name,
        )


@attrs.frozen
class EmbedderIdentity:
    """Which embedder made an index's vectors: vectors of two identities are not comparable."""

    #: The embedding provider's registered name (``local``, ``openai``).
    provider: str = attrs.field(validator=_identity_text)
    #: The model, as the provider names it (``hashing``, ``text-embedding-3-small``).
    model: str = attrs.field(validator=_identity_text)
    #: The length of every vector.
    dimensions: int = attrs.field(validator=_identity_dimensions)

    def describe(self) -> str:
        """``local/hashing (512 dimensions)``."""
        return f"{self.provider}/{self.model} ({self.dimensions} dimensions)"

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model, "dimensions": self.dimensions}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmbedderIdentity:
        try:
            return cls(data["provider"], data["model"], data["dimensions"])
        except (KeyError, TypeError) as exc:
            raise ValidationError(f"incomplete embedder identity {dict(data)!r}", what="embedder identity") from exc

    def slug(self) -> str:
        """A file-name-safe name for this identity (a readable prefix and a short hash of the whole)."""
        readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{self.provider}-{self.model}-{self.dimensions}")[:80]
        digest = hashlib.sha256(canonical_json(self.to_dict())).hexdigest()[:12]
        return f"{readable}-{digest}"


def text_hash(text: str) -> str:
    """The key of a text's vector: SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_collection(name: object, *, builtin: bool = True) -> str:
    """``name`` if it names a collection: a user's (letters, digits, ``_ . -``, up to 64) or,
    when ``builtin``, one of cairn's own (``@context`` ...)."""
    if isinstance(name, str) and (_COLLECTION.match(name) or (builtin and name in BUILTIN_COLLECTIONS.values())):
        return name
    raise ValidationError(
        f"{name!r} is not a collection name",
        what="collection",
        hint="use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit",
    )


def _check_id(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > _ID_MAX or any(ord(c) < 32 for c in value):
        raise ValidationError(
            f"document id {value!r:.60} must be 1 to {_ID_MAX} characters without control characters",
            what="document",
        )
    return value


def pack_vector(values: Sequence[float]) -> bytes:
    """A vector as stored: little-endian float32."""
    return struct.pack(f"<{len(values)}f", *values)


def unpack_vector(data: bytes) -> list[float]:
    """The floats of a stored vector."""
    return list(struct.unpack(f"<{len(data) // 4}f", data))


def check_vector_bytes(identity: EmbedderIdentity, vectors: Mapping[str, bytes]) -> dict[str, bytes]:
    """The vectors as ``{text hash: bytes}`` after checking each key is a SHA-256 and each value is
    ``identity.dimensions`` finite float32 components, not all zero; ``ValidationError`` names the first bad one."""
    out: dict[str, bytes] = {}
    width = 4 * identity.dimensions
    for key, value in vectors.items():
        if not isinstance(key, str) or not _SHA256.fullmatch(key):
            raise ValidationError(f"vector key {key!r:.70} is not a SHA-256 text hash", what="vectors")
        data = bytes(value)
        if len(data) != width:
            raise ValidationError(
                f"the vector of {key[:12]} holds {len(data)} bytes; {identity.describe()} needs {width} "
                f"({identity.dimensions} float32 components)",
                what="vectors",
                hint="embed with the index's embedder, or rebuild with `cairn memory reindex`",
            )
        out[key] = data
    if out:
        _check_finite(identity, out)
    return out


def _check_finite(identity: EmbedderIdentity, vectors: Mapping[str, bytes]) -> None:
    try:
        import numpy as np
    except ImportError:  # numpy comes with every embedder; without it (the kernel alone) this is the slow path
        for key, data in vectors.items():
            floats = unpack_vector(data)
            if not all(map(math.isfinite, floats)) or not any(floats):
                _bad(key)
        return
    matrix = np.frombuffer(b"".join(vectors.values()), dtype="<f4").reshape(len(vectors), identity.dimensions)
    finite = np.isfinite(matrix).all(axis=1) & (matrix != 0).any(axis=1)
    if not finite.all():
        _bad(list(vectors)[int(np.argmin(finite))])


def _bad(key: str) -> None:
    raise ValidationError(
        f"the vector of {key[:12]} holds NaN or infinity, or is all zeros",
        what="vectors",
        hint="check the embedder's output; nothing was stored",
    )


def _text(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("a document's text must hold something besides whitespace", what="document")
    if len(value) > MAX_TEXT:
        raise ValidationError(
            f"the text is {len(value)} characters, over the limit of {MAX_TEXT}",
            what="document",
            hint="split it into passages",
        )


def _time(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or format_time(parse_time(value)) != value:
        raise ValidationError(f"{attribute.name} must be a time as cairn stores them, got {value!r}", what="document")


@attrs.frozen
class Document:
    """One searchable text, keyed by ``(collection, id)``.

    ``branch`` is the context branch a context item was found on (None for
    everything else); ``metadata`` is small JSON shown with a result.
    """

    collection: str = attrs.field(converter=check_collection)
    id: str = attrs.field(converter=_check_id)
    text: str = attrs.field(validator=_text)
    created: str = attrs.field(validator=_time)
    branch: str | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    text_hash: str = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        canonical_json(dict(self.metadata))  # refuses what cannot be stored as JSON
        object.__setattr__(self, "text_hash", text_hash(self.text))

    @property
    def key(self) -> tuple[str, str]:
        return (self.collection, self.id)

    def to_record(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "id": self.id,
            "text": self.text,
            "created": self.created,
            "branch": self.branch,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> Document:
        return cls(
            data["collection"],
            data["id"],
            data["text"],
            data["created"],
            data.get("branch"),
            data.get("metadata") or {},
        )
