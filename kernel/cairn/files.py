"""Writing files safely: a new file appears whole under its name, or not at all.

``atomic_write`` writes to a temporary file beside the target, created with
``O_EXCL`` under a random name and opened without following symlinks, so a
link planted where the temporary file would go can never redirect the write
(for example out of the project). The data is flushed and fsynced, then the
temporary file replaces the target in one ``rename``; the directory is synced
so the rename survives a crash. On any error the temporary file is removed
and the target is left as it was.

Exports use it today; anything that writes a user-visible file (artifacts,
snapshots) should too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from cairn.errors import FileError

__all__ = ["atomic_write"]

# Read as well as write: a writer may check what it wrote (an artifact copied in the kernel is hashed back).
_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str],
    *,
    binary: bool = False,
    encoding: str = "utf-8",
    mode: int = 0o666,
    overwrite: bool = True,
) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; on a clean exit it replaces ``path`` atomically.

    Yields a text (or, with ``binary=True``, a bytes) file object. ``mode``
    is the new file's permission bits before the umask applies, as with
    ``open``; a file that is replaced keeps its own. The target itself may be a symlink: the link is replaced, never
    followed. Raises ``FileError`` naming the path and the reason when the
    directory is missing or not writable, or the target is a directory.
    With ``overwrite=False`` an existing target is refused, before writing
    and again at the end (the file takes its name with ``link``, which
    fails if something appeared there meanwhile).
    """
    target = Path(os.fspath(path))
    if not target.name or target.name in (".", ".."):
        raise FileError(f"{str(path)!r} is not a file name", path=str(path), hint="give the path of a file to write")
    if target.is_dir():
        raise FileError(f"{target} is a directory", path=str(target), hint="give the path of a file to write")
    if not overwrite and os.path.lexists(target):
        raise _exists(target)
    directory = target.parent
    descriptor, temporary = _create_beside(target, _mode_for(target, mode))
    try:
        handle: IO[Any] = os.fdopen(descriptor, "wb") if binary else os.fdopen(descriptor, "w", encoding=encoding)
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temporary, target)
        else:
            _link_new(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError):
            raise _file_error(target, exc, "writing") from None
        raise
    _sync_directory(directory)


def _exists(target: Path) -> FileError:
    return FileError(f"{target} already exists", path=str(target), hint="choose another path, or allow overwriting")


def _link_new(temporary: str, target: Path) -> None:
    """Give the finished file its name only if nothing has it: ``link`` refuses, where ``rename`` replaces."""
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise _exists(target) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(target):  # a filesystem without hard links: check, then rename
            raise _exists(target) from None
        os.replace(temporary, target)
        return
    os.unlink(temporary)


def _create_beside(target: Path, mode: int) -> tuple[int, str]:
    """A new file in ``target``'s directory under a random name: (descriptor, path)."""
    for _ in range(100):
        temporary = str(target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp")
        try:
            # O_EXCL fails on anything already there, a symlink included, so nothing is followed.
            return os.open(temporary, _FLAGS, mode), temporary
        except FileExistsError:
            continue
        except OSError as exc:
            raise _file_error(target, exc, "creating a file beside") from None
    raise FileError(f"could not create a temporary file beside {target}", path=str(target))


def _mode_for(target: Path, default: int) -> int:
    """The permission bits the new file gets: those of the file it replaces, else ``default``."""
    try:
        status = os.lstat(target)
    except OSError:
        return default
    return status.st_mode & 0o777 if stat.S_ISREG(status.st_mode) else default


def _sync_directory(directory: Path) -> None:
    # Makes the rename itself durable; some systems cannot open a directory, which is fine.
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _file_error(target: Path, exc: OSError, action: str) -> FileError:
    reason = exc.strerror or str(exc)
    hint = "check that the directory exists and that you may write there"
    if isinstance(exc, IsADirectoryError):
        hint = "give the path of a file, not a directory"
    return FileError(f"{action} {target}: {reason}", path=str(target), hint=hint)
