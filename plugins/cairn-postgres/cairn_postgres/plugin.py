"""The hook module the ``cairn`` entry point names: the ``postgres`` storage backend and its commands.

Kept light on purpose: psycopg is imported inside the factory and the
commands, when a store is actually opened, never when plugins are
discovered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cairn.hookspecs import hookimpl
from cairn_postgres.config import PostgresConfig, check_settings

if TYPE_CHECKING:
    from cairn.plugins import FactoryContext
    from cairn.storage import Store

__all__ = ["cairn_register_commands", "cairn_register_storage", "create_store"]


def create_store(config: PostgresConfig, context: FactoryContext) -> Store:
    """Open the store ``[storage.postgres]`` describes (connecting, and migrating when ``auto_migrate``)."""
    from cairn_postgres.store import PostgresStore

    return PostgresStore(config)


@hookimpl
def cairn_register_storage(register: Callable[..., None]) -> None:
    register(
        "postgres",
        create_store,
        PostgresConfig,
        description="PostgreSQL (psycopg 3, pooled): one live store for agents on many machines",
        requires={"psycopg": "cairn-postgres", "psycopg_pool": "cairn-postgres"},
        check=check_settings,
    )


@hookimpl
def cairn_register_commands(cli: Any) -> None:
    from cairn_postgres.commands import register

    register(cli)
