"""``[storage.sqlite]``: the settings of the SQLite store (light: imports only attrs)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from cairn.plugins import FactoryContext

__all__ = ["MEMORY", "SYNCHRONOUS_LEVELS", "SqliteConfig", "check_settings", "resolve_path"]

#: The path that asks SQLite for a throw-away database in memory.
MEMORY = ":memory:"
#: The first bytes of every SQLite database file (an empty file is a new database).
_SQLITE_HEADER = b"SQLite format 3\x00"

#: ``PRAGMA synchronous`` levels a user may choose, weakest first.
SYNCHRONOUS_LEVELS = ("off", "normal", "full", "extra")


def _path(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{attribute.name} must be a file name, an absolute path or ':memory:'; got {value!r}")


def _timeout(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must be a whole number of milliseconds, 0 or more; got {value!r}")


def _synchronous(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in SYNCHRONOUS_LEVELS:
        choices = ", ".join(repr(c) for c in SYNCHRONOUS_LEVELS)
        raise ValueError(f"{attribute.name} must be one of {choices}; got {value!r}")


@attrs.frozen
class SqliteConfig:
    """The ``[storage.sqlite]`` table.

    ``path``: the database file; relative to the project's data directory
    (``.cairn/`` by default, created when missing), absolute as given, or
    ``":memory:"`` for a throw-away store.
    ``busy_timeout_ms``: how long a write waits for another process's lock
    before failing with ``StorageError``.
    ``synchronous``: SQLite's ``PRAGMA synchronous``; ``"full"`` (the default)
    makes every acknowledged write durable across power loss, ``"normal"``
    may lose the last writes on power loss (never on a process crash) and is
    faster, ``"off"`` is for throw-away stores only.
    """

    path: str = attrs.field(default="cairn.db", validator=_path)
    busy_timeout_ms: int = attrs.field(default=30000, validator=_timeout)
    synchronous: str = attrs.field(default="full", validator=_synchronous)


def resolve_path(path: str, data_dir: Path) -> str:
    """Where ``[storage.sqlite] path`` points: ``":memory:"``, an absolute path, or a path under ``data_dir``."""
    if path == MEMORY:
        return MEMORY
    candidate = Path(os.path.expanduser(path))
    if not candidate.is_absolute():
        candidate = Path(data_dir) / candidate
    return str(candidate)


def check_settings(config: SqliteConfig, context: FactoryContext) -> Iterator[tuple[str, str]]:
    """What ``cairn config validate`` reports about ``[storage.sqlite]`` on this machine; opens nothing for writing.

    The database must be a regular file SQLite can open for reading and
    writing, or a name in a directory that can be created.
    """
    from cairn.config import usable_directory

    path = resolve_path(config.path, context.data_dir)
    if path == MEMORY:
        return
    target = Path(path)
    try:
        exists = target.exists()
        if exists and not target.is_file():
            yield "path", f"{path} is not a regular file; SQLite needs one it can read and write"
            return
        if exists:
            handle = os.open(target, os.O_RDWR)  # no O_CREAT, no O_TRUNC: nothing changes
            try:
                head = os.read(handle, len(_SQLITE_HEADER))
            finally:
                os.close(handle)
            if head and head != _SQLITE_HEADER:
                yield "path", f"{path} is not an SQLite database; SQLite would refuse to open it"
            return
    except OSError as exc:
        yield "path", f"{path} cannot be opened for reading and writing: {exc.strerror or exc}"
        return
    problem = usable_directory(target.parent)
    if problem:
        yield "path", f"{path} cannot be created: {problem}"
