"""``MemoryReader``: what a plugin or an evaluator gets instead of the store. Named, bounded, read-only.

Every query has a name and a hard limit (``MAX_RESULTS``); none can write
(the reader holds no method that does, and hands out plain data, never a
store or a repository). Each query publishes one ``memory:query`` event
with its metadata only: the query's name, its limit, how many results, the
latency, and the outcome. Never the query text, never the results.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cairn.errors import CairnError, NotFoundError, ValidationError
from cairn.events import EventBus
from cairn.events import bus as default_bus

if TYPE_CHECKING:  # pragma: no cover
    from cairn.memory._memory import Memory

__all__ = ["MAX_RESULTS", "QUERY_EVENT", "MemoryReader"]

#: The most results any query returns.
MAX_RESULTS = 100
#: The event every query publishes.
QUERY_EVENT = "memory:query"


def _limit(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RESULTS:
        raise ValidationError(
            f"{name} must be a whole number from 1 to {MAX_RESULTS}, got {value!r}", what="memory reader"
        )
    return value


class MemoryReader:
    """Bounded read-only queries over a project's memory. Hand one to a plugin; never hand it the store."""

    __slots__ = ("__bus", "__clock", "__memory")

    def __init__(
        self, memory: Memory, *, bus: EventBus | None = None, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.__memory = memory
        self.__bus = bus or default_bus
        self.__clock = clock

    def __repr__(self) -> str:
        return "<MemoryReader (read-only)>"

    def _run(self, name: str, limit: int, query: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
        started = self.__clock()
        outcome = "ok"
        results: list[dict[str, Any]] = []
        try:
            results = query()[:limit]
            return results
        except CairnError as exc:
            outcome = type(exc).__name__
            raise
        finally:
            self.__bus.publish(
                QUERY_EVENT,
                {
                    "query": name,
                    "limit": limit,
                    "count": len(results),
                    "latency_ms": round((self.__clock() - started) * 1000, 3),
                    "outcome": outcome,
                },
            )

    def recent_episodes(self, n: int = 10) -> list[dict[str, Any]]:
        """The ``n`` newest episodes, newest first."""
        n = _limit("n", n)
        return self._run("recent_episodes", n, lambda: [m.to_dict() for m in self.__memory.branch.episodes()[:n]])

    def facts(self, subject: str | None = None, *, limit: int = 50) -> list[dict[str, Any]]:
        """Current facts (about ``subject`` when given), newest first."""
        limit = _limit("limit", limit)
        if subject is not None and (not isinstance(subject, str) or not subject.strip()):
            raise ValidationError("subject must be a non-empty string or None", what="memory reader")
        return self._run(
            "facts", limit, lambda: [m.to_dict() for m in self.__memory.branch.facts(subject=subject)[:limit]]
        )

    def semantic(self, query: str, k: int = 10) -> list[dict[str, Any]]:
        """The ``k`` documents most relevant to ``query`` (hybrid when vectors exist, lexical otherwise)."""
        k = _limit("k", k)
        return self._run("semantic", k, lambda: [r.to_dict() for r in self.__memory.search(query, k=k)])

    def similar_runs(self, run_id: str, k: int = 10) -> list[dict[str, Any]]:
        """The ``k`` runs whose summaries are most like run ``run_id``'s."""
        k = _limit("k", k)

        def query() -> list[dict[str, Any]]:
            memory = self.__memory
            if "@runs" not in memory.documents.collections():
                raise NotFoundError("run summary", run_id, hint="run `cairn memory index` to index run summaries")
            return [r.to_dict() for r in memory.similar("@runs", run_id, k=k)]

        return self._run("similar_runs", k, query)
