"""The hook module the ``serve`` entry point names: light, so ``cairn --help`` stays fast.

starlette, uvicorn and the MCP SDK are imported by the commands when they run.
"""

from __future__ import annotations

from typing import Any

from cairn.hookspecs import hookimpl

__all__ = ["cairn_register_commands"]


@hookimpl
def cairn_register_commands(cli: Any) -> None:
    """Add ``cairn serve`` and ``cairn mcp serve``."""
    from cairn_serve.commands import mcp_group, serve_command

    cli.add_command(serve_command)
    cli.add_command(mcp_group)
