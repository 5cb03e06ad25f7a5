"""The kernel's built-in plugin: the eight content types, memory's two, compaction's two, the session and
checkpoint records, and the execution modules shell, http and python, registered through the public hooks."""

from __future__ import annotations

from collections.abc import Callable

from cairn.hookspecs import hookimpl
from cairn.model import BUILTIN_CONTENT_TYPES
from cairn.model.compaction import COMPACTION_CONTENT_TYPES
from cairn.model.memory import MEMORY_CONTENT_TYPES
from cairn.model.session import SESSION_CONTENT_TYPES


@hookimpl
def cairn_register_content_types(register: Callable[..., None]) -> None:
    for content_type in (
        *BUILTIN_CONTENT_TYPES,
        *MEMORY_CONTENT_TYPES,
        *COMPACTION_CONTENT_TYPES,
        *SESSION_CONTENT_TYPES,
    ):
        register(content_type)


@hookimpl
def cairn_register_executors(register: Callable[..., None]) -> None:
    from cairn.executors.http import HttpConfig, HttpExecutor
    from cairn.executors.python import PythonConfig, PythonExecutor
    from cairn.executors.shell import ShellConfig, ShellExecutor

    register(
        "shell", lambda config, context: ShellExecutor(config), ShellConfig, description="run a program (argument list)"
    )
    register(
        "http",
        lambda config, context: HttpExecutor(config),
        HttpConfig,
        description="one HTTP request to an allowed URL",
    )
    register(
        "python",
        lambda config, context: PythonExecutor(config),
        PythonConfig,
        description="call module:function in a subprocess",
    )
