"""The hook module the ``cairn`` entry point names: registers the ``sqlite`` storage backend.

Kept light on purpose: ``sqlite_utils`` takes a quarter of a second to
import, so the store module is imported inside the factory, when a store is
actually opened, never when plugins are discovered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from cairn.hookspecs import hookimpl
from cairn_sqlite.config import SqliteConfig, check_settings

if TYPE_CHECKING:
    from cairn.plugins import FactoryContext
    from cairn.storage import Store

__all__ = ["cairn_register_storage", "create_store"]


def create_store(config: SqliteConfig, context: FactoryContext) -> Store:
    """Open the store ``[storage.sqlite]`` describes (relative paths under ``context.data_dir``)."""
    from cairn_sqlite.store import SqliteStore

    return SqliteStore.from_config(config, data_dir=context.data_dir)


@hookimpl
def cairn_register_storage(register: Callable[..., None]) -> None:
    register(
        "sqlite",
        create_store,
        SqliteConfig,
        description="one SQLite file (WAL, durable writes); the embedded default",
        check=check_settings,
    )
