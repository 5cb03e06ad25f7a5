"""The hook module the ``cairn`` entry point names: registers the ``git`` storage backend.

Kept light on purpose: the store (and everything that talks to git) is
imported inside the factory, when a store is actually opened, never when
plugins are discovered.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cairn.hookspecs import hookimpl
from cairn_git.config import GitConfig, check_settings

if TYPE_CHECKING:
    from cairn.plugins import FactoryContext
    from cairn.storage import Store

__all__ = ["cairn_register_storage", "create_store"]


def create_store(config: GitConfig, context: FactoryContext) -> Store:
    """Open the store ``[storage.git]`` describes, in the repository that holds the project directory."""
    from cairn_git.store import GitStore

    return GitStore.from_config(config, project_dir=context.project_dir or Path.cwd())


@hookimpl
def cairn_register_storage(register: Callable[..., None]) -> None:
    register(
        "git",
        create_store,
        GitConfig,
        description="git objects and refs in the project's own repository; runs on a ledger branch; push/pull",
        check=check_settings,
    )
