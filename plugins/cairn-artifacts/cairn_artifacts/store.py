"""The ``local`` artifact store: one file per object in a sharded directory.

Layout under the root::

    objects/ab/ab12...ef    one read-only file per object, named by its SHA-256,
                            in 256 shard directories (the first two hex digits)
    tmp/.tmp-<random>       objects being written; renamed into objects/ once whole

A put streams into a new temporary file (random name, ``O_EXCL``), hashing
as it goes; the file is fsynced, renamed to its hash and the shard directory
fsynced, so an object is either whole and durable or absent. Several
processes may put at once, the same object or different ones: a rename over
an identical object changes nothing a reader can see. An interrupted put
leaves at most a temporary file, never an object; temporary files untouched
for an hour are swept when a store is opened.

Every read verifies the hash: objects up to ``VERIFY_UP_FRONT_BYTES`` before
they are handed out, larger ones as they are streamed (``IntegrityError`` at
the end, naming the object).
"""

from __future__ import annotations

import datetime as _dt
import errno
import io
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cairn.artifacts import (
    VERIFY_UP_FRONT_BYTES,
    ArtifactInfo,
    ArtifactStore,
    ReadStream,
    Source,
    VerifyingReader,
    artifact_not_found,
    check_digest,
    check_prefix,
    corrupt,
    open_source,
)
from cairn.durable import (
    TEMP_PREFIX,
    FlushPool,
    copy_file_hashing,
    copy_hashing,
    fsync_directory,
    open_temporary,
    storage_error,
)
from cairn.errors import NotFoundError, StorageError, ValidationError

__all__ = ["LocalArtifactStore", "open_in_directory"]

#: A temporary file nobody has written to for this long belongs to a dead writer.
STALE_TEMPORARY_S = 3600
_HEX = "0123456789abcdef"
_SHARDS = [a + b for a in _HEX for b in _HEX]
_OBJECT_MODE = 0o444


def _iso(seconds: float) -> str:
    moment = _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LocalArtifactStore(ArtifactStore):
    """Objects as read-only files under ``root/objects``; see the module docstring for the guarantees."""

    name = "local"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.location = str(self.root)
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"
        self._batch = threading.local()
        try:
            fresh = not self.objects.is_dir()
            self.tmp.mkdir(parents=True, exist_ok=True)
            self.objects.mkdir(exist_ok=True)
            if fresh:
                for shard in _SHARDS:
                    (self.objects / shard).mkdir(exist_ok=True)
                fsync_directory(self.objects)
                fsync_directory(self.root)
        except OSError as exc:
            raise storage_error(exc, f"the artifact store at {self.root}") from None
        self._sweep_temporaries()

    def __repr__(self) -> str:
        return f"LocalArtifactStore({str(self.root)!r})"

    # -- paths ------------------------------------------------------------------------------

    def _path(self, digest: str) -> Path:
        digest = check_digest(digest)  # before it becomes a path
        return self.objects / digest[:2] / digest

    def _sweep_temporaries(self) -> None:
        cutoff = time.time() - STALE_TEMPORARY_S
        try:
            entries = list(os.scandir(self.tmp))
        except OSError:
            return
        for entry in entries:
            if not entry.name.startswith(TEMP_PREFIX):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
            except OSError:
                pass  # another process swept it first, or it is not ours to remove

    def _info(self, digest: str, path: Path) -> ArtifactInfo:
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            raise artifact_not_found(digest, self.location) from None
        except OSError as exc:
            raise StorageError(f"cannot stat artifact {digest} in {self.location}: {exc.strerror}") from None
        return ArtifactInfo(digest, st.st_size, _iso(st.st_mtime))

    # -- writing ----------------------------------------------------------------------------

    def put(self, source: Source) -> ArtifactInfo:
        with open_source(source) as stream:
            try:
                fd, temporary = open_temporary(self.tmp, mode=_OBJECT_MODE)
            except OSError as exc:
                raise storage_error(exc, f"an artifact in {self.location}") from None
            try:
                # Write-behind flushing only when each put is fsynced on its own: a batch flushes together.
                solo = getattr(self._batch, "pool", None) is None
                digest, size = copy_hashing(stream, fd, write_behind=solo)
                assert digest is not None
            except BaseException as exc:
                os.close(fd)
                _unlink_quietly(temporary)
                if isinstance(exc, OSError):
                    raise storage_error(exc, f"an artifact in {self.location}") from None
                raise
        return self._publish(fd, temporary, digest, size)

    def _publish(self, fd: int, temporary: str, digest: str, size: int) -> ArtifactInfo:
        """Make the whole temporary file the object ``digest``, durably (or leave the identical one there)."""
        target = self._path(digest)
        pool: FlushPool | None = getattr(self._batch, "pool", None)
        pending: set[str] | None = getattr(self._batch, "pending", None)
        try:
            existing = os.stat(target, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        except OSError as exc:
            os.close(fd)
            _unlink_quietly(temporary)
            raise storage_error(exc, f"artifact {digest}") from None
        # The same bytes are already there (or on their way there in this batch): keep one copy.
        # A size that differs means the stored copy is damaged, and the rename below repairs it.
        if (existing is not None and existing.st_size == size) or (pending is not None and digest in pending):
            os.close(fd)
            _unlink_quietly(temporary)
            if existing is not None:
                return ArtifactInfo(digest, size, _iso(existing.st_mtime))
            return ArtifactInfo(digest, size, _iso(time.time()))
        if pool is not None and pending is not None:
            pending.add(digest)
            self._ensure_shard(target.parent)
            pool.submit(fd, temporary, str(target))
            return ArtifactInfo(digest, size, _iso(time.time()))
        try:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self._ensure_shard(target.parent)
            os.replace(temporary, target)
            fsync_directory(target.parent)
        except OSError as exc:
            _unlink_quietly(temporary)
            raise storage_error(exc, f"artifact {digest}") from None
        return self._info(digest, target)

    def _ensure_shard(self, shard: Path) -> None:
        # Shards are made when the store is created; a missing one was removed by hand: make it again.
        if not shard.is_dir():
            try:
                shard.mkdir(exist_ok=True)
                fsync_directory(self.objects)
            except OSError as exc:
                raise storage_error(exc, f"the shard directory {shard}") from None

    @contextmanager
    def batch(self) -> Iterator[ArtifactStore]:
        """Puts in the block are fsynced together by a few threads, so their disk waits overlap."""
        if getattr(self._batch, "pool", None) is not None:
            yield self  # already in a batch on this thread: join it
            return
        self._batch.pending = set()
        try:
            with FlushPool() as pool:
                self._batch.pool = pool
                try:
                    yield self
                finally:
                    self._batch.pool = None
        finally:
            self._batch.pending = None

    def delete(self, digest: str) -> bool:
        target = self._path(digest)
        try:
            os.unlink(target)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise storage_error(exc, f"artifact {digest}") from None
        fsync_directory(target.parent)
        return True

    # -- reading ----------------------------------------------------------------------------

    def open(self, digest: str) -> ReadStream:
        target = self._path(digest)
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(target, flags)
        except FileNotFoundError:
            raise artifact_not_found(digest, self.location) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise corrupt(digest, self.location, "it was replaced by a symbolic link") from None
            raise StorageError(f"cannot open artifact {digest} in {self.location}: {exc.strerror}") from None
        raw = os.fdopen(fd, "rb", buffering=0)
        size = os.fstat(fd).st_size
        reader = VerifyingReader(raw, digest, size, where=self.location)
        if size > VERIFY_UP_FRONT_BYTES:
            return reader
        with reader:
            data = reader.read()  # verified at its end, before anyone sees a byte
        return io.BytesIO(data)

    def copy_to(self, digest: str, fd: int) -> int:
        """The kernel copies a large object (``copy_file_range``) while its bytes are hashed as they land."""
        target = self._path(digest)
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
        try:
            source = os.open(target, flags)
        except OSError:
            return super().copy_to(digest, fd)  # the stream path says what is wrong, in the usual words
        with os.fdopen(source, "rb", buffering=0) as stream:
            size = os.fstat(source).st_size
            copied = copy_file_hashing(stream, fd, write_behind=True)
        if copied is None:
            return super().copy_to(digest, fd)
        actual, written = copied
        if written != size:
            raise corrupt(digest, self.location, f"it holds {written} bytes, not {size}")
        if actual != digest:
            raise corrupt(digest, self.location, f"its bytes hash to {actual}")
        return written

    def stat(self, digest: str) -> ArtifactInfo:
        return self._info(digest, self._path(digest))

    def has(self, digest: str) -> bool:
        return os.path.isfile(self._path(digest))

    def list(self, *, prefix: str = "", after: str | None = None) -> Iterator[ArtifactInfo]:
        prefix = check_prefix(prefix)
        after = check_prefix(after) if after is not None else None
        for shard in _SHARDS:
            if not (shard.startswith(prefix[:2]) and (after is None or shard >= after[:2])):
                continue
            try:
                names = sorted(os.listdir(self.objects / shard))
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StorageError(f"cannot list {self.objects / shard}: {exc.strerror}") from None
            for name in names:
                if len(name) != 64 or not name.startswith(prefix) or (after is not None and name <= after):
                    continue
                try:
                    yield self._info(check_digest(name), self.objects / shard / name)
                except (NotFoundError, ValidationError):
                    continue  # deleted while we listed, or a stray file that is not an object


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def open_in_directory(directory: Path) -> LocalArtifactStore:
    """A local store rooted in ``directory`` (the conformance suite's opener; importable by spawned processes)."""
    return LocalArtifactStore(directory)
