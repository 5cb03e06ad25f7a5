"""Listing the tools of a configured MCP server over stdio, with the official ``mcp`` SDK (``cairn[mcp]``).

The SDK (and anyio) is imported here, when a listing is asked for, never by
``import cairn``. The server is started with its ``command`` and ``args``
from ``[mcp.servers.NAME]`` in the project directory, given the SDK's safe
default environment plus the variables ``env`` names (their values are read
from cairn's own environment, never from config), and stopped when the
listing ends or ``timeout_s`` passes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cairn.config_agents import McpServerSpec
from cairn.errors import CairnError, ValidationError

__all__ = ["INSTALL_HINT", "list_server_tools"]

INSTALL_HINT = "pip install 'cairn[mcp]' (the official MCP Python SDK)"


def list_server_tools(spec: McpServerSpec, base: Path) -> list[dict[str, Any]]:
    """The server's tools: name, description and input schema, in the server's order."""
    if spec.transport != "stdio":
        raise ValidationError(
            f"MCP server {spec.name!r} uses transport {spec.transport!r}; cairn lists tools of stdio servers only",
            hint="start it yourself and ask it with an MCP client",
        )
    try:
        import anyio
        from mcp import Client
        from mcp.client.stdio import StdioServerParameters
    except ImportError:
        raise CairnError("listing an MCP server's tools needs the mcp package", hint=INSTALL_HINT) from None
    assert spec.command is not None  # a stdio server has one
    env = {name: os.environ[name] for name in spec.env if name in os.environ}
    params = StdioServerParameters(command=spec.command, args=list(spec.args), env=env, cwd=str(base))

    async def listing() -> list[dict[str, Any]]:
        with anyio.fail_after(spec.timeout_s):
            async with Client(params, read_timeout_seconds=spec.timeout_s) as client:
                tools = (await client.list_tools()).tools
        return [{"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in tools]

    try:
        return anyio.run(listing)
    except TimeoutError:
        raise CairnError(
            f"MCP server {spec.name!r} did not list its tools within {spec.timeout_s} s",
            hint=f"raise timeout_s in [mcp.servers.{spec.name}], or check that the server starts",
        ) from None
    except Exception as exc:  # the SDK raises its own errors, and OSError when the program cannot start
        raise CairnError(
            f"MCP server {spec.name!r} could not be asked for its tools: {type(exc).__name__}: {exc}"[:500],
            hint=f"check command and args in [mcp.servers.{spec.name}]; run the command yourself to see its errors",
        ) from None
