"""The memory tools of ``cairn mcp serve``: ``search_memory`` and ``remember_fact``.

They go through the same code as ``cairn search`` and ``cairn memory
remember`` (``Memory.search``, ``MemoryBranch.remember`` / ``supersede``).
A remembered fact is brought into the ``@memory`` documents at once, so a
lexical (or hybrid) search finds it without ``cairn memory index``.
``remember_fact`` writes, so ``--read-only`` leaves it out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

if TYPE_CHECKING:  # pragma: no cover
    from cairn.memory import Memory
    from cairn_serve.mcp_tools import CairnMCP

__all__ = ["add_memory_tools"]

Kind = Literal["context", "runs", "chat", "memory"]
Mode = Literal["semantic", "lexical", "hybrid"]


def add_memory_tools(mcp: CairnMCP) -> None:
    server, state = mcp.server, mcp.state

    @contextlib.contextmanager
    def opened() -> Iterator[Memory]:
        from cairn.memory import Memory

        memory = mcp.call(Memory.open, state.repo, state.config, state.plugins)
        try:
            yield memory
        finally:
            memory.close()

    @server.tool(
        description=(
            "Search context, runs, chat and memory (facts, episodes) as `cairn search` does: ranked results "
            "with a snippet. mode lexical needs no embedder; semantic and hybrid use the configured one "
            "(default: hybrid when vectors exist, lexical otherwise)."
        )
    )
    async def search_memory(
        query: Annotated[str, Field(min_length=1, description="the words to search for")],
        k: Annotated[int, Field(ge=1, le=10_000, description="how many results")] = 10,
        mode: Mode | None = None,
        kind: Annotated[list[Kind] | None, Field(description="only these kinds (default: all)")] = None,
        branch: Annotated[str | None, Field(description="only context items of this branch")] = None,
    ) -> list[dict[str, Any]]:
        from cairn.memory.search import kinds_to_collections

        collections = mcp.call(kinds_to_collections, kind) or ["@context", "@runs", "@chat", "@memory"]
        with opened() as memory:
            results = mcp.call(memory.search, query, k=k, mode=mode, collections=collections, branch=branch)
        return [r.to_dict() for r in results]

    if mcp.read_only:
        return

    @server.tool(
        description=(
            "Keep a long-term fact on the memory branch (versioned like context), as `cairn memory remember`. "
            "Give supersedes (an older fact's id) to replace it."
        )
    )
    async def remember_fact(
        text: Annotated[str, Field(min_length=1, description="the fact")],
        subject: Annotated[str | None, Field(description="what the fact is about")] = None,
        supersedes: Annotated[str | None, Field(description="the id of an older fact this one replaces")] = None,
        source: Annotated[str | None, Field(description="episode:<hash> or commit:<revision>")] = None,
    ) -> dict[str, Any]:
        with opened() as memory:
            branch = memory.branch
            resolved = mcp.call(memory.source, source) if source else None
            if supersedes:
                item = mcp.call(branch.supersede, supersedes, text, subject=subject, source=resolved)
            else:
                item = mcp.call(branch.remember, text, subject=subject, source=resolved)
            mcp.call(memory.sync_memory)
        return dict(item.to_dict())
