"""A tiny MCP server over stdio for the tests of `cairn mcp list --tools` (the SDK's MCPServer, formerly FastMCP)."""

from __future__ import annotations

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("cairn-test-server")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


@server.tool()
def greeting(name: str) -> str:
    """Greet someone by name, in the language the environment says."""
    return f"{os.environ.get('GREETING_WORD', 'Hello')}, {name}"


if __name__ == "__main__":
    server.run("stdio")
