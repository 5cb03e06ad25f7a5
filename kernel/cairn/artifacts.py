"""The artifact-store contract: files kept by the SHA-256 of their bytes, streamed in and out.

Agents produce files (reports, images, patches, datasets) and snapshots
keep working trees; both live in an artifact store, a content-addressed
set of objects. Stores are plugins (``cairn_register_artifact_stores``),
chosen with ``[artifacts] store`` and configured in ``[artifacts.<name>]``:
``local`` (cairn-artifacts) keeps a sharded directory, ``s3`` (cairn-s3) a bucket.

Every operation streams, so a multi-gigabyte file never sits in memory:

- ``put(source)``: a path or a readable binary stream in, its ``ArtifactInfo``
  (hash, size, created) out. Putting the same bytes twice stores them once.
  Durable when it returns; an interrupted put leaves nothing visible.
- ``open(hash)``: a readable stream that verifies the hash as it is read and
  raises ``IntegrityError`` naming the object at the end if the bytes do not
  match (small objects are verified before they are handed out).
- ``has``, ``stat``, ``list`` (in hash order, lazily), ``verify``, ``delete``.
- ``batch()``: a context in which many puts share one durability wait.

A hash from outside is checked (64 lowercase hex digits) before it reaches a
path, a key or a URL. Errors are ``cairn.errors`` types: ``NotFoundError``
for a missing object, ``IntegrityError`` for bytes that do not match their
name, ``StorageError`` for everything the backend could not do.

This module is light: it imports nothing heavy, so the plugins' hook modules
and ``cairn --help`` can import it.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import attrs

from cairn.errors import IntegrityError, NotFoundError, ValidationError
from cairn.streams import Readable

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.plugins import Plugins

__all__ = [
    "ArtifactInfo",
    "ArtifactStore",
    "ReadStream",
    "Readable",
    "Source",
    "VERIFY_UP_FRONT_BYTES",
    "VerifyingReader",
    "artifact_not_found",
    "check_digest",
    "check_prefix",
    "corrupt",
    "hash_stream",
    "open_artifact_store",
    "open_source",
]


#: A path to a file, or a readable binary stream.
Source = Union[str, "os.PathLike[str]", Readable]
#: What ``ArtifactStore.open`` returns: a binary stream with ``read``, ``readinto`` and ``close``.
ReadStream = io.RawIOBase | io.BufferedIOBase

#: Objects up to this size are read whole and verified before ``open`` hands them out.
VERIFY_UP_FRONT_BYTES = 1 << 20

_DIGEST = re.compile(r"\A[0-9a-f]{64}\Z")
_PREFIX = re.compile(r"\A[0-9a-f]{0,64}\Z")


def check_digest(value: object, *, what: str = "artifact hash") -> str:
    """``value`` if it is a full SHA-256 hex digest (64 lowercase hex digits); else ``ValidationError``.

    Every store calls this before a hash becomes part of a path, a key or a URL.
    """
    if isinstance(value, str) and _DIGEST.match(value):
        return value
    shown = repr(value) if not isinstance(value, str) else repr(value[:80])
    raise ValidationError(
        f"{shown} is not a SHA-256 hash",
        what=what,
        hint="an artifact is named by 64 lowercase hex digits, as `cairn artifact put` prints",
    )


def check_prefix(value: object) -> str:
    """``value`` if it is 0 to 64 lowercase hex digits (a hash prefix for ``list``); else ``ValidationError``."""
    if isinstance(value, str) and _PREFIX.match(value):
        return value
    raise ValidationError(f"{value!r:.80} is not a hash prefix", hint="use lowercase hex digits (0-9, a-f)")


def artifact_not_found(digest: str, where: str) -> NotFoundError:
    return NotFoundError(
        "artifact",
        digest,
        hint=f"nothing by that hash in {where}; `cairn artifact ls --all` lists what is there",
    )


def corrupt(digest: str, where: str, detail: str) -> IntegrityError:
    """The error every store raises for an object whose bytes do not match its name."""
    return IntegrityError(
        f"artifact {digest} in {where} is corrupt: {detail}",
        hint="it was changed behind cairn's back; put the original file again to repair it, "
        "or delete the object (`cairn artifact verify` checks them all)",
    )


@attrs.frozen
class ArtifactInfo:
    """One stored object: its SHA-256 (hex), its size in bytes and when it was stored (ISO-8601 UTC), if known."""

    hash: str
    size: int
    created: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {"hash": self.hash, "size": self.size, "created": self.created}


class VerifyingReader(io.RawIOBase):
    """A read-only stream over ``raw`` that hashes what it hands out and checks it at the end.

    Reading past ``size`` bytes, or reaching the end with a different size or
    hash, raises ``IntegrityError`` naming the object. A consumer that stops
    early has not verified anything: copy to a temporary file and keep it only
    once the read reached the end (``copy_to`` into ``cairn.files.atomic_write`` does).
    """

    def __init__(self, raw: Readable, digest: str, size: int, *, where: str) -> None:
        super().__init__()
        self._raw = raw
        self._readinto = getattr(raw, "readinto", None)
        self._expected = digest
        self._size = size
        self._where = where
        self._hash = hashlib.sha256()
        self._seen = 0
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._checked or not len(view):
            return 0
        if self._readinto is not None:
            count = self._readinto(view) or 0
        else:
            data = self._raw.read(len(view)) or b""
            count = len(data)
            view[:count] = data
        if count:
            self._hash.update(view[:count])
            self._seen += count
            if self._seen > self._size:
                raise corrupt(self._expected, self._where, f"it holds more than the {self._size} bytes recorded")
            return count
        self._checked = True
        if self._seen != self._size:
            raise corrupt(self._expected, self._where, f"it holds {self._seen} bytes, not {self._size}")
        actual = self._hash.hexdigest()
        if actual != self._expected:
            raise corrupt(self._expected, self._where, f"its bytes hash to {actual}")
        return 0

    def close(self) -> None:
        if not self.closed:
            try:
                close = getattr(self._raw, "close", None)
                if close is not None:
                    close()
            finally:
                super().close()


def hash_stream(stream: Readable) -> tuple[str, int]:
    """(SHA-256 hex, size) of everything left in ``stream``, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    readinto = getattr(stream, "readinto", None)
    while True:
        if readinto is not None:
            count = readinto(view) or 0
            chunk = view[:count]
        else:
            data = stream.read(len(view)) or b""
            count = len(data)
            chunk = memoryview(data)
        if not count:
            return digest.hexdigest(), size
        digest.update(chunk)
        size += count


@contextlib.contextmanager
def open_source(source: Source) -> Iterator[Readable]:
    """A readable binary stream for a put: a path is opened (and closed after), a stream is used as it is."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            stream = open(path, "rb", buffering=0)
        except FileNotFoundError:
            raise NotFoundError("file", str(path), hint="check the path") from None
        except IsADirectoryError:
            raise ValidationError(
                f"{path} is a directory", hint="put files one by one, or keep a directory with `cairn snapshot create`"
            ) from None
        except PermissionError:
            raise ValidationError(f"cannot read {path}: permission denied", hint="check its mode") from None
        with stream:
            yield stream
        return
    if not hasattr(source, "read"):
        raise ValidationError(f"cannot put {type(source).__name__}: give a path or a readable binary stream")
    yield source


class ArtifactStore(abc.ABC):
    """A content-addressed store of files. Subclass it in a plugin and return it from the factory.

    Implement ``put``, ``open``, ``stat``, ``list`` and ``delete``; ``has``,
    ``verify``, ``batch`` and ``close`` have working defaults. Set
    ``location`` to say where objects live (a path, ``s3://bucket/prefix``):
    it appears in errors, and a snapshot's stat cache is kept per location.
    The conformance suite ``cairn.testing.artifact_suite`` checks all of it.
    """

    #: The registered name (``local``, ``s3``).
    name: str = "artifacts"
    #: Where the objects live, for people and for cache keys.
    location: str = "?"

    @abc.abstractmethod
    def put(self, source: Source) -> ArtifactInfo:
        """Store the bytes of ``source`` (a path or a readable binary stream) and return their info.

        Streams in bounded memory. Durable when it returns. If it raises
        (a read error, a full disk, an interrupted process), nothing new is
        visible. Putting bytes already stored keeps one copy.
        """

    @abc.abstractmethod
    def open(self, digest: str) -> ReadStream:
        """A readable stream of the object's bytes that raises ``IntegrityError`` if they do not match.

        ``NotFoundError`` if there is no such object. Close it when done.
        """

    @abc.abstractmethod
    def stat(self, digest: str) -> ArtifactInfo:
        """Size and creation time of the object; ``NotFoundError`` if absent. Does not read the bytes."""

    @abc.abstractmethod
    def list(self, *, prefix: str = "", after: str | None = None) -> Iterator[ArtifactInfo]:
        """Every object whose hash starts with ``prefix``, in ascending hash order, fetched lazily.

        ``after`` resumes a listing after that hash (exclusive), for paging.
        """

    @abc.abstractmethod
    def delete(self, digest: str) -> bool:
        """Remove the object (for gc); True if it was there. Readers that already opened it may finish."""

    def has(self, digest: str) -> bool:
        """True if the object is stored (it is not read)."""
        try:
            self.stat(digest)
        except NotFoundError:
            return False
        return True

    def verify(self, digest: str) -> ArtifactInfo:
        """Read the whole object and check it against its hash: its info, or ``IntegrityError``."""
        info = self.stat(digest)
        with self.open(digest) as stream:
            buffer = bytearray(1 << 20)
            while stream.readinto(buffer):
                pass
        return info

    def copy_to(self, digest: str, fd: int) -> int:
        """Write the object's bytes into the open file ``fd`` and return their count, verified.

        ``IntegrityError`` (naming the object) if they do not match the hash:
        the caller discards what was written, as ``cairn.files.atomic_write``
        does with its temporary file. ``fd`` is open for reading and writing.
        The default streams through ``open``; a store on a local disk can let
        the kernel copy instead.
        """
        from cairn.durable import copy_hashing

        with self.open(digest) as stream:
            _, size = copy_hashing(stream, fd, hashing=False, write_behind=True)
        return size

    def read_bytes(self, digest: str) -> bytes:
        """The whole object as bytes, verified: for small objects (trees, documents) only."""
        with self.open(digest) as stream:
            return stream.read() or b""

    @contextlib.contextmanager
    def batch(self) -> Iterator[ArtifactStore]:
        """A context for many puts: objects are durable and visible when it exits, at the latest.

        Stores where one durability wait per object is costly (a local disk)
        override this to share it; the default simply puts one by one. If the
        block raises, objects it put may or may not be kept; none is torn.
        """
        yield self

    def close(self) -> None:  # noqa: B027 - optional: most stores hold nothing to release
        """Release connections and files. The default has nothing to release."""

    def __enter__(self) -> ArtifactStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_artifact_store(
    *, config: Config | None = None, plugins: Plugins | None = None, name: str | None = None
) -> ArtifactStore:
    """The configured artifact store (``[artifacts] store``, or ``name``), built by its plugin."""
    from cairn.config import ArtifactsSettings, load_config
    from cairn.plugins import load_plugins

    if config is None:
        config = load_config()
    if plugins is None:
        plugins = load_plugins(disabled=config.cairn.disabled_plugins)
    chosen = name or config.settings("artifacts", ArtifactsSettings).store
    if chosen not in plugins.artifact_stores:
        known = ", ".join(plugins.artifact_stores.names()) or "none installed"
        raise NotFoundError(
            "artifact store",
            chosen,
            hint=f"known: {known}; `pip install cairn-artifacts` provides 'local', `pip install cairn-s3` provides 's3', "
            'chosen with [artifacts] store = "<name>" in cairn.toml',
        )
    store = plugins.create("artifact_stores", chosen, config)
    if not isinstance(store, ArtifactStore):
        from cairn.errors import PluginError

        raise PluginError(f"artifact store {chosen!r} is a {type(store).__name__}, not a cairn.artifacts.ArtifactStore")
    return store
