"""cairn's hook module for cairn-artifacts: registers the ``local`` artifact store.

Light on purpose (cairn imports it at start-up): the store module is
imported by the factory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from cairn.hookspecs import hookimpl

__all__ = ["LocalConfig", "cairn_register_artifact_stores"]


def _relative_or_absolute_path(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise ValueError(f"{attribute.name} must be a directory path, got {value!r:.80}")


@attrs.frozen
class LocalConfig:
    """``[artifacts.local]``."""

    #: Where the objects live: relative to the project's data directory (``.cairn/``), or absolute.
    path: str = attrs.field(default="artifacts", validator=_relative_or_absolute_path)


def _create(config: LocalConfig, context: Any) -> Any:
    from cairn_artifacts.store import LocalArtifactStore

    root = Path(config.path).expanduser()
    if not root.is_absolute():
        root = Path(context.data_dir) / root
    return LocalArtifactStore(root)


@hookimpl
def cairn_register_artifact_stores(register: Callable[..., None]) -> None:
    """Register ``local``."""
    register(
        "local",
        _create,
        LocalConfig,
        description="files by SHA-256 in a sharded directory, written atomically, verified on every read",
    )
