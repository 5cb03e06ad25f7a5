"""cairn-serve: `cairn serve` (a read-only web viewer over a JSON API) and `cairn mcp serve` (an MCP server).

Modules, each one concern, each importing only those above it::

    views      the read layer: branches, graph, commits, materialize, diff, runs, calls, chat, evals, spend
    graph      the commit graph's layout (lanes and rows) for the SVG
    app        the Starlette application: JSON API, pages, the token and host checks, redaction
    mcp_tools  the MCP server: tools and resources over views and the context engine
    commands   the click commands, which import the rest lazily
    plugin     the hook module the entry point names (light)
"""

from __future__ import annotations

__all__: list[str] = []
