"""Writing a snapshot tree back into a directory, without ever writing outside it.

``restore(store, tree, directory)`` refuses a directory that is not empty
unless ``force`` is given; with ``force`` the tree's paths are written over
whatever is there and everything else is left alone. No entry can land
outside the directory:

- the tree itself cannot name an absolute path, a ``..`` part, or a path
  inside one of its own links (``cairn.trees`` refuses such a tree when it
  is read);
- every existing parent directory is checked first, and any that is a
  symbolic link or not a directory stops the restore before anything is
  written;
- while writing, each parent is opened relative to the one above it with
  ``O_NOFOLLOW``, so a link swapped in meanwhile is refused too.

Each file streams from the store (verified as it is read) into a temporary
file beside its target, and is fsynced and renamed into place only once the
whole object was read and matched its hash: a corrupt object never lands,
and a file is whole or absent. Needs a system with ``dir_fd`` support
(Linux, macOS, the BSDs).
"""

from __future__ import annotations

import errno
import os
import stat as _stat
from pathlib import Path
from typing import Any

import attrs

from cairn.artifacts import ArtifactStore
from cairn.durable import TEMP_PREFIX, FlushPool, open_temporary, storage_error
from cairn.errors import StorageError, ValidationError
from cairn.trees import EXECUTABLE, SYMLINK, Tree

__all__ = ["RestoreResult", "restore"]

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


@attrs.frozen
class RestoreResult:
    """What a restore wrote: files, links and bytes, into ``directory``."""

    directory: str
    files: int
    links: int
    bytes: int

    def to_record(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _outside(path: str, why: str) -> ValidationError:
    return ValidationError(
        f"refusing to restore {path!r}: {why}, so it could land outside the directory",
        hint="restore into an empty directory, or remove what is in the way",
    )


def _check_existing_parents(root: Path, tree: Tree) -> None:
    """Before writing anything: no existing parent directory of an entry may be a link or a non-directory."""
    checked: set[str] = set()
    for entry in tree:
        parts = entry.path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            parent = "/".join(parts[:depth])
            if parent in checked:
                continue
            try:
                st = os.lstat(root / parent)
            except FileNotFoundError:
                break  # made by the restore itself, below a directory already checked
            if _stat.S_ISLNK(st.st_mode):
                raise _outside(entry.path, f"{parent!r} is a symbolic link")
            if not _stat.S_ISDIR(st.st_mode):
                raise ValidationError(
                    f"cannot restore {entry.path!r}: {parent!r} exists and is not a directory",
                    hint="remove it, or restore into an empty directory",
                )
            checked.add(parent)


class _Directories:
    """Open directory descriptors below the root, made on demand, each opened with O_NOFOLLOW."""

    def __init__(self, root_fd: int) -> None:
        self.fds: dict[str, int] = {"": root_fd}

    def open(self, parent: str, entry_path: str) -> int:
        if parent in self.fds:
            return self.fds[parent]
        above, _, name = parent.rpartition("/")
        above_fd = self.open(above, entry_path)
        try:
            os.mkdir(name, 0o777, dir_fd=above_fd)
        except FileExistsError:
            pass
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=above_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                raise _outside(entry_path, f"{parent!r} is a symbolic link or not a directory") from None
            raise
        self.fds[parent] = fd
        return fd

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


def restore(store: ArtifactStore, tree: Tree, directory: Path | str, *, force: bool = False) -> RestoreResult:
    """Write every entry of ``tree`` under ``directory``; see the module docstring for what is refused."""
    if os.open not in os.supports_dir_fd or os.mkdir not in os.supports_dir_fd:
        raise StorageError("restoring a snapshot needs directory descriptors (dir_fd), which this system lacks")
    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise ValidationError(f"{root} exists and is not a directory", hint="choose a directory to restore into")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, str(root)) from None
    if not force and any(os.scandir(root)):
        raise ValidationError(
            f"{root} is not empty",
            hint="restore into an empty directory, or pass --force to write the snapshot's files over what is "
            "there (other files are left alone)",
        )
    _check_existing_parents(root, tree)
    root_fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    directories = _Directories(root_fd)
    files = links = size = 0
    try:
        with FlushPool() as pool:
            for entry in tree:
                parent, _, name = entry.path.rpartition("/")
                dir_fd = directories.open(parent, entry.path)
                _refuse_directory_in_the_way(dir_fd, name, entry.path)
                if entry.mode == SYMLINK:
                    assert entry.target is not None
                    _write_link(dir_fd, name, entry.target)
                    links += 1
                    continue
                mode = 0o777 if entry.mode == EXECUTABLE else 0o666
                fd, temporary = open_temporary(root, mode=mode, dir_fd=dir_fd)
                try:
                    written = store.copy_to(entry.hash, fd)  # verified; a mismatch raises before the rename
                except BaseException:
                    os.close(fd)
                    _unlink_quietly(temporary, dir_fd)
                    raise
                pool.submit(fd, temporary, name, dir_fd=dir_fd)
                files += 1
                size += written
    except OSError as exc:
        raise storage_error(exc, f"the restore into {root}") from None
    finally:
        directories.close()
    return RestoreResult(str(root), files, links, size)


def _refuse_directory_in_the_way(dir_fd: int, name: str, path: str) -> None:
    try:
        st = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    if _stat.S_ISDIR(st.st_mode):
        raise ValidationError(
            f"cannot restore {path!r}: a directory is in the way", hint="remove it, or restore into an empty directory"
        )


def _write_link(dir_fd: int, name: str, target: str) -> None:
    import secrets

    for _ in range(16):
        temporary = TEMP_PREFIX + secrets.token_hex(12)
        try:
            os.symlink(target, temporary, dir_fd=dir_fd)
        except FileExistsError:
            continue
        try:
            os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            _unlink_quietly(temporary, dir_fd)
            raise
        return
    raise StorageError(f"could not create a temporary link for {name!r}")


def _unlink_quietly(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass
