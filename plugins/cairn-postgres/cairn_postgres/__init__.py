"""cairn-postgres: cairn's store on PostgreSQL, one live store for agents on many machines.

``PostgresConfig`` is importable cheaply; ``PostgresStore`` (with psycopg)
loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cairn_postgres.config import PostgresConfig

if TYPE_CHECKING:
    from cairn_postgres.store import PostgresStore

__all__ = ["PostgresConfig", "PostgresStore"]


def __getattr__(name: str) -> Any:
    # Lazy: importing the package (as the plugin module does) must not import psycopg.
    if name == "PostgresStore":
        from cairn_postgres.store import PostgresStore

        return PostgresStore
    raise AttributeError(f"module 'cairn_postgres' has no attribute {name!r}")
