"""What the memory page of ``cairn serve`` shows: facts, episodes, and search (read-only).

Facts and episodes are read from the ``memory`` branch as ``cairn memory
facts`` / ``episodes`` read them; search is ``Memory.search`` as ``cairn
search`` runs it, over what ``cairn memory index`` (or a remembered fact)
brought into the documents. Nothing here syncs or stores vectors; in
semantic or hybrid mode the query's own vector is embedded through the
kernel's providers, so that call is metered (a spend record, under the
project's ceilings) as any embedding call is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from cairn.errors import ValidationError

if TYPE_CHECKING:  # pragma: no cover
    from cairn.memory import Memory

__all__ = ["MODES", "memory_overview", "memory_search"]

MODES = ("lexical", "hybrid", "semantic")
KINDS = ("context", "runs", "chat", "memory")


@contextlib.contextmanager
def _opened(state: Any) -> Iterator[Memory]:
    from cairn.memory import Memory

    memory = Memory.open(state.repo, state.config, state.plugins)
    try:
        yield memory
    finally:
        memory.close()


def memory_overview(state: Any, *, subject: str | None, episodes: int) -> dict[str, Any]:
    """The current facts (each with ``revised``: whether it superseded an older version) and the newest episodes."""
    with _opened(state) as memory:
        facts = memory.branch.facts(subject=subject or None)
        recent = memory.branch.episodes()[:episodes]
        collections = memory.collection_names()
        vectors = memory.has_vectors()
    return {
        "facts": [{**m.to_dict(), "revised": m.commit.hash != m.id} for m in facts],
        "episodes": [m.to_dict() for m in recent],
        "documents": collections,
        "has_vectors": vectors,
    }


def memory_search(state: Any, query: Any, *, mode: str | None, kind: str | None, k: int) -> list[dict[str, Any]]:
    """``cairn search QUERY`` with ``--mode`` and one ``--kind``: ranked results with snippets."""
    from cairn.memory.search import kinds_to_collections

    if mode is not None and mode not in MODES:
        raise ValidationError(f"unknown mode {mode!r}", what="search", hint=f"use one of: {', '.join(MODES)}")
    collections = kinds_to_collections([kind] if kind else None) or [f"@{name}" for name in KINDS]
    with _opened(state) as memory:
        results = memory.search(query or "", k=k, mode=mode, collections=collections)
    return [r.to_dict() for r in results]
