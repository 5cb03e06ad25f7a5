"""cairn-git: a storage backend that keeps context, runs and spend inside the project's git repository.

``GitConfig`` is importable cheaply; ``GitStore`` and ``open_in_directory``
load (with the modules that talk to git) on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cairn_git.config import GitConfig

if TYPE_CHECKING:
    from cairn_git.store import GitStore, open_in_directory

__all__ = ["GitConfig", "GitStore", "open_in_directory"]


def __getattr__(name: str) -> Any:
    # Lazy: importing the package (as the plugin module does) must stay cheap.
    if name in ("GitStore", "open_in_directory"):
        from cairn_git import store

        return getattr(store, name)
    raise AttributeError(f"module 'cairn_git' has no attribute {name!r}")
