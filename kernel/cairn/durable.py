"""Durable, atomic file writes for stores: a temporary file, fsynced, renamed, the directory fsynced.

Readers never see a half-written file: the content lands under a random
temporary name created with ``O_EXCL`` and takes its real name only once it
is complete and on disk. A failure (an exception, a full disk) removes the
temporary file, so nothing half-written is left behind; a crash may leave a
temporary file, never a torn target.

``FlushPool`` batches the expensive part. One fsync waits for the disk; many
fsyncs issued together from a few threads are committed together by the
filesystem's journal, so a batch of ten thousand small files costs a few
journal commits instead of ten thousand.

``copy_hashing`` streams and hashes in bounded memory, overlapping hashing
with writing for long streams; ``copy_file_hashing`` lets the kernel copy a
long file and hashes what landed. Errors become ``cairn.errors.StorageError``
naming what was being written; a full disk (``ENOSPC``, ``EDQUOT``,
``EFBIG``) says so. A file the user asked for (``cairn artifact get -o``) is
written with ``cairn.files.atomic_write``, which these pieces feed.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import queue
import secrets
import stat as _stat
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from cairn.errors import StorageError
from cairn.streams import Readable

__all__ = [
    "CHUNK_SIZE",
    "FlushPool",
    "TEMP_PREFIX",
    "copy_file_hashing",
    "copy_hashing",
    "fsync_directory",
    "open_temporary",
    "storage_error",
]

#: Bytes per read and write when streaming: large enough that the loop costs nothing, small enough to bound memory.
CHUNK_SIZE = 1 << 20
#: Temporary files start with this, so a sweep knows what it may remove.
TEMP_PREFIX = ".tmp-"

_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def storage_error(exc: OSError, what: str) -> StorageError:
    """A ``StorageError`` that says what failed while writing or reading ``what``, and what to do."""
    code = exc.errno
    if code in _FULL:
        reason = "the file size limit was reached" if code == errno.EFBIG else "no space left on the device"
        return StorageError(
            f"{reason} while writing {what}; nothing was kept",
            hint="free some space (or raise the quota or file size limit) and try again",
        )
    if code in (errno.EACCES, errno.EPERM):
        return StorageError(
            f"permission denied: {what} ({exc.filename or exc.strerror})", hint="check its owner and mode"
        )
    if code == errno.EROFS:
        return StorageError(f"{what} is on a read-only filesystem", hint="choose a writable location")
    return StorageError(f"cannot write {what}: {exc.strerror or exc}")


def open_temporary(directory: Path, *, mode: int = 0o600, dir_fd: int | None = None) -> tuple[int, str]:
    """Create a new temporary file with a random name in ``directory`` (``O_EXCL``); return (fd, path).

    With ``dir_fd`` the name is created relative to that open directory and
    the returned path is the bare name.
    """
    # O_RDWR: a copy made in the kernel is hashed by reading the temporary file back.
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(16):
        name = TEMP_PREFIX + secrets.token_hex(12)
        target = name if dir_fd is not None else str(directory / name)
        try:
            fd = os.open(target, flags, mode, dir_fd=dir_fd) if dir_fd is not None else os.open(target, flags, mode)
        except FileExistsError:
            continue  # 96 random bits collided: astronomically unlikely, but never overwrite
        return fd, target
    raise StorageError(f"could not create a temporary file in {directory}")


def fsync_directory(directory: Path | str | None = None, *, dir_fd: int | None = None) -> None:
    """Make a rename or an unlink in ``directory`` durable (a no-op where directories cannot be opened)."""
    if dir_fd is not None:
        os.fsync(dir_fd)
        return
    try:
        fd = os.open(str(directory), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # Windows: directories cannot be opened; NTFS journals the rename itself
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        written = os.write(fd, view)
        view = view[written:]


_buffers = threading.local()

#: Streams longer than this are copied by a pipeline: reading and hashing in the caller's thread,
#: writing in a second thread, and flushing to disk behind the writes in a third.
PIPELINE_AFTER = 4 * CHUNK_SIZE
_PIPE_CHUNK = 2 * CHUNK_SIZE
_PIPE_BUFFERS = 3
#: With write-behind, written bytes are flushed (fdatasync) every this many, so the final fsync is short.
WRITE_BEHIND_BYTES = 32 * CHUNK_SIZE


def _chunk_buffer() -> memoryview:
    # One buffer per thread, reused: allocating a zeroed megabyte per small file would cost more than the file.
    view: memoryview | None = getattr(_buffers, "view", None)
    if view is None:
        view = _buffers.view = memoryview(bytearray(CHUNK_SIZE))
    return view


def _reader(source: Readable) -> Callable[[memoryview], int]:
    readinto: Callable[[Any], int | None] | None = getattr(source, "readinto", None)
    if readinto is not None:
        return lambda view: readinto(view) or 0

    def read(view: memoryview) -> int:
        data = source.read(len(view)) or b""
        view[: len(data)] = data
        return len(data)

    return read


def copy_hashing(
    source: Readable, fd: int, *, hashing: bool = True, write_behind: bool = False
) -> tuple[str | None, int]:
    """Copy ``source`` to ``fd``, hashing as it goes: (SHA-256 hex or None without ``hashing``, size).

    Memory stays at a few chunks whatever the size. A long stream is
    pipelined so that hashing and writing overlap; with ``write_behind`` the
    written bytes are also flushed to disk as the copy goes, so the caller's
    final fsync has little left to wait for.
    """
    if hashing:
        copied = copy_file_hashing(source, fd, write_behind=write_behind)
        if copied is not None:
            return copied
    digest = hashlib.sha256() if hashing else None
    read = _reader(source)
    view = _chunk_buffer()
    size = 0
    while size < PIPELINE_AFTER:  # most files end here, with no thread started
        count = read(view)
        if not count:
            return (digest.hexdigest() if digest else None), size
        chunk = view[:count]
        if digest is not None:
            digest.update(chunk)
        _write_all(fd, chunk)
        size += count
    size += _copy_pipelined(read, fd, digest, write_behind)
    return (digest.hexdigest() if digest else None), size


def _copy_pipelined(read: Callable[[memoryview], int], fd: int, digest: Any, write_behind: bool) -> int:
    free: queue.Queue[memoryview | None] = queue.Queue()
    for _ in range(_PIPE_BUFFERS):
        free.put(memoryview(bytearray(_PIPE_CHUNK)))
    filled: queue.Queue[tuple[memoryview, int] | None] = queue.Queue()
    failures: list[BaseException] = []
    flusher = _WriteBehind(fd) if write_behind else None

    def write() -> None:
        try:
            while (item := filled.get()) is not None:
                buffer, count = item
                _write_all(fd, buffer[:count])
                if flusher is not None:
                    flusher.wrote(count)
                free.put(buffer)
        except BaseException as exc:  # noqa: B036 - handed to the reading thread, which raises it
            failures.append(exc)
            free.put(None)  # wake the reader

    writer = threading.Thread(target=write, name="cairn-write", daemon=True)
    writer.start()
    size = 0
    try:
        while True:
            buffer = free.get()
            if buffer is None:
                break  # the writer failed
            count = read(buffer)
            if not count:
                break
            if digest is not None:
                digest.update(buffer[:count])  # overlaps the write of the previous chunk
            filled.put((buffer, count))
            size += count
    finally:
        filled.put(None)
        writer.join()
        if flusher is not None:
            failures.extend(flusher.stop())
    if failures:
        raise failures[0]
    return size


_KERNEL_CHUNK = 16 * CHUNK_SIZE
_NO_KERNEL_COPY = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF, errno.ETXTBSY}


def copy_file_hashing(source: object, fd: int, *, write_behind: bool = False) -> tuple[str, int] | None:
    """Copy a long regular file into ``fd`` inside the kernel, hashing what was written; None if it cannot.

    ``source`` must be a file object with ``fileno()`` on a regular file of at
    least ``PIPELINE_AFTER`` bytes (from its current position), and ``fd`` a
    file opened for reading and writing (``open_temporary`` makes them so).
    The bytes move with ``copy_file_range`` (no trip through Python), and a
    second thread hashes them by reading ``fd`` back as they land, so the
    hash is of exactly what was written. Returns None, having written
    nothing, where the kernel cannot copy (another platform, another
    filesystem, a pipe): the caller streams instead.
    """
    copy_range = getattr(os, "copy_file_range", None)
    fileno = getattr(source, "fileno", None)
    if copy_range is None or fileno is None or not hasattr(os, "preadv"):
        return None  # not Linux, or not a file
    try:
        src = fileno()
        st = os.fstat(src)
        if not _stat.S_ISREG(st.st_mode) or st.st_size < PIPELINE_AFTER:
            return None  # short files are cheaper to stream than to set up threads for
        start_src = os.lseek(src, 0, os.SEEK_CUR)
        start = os.lseek(fd, 0, os.SEEK_CUR)
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    if st.st_size - start_src < PIPELINE_AFTER:
        return None
    try:
        first = copy_range(src, fd, _KERNEL_CHUNK)
    except OSError as exc:
        if exc.errno in _NO_KERNEL_COPY:
            return None
        raise
    hasher = _ReadBackHasher(fd, start)
    flusher = _WriteBehind(fd) if write_behind else None
    size = first
    try:
        hasher.landed(first)
        if flusher is not None:
            flusher.wrote(first)
        while first:
            count = copy_range(src, fd, _KERNEL_CHUNK)
            if not count:
                break
            size += count
            hasher.landed(count)
            if flusher is not None:
                flusher.wrote(count)
    finally:
        digest, failure = hasher.finish()
        if flusher is not None:
            failures = flusher.stop()
            failure = failure or (failures[0] if failures else None)
    if failure is not None:
        raise failure
    return digest, size


class _ReadBackHasher:
    """Hashes a file's bytes from ``start`` as they are reported written, reading them back in its own thread."""

    def __init__(self, fd: int, start: int) -> None:
        self._fd = fd
        self._offset = start
        self._available = start
        self._done = False
        self._digest = hashlib.sha256()
        self._failure: BaseException | None = None
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="cairn-hash", daemon=True)
        self._thread.start()

    def landed(self, count: int) -> None:
        with self._wake:
            self._available += count
            self._wake.notify()

    def _run(self) -> None:
        buffer = bytearray(_PIPE_CHUNK)
        view = memoryview(buffer)
        try:
            while True:
                with self._wake:
                    while not self._done and self._offset >= self._available:
                        self._wake.wait()
                    end = self._available
                    if self._offset >= end:
                        return
                while self._offset < end:
                    want = min(len(view), end - self._offset)
                    count = os.preadv(self._fd, [view[:want]], self._offset)
                    if not count:
                        raise StorageError("a file being written came back shorter than what was written to it")
                    self._digest.update(view[:count])
                    self._offset += count
        except BaseException as exc:  # noqa: B036 - handed to the copying thread, which raises it
            self._failure = exc

    def finish(self) -> tuple[str, BaseException | None]:
        with self._wake:
            self._done = True
            self._wake.notify()
        self._thread.join()
        return self._digest.hexdigest(), self._failure


class _WriteBehind:
    """Flushes a file's written bytes to disk from a thread of its own, every ``WRITE_BEHIND_BYTES``."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pending = 0
        self._done = False
        self._failures: list[BaseException] = []
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="cairn-flush", daemon=True)
        self._thread.start()

    def wrote(self, count: int) -> None:
        with self._wake:
            self._pending += count
            if self._pending >= WRITE_BEHIND_BYTES:
                self._wake.notify()

    def _run(self) -> None:
        sync = getattr(os, "fdatasync", os.fsync)
        while True:
            with self._wake:
                while not self._done and self._pending < WRITE_BEHIND_BYTES:
                    self._wake.wait()
                if self._done:
                    return
                self._pending = 0
            try:
                sync(self._fd)
            except OSError as exc:
                self._failures.append(exc)
                return

    def stop(self) -> list[BaseException]:
        with self._wake:
            self._done = True
            self._wake.notify()
        self._thread.join()
        return self._failures


class FlushPool:
    """Finishes temporary files in the background: fsync, rename into place, then fsync the directories.

    ``submit(fd, temporary, target)`` takes ownership of the open ``fd``;
    with ``dir_fd`` both names are relative to that open directory (which
    the caller keeps open until the pool is done). Leaving the ``with``
    block waits for every file; if the block raised, or a flush failed, the
    files not yet renamed are removed and the first error is raised. Files
    already renamed stay (whole and durable).
    """

    def __init__(self, threads: int = 16) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cairn-artifactsync")
        self._futures: list[Future[None]] = []
        self._directories: set[str] = set()
        self._directory_fds: set[int] = set()
        self._lock = threading.Lock()
        self._cancelled = False

    def __enter__(self) -> FlushPool:
        return self

    def submit(self, fd: int, temporary: str, target: str, *, dir_fd: int | None = None) -> None:
        self._futures.append(self._executor.submit(self._finish, fd, temporary, target, dir_fd))

    def _finish(self, fd: int, temporary: str, target: str, dir_fd: int | None) -> None:
        try:
            if self._cancelled:
                raise StorageError("cancelled")
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink_quietly(temporary, dir_fd=dir_fd)
            raise
        os.close(fd)
        try:
            if dir_fd is None:
                os.replace(temporary, target)
            else:
                os.replace(temporary, target, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            _unlink_quietly(temporary, dir_fd=dir_fd)
            raise
        with self._lock:
            if dir_fd is None:
                self._directories.add(os.path.dirname(target))
            else:
                self._directory_fds.add(dir_fd)

    def wait(self) -> None:
        """Wait for every submitted file; raise the first failure (an ``OSError`` as a ``StorageError``)."""
        first: BaseException | None = None
        for future in self._futures:
            try:
                future.result()
            except BaseException as exc:  # noqa: B036 - every failure is collected, the first is raised
                first = first or exc
        self._futures.clear()
        # The directories' fsyncs overlap too: one journal commit can carry many of them.
        syncs = [self._executor.submit(fsync_directory, d) for d in sorted(self._directories)]
        syncs += [self._executor.submit(fsync_directory, dir_fd=fd) for fd in sorted(self._directory_fds)]
        for sync in syncs:
            try:
                sync.result()
            except OSError as exc:
                first = first or exc
        self._directories.clear()
        self._directory_fds.clear()
        if isinstance(first, OSError):
            raise storage_error(first, "a batch of files") from first
        if first is not None:
            raise first

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if kind is not None:
                self._cancelled = True
                try:
                    self.wait()
                except BaseException:  # noqa: B036 - the block's own error is the one to report
                    pass
            else:
                self.wait()
        finally:
            self._executor.shutdown(wait=True)


def _unlink_quietly(path: str, *, dir_fd: int | None = None) -> None:
    try:
        os.unlink(path, dir_fd=dir_fd) if dir_fd is not None else os.unlink(path)
    except OSError:
        pass
