"""cairn-sqlite: cairn's embedded default storage backend, one SQLite file built with sqlite-utils.

``SqliteConfig`` is importable cheaply; ``SqliteStore`` and the rest of
``cairn_sqlite.store`` load on first use (sqlite_utils only when a schema step is missing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cairn_sqlite.config import SqliteConfig

if TYPE_CHECKING:
    from cairn_sqlite.store import SqliteStore, open_in_directory

__all__ = ["SqliteConfig", "SqliteStore", "open_in_directory"]


def __getattr__(name: str) -> Any:
    # Lazy: importing the package (as the plugin module does) must not import sqlite_utils.
    if name in ("SqliteStore", "open_in_directory"):
        from cairn_sqlite import store

        return getattr(store, name)
    raise AttributeError(f"module 'cairn_sqlite' has no attribute {name!r}")
