"""The hook module the ``cairn`` entry point names: registers the ``files`` storage backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from cairn.hookspecs import hookimpl

if TYPE_CHECKING:
    from cairn.plugins import FactoryContext
    from cairn_files.store import FileStore

__all__ = ["FilesConfig", "cairn_register_storage", "create_store"]


def _directory(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise ValueError(f"{attribute.name} must be a directory name or an absolute path; got {value!r}")


@attrs.frozen
class FilesConfig:
    """The ``[storage.files]`` table. ``path``: the store's directory, relative to the data directory."""

    path: str = attrs.field(default="files", validator=_directory)


def create_store(config: FilesConfig, context: FactoryContext) -> FileStore:
    from cairn_files.store import FileStore

    return FileStore(context.data_dir / config.path)


@hookimpl
def cairn_register_storage(register: Callable[..., None]) -> None:
    register(
        "files",
        create_store,
        FilesConfig,
        description="plain files: versioned context only (objects, refs, annotations); an example backend",
    )
