"""The kernel's built-in plugin: the seven content types and memory's two, registered through the public hook."""

from __future__ import annotations

from collections.abc import Callable

from cairn.hookspecs import hookimpl
from cairn.model import BUILTIN_CONTENT_TYPES
from cairn.model.memory import MEMORY_CONTENT_TYPES


@hookimpl
def cairn_register_content_types(register: Callable[..., None]) -> None:
    for content_type in (*BUILTIN_CONTENT_TYPES, *MEMORY_CONTENT_TYPES):
        register(content_type)
