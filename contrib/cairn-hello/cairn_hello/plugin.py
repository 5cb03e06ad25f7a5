"""The hook module the ``hello`` entry point names.

cairn imports this module whenever it loads plugins, which includes every
``cairn --help``, so it stays light: the content type module needs only
attrs and ``cairn.model`` (both already imported by then), and the click
commands are imported inside the hook that adds them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cairn.hookspecs import hookimpl
from cairn_hello.content import Greeting

__all__ = ["cairn_register_commands", "cairn_register_content_types"]


@hookimpl
def cairn_register_content_types(register: Callable[..., None]) -> None:
    """Make ``hello.greeting`` items valid to commit and decodable when read back."""
    register(Greeting)


@hookimpl
def cairn_register_commands(cli: Any) -> None:
    """Add the ``cairn hello`` command group."""
    from cairn_hello.commands import hello_group

    cli.add_command(hello_group)
