"""``[storage.sqlite]``: the settings of the SQLite store (light: imports only attrs)."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["SYNCHRONOUS_LEVELS", "SqliteConfig"]

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
