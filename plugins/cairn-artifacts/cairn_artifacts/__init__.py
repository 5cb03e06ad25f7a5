"""cairn-artifacts: the ``local`` artifact store, a sharded directory of files named by their SHA-256.

The store module is imported on first use of its names: cairn imports this
package (for ``cairn_artifacts.plugin``) on every command, and registering
the store must not import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from cairn_artifacts.store import LocalArtifactStore, open_in_directory

__all__ = ["LocalArtifactStore", "open_in_directory"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from cairn_artifacts import store

        return getattr(store, name)
    raise AttributeError(f"module 'cairn_artifacts' has no attribute {name!r}")
