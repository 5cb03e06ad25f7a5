"""Recall into context: the facts and episodes relevant to a query, as one marked block inside the budget.

``materialize_with_recall`` searches the ``@memory`` collection (current
facts and episodes) for the query, or for the last user turn when no query
is given, and puts the best ``k`` in one system block, marked
``[cairn memory recall]``, after the leading instructions. The block is
inside the budget: the context is materialized with the budget less the
block's tokens, so recall may displace normal items but never pinned ones
(materialize always keeps those); when even one recalled item does not fit
beside them, nothing is recalled. The ids of the recalled items are in the
returned ``Recall``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from cairn.errors import BudgetExceededError
from cairn.materialize import Item, Materialized, materialize
from cairn.memory.search import Result
from cairn.model import Instruction, Priority

if TYPE_CHECKING:  # pragma: no cover
    from cairn.memory._memory import Memory

__all__ = ["MARK", "Recall", "materialize_with_recall", "recall_text"]

#: The first line of the recalled block.
MARK = "[cairn memory recall]"


@attrs.frozen
class Recall:
    """What recall added: the ids of the recalled facts and episodes, and the block's tokens."""

    ids: tuple[str, ...]
    tokens: int
    #: Why nothing was recalled, when nothing was.
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ids": list(self.ids), "tokens": self.tokens, "reason": self.reason}


def recall_text(results: list[Result]) -> str:
    lines = [MARK, "Relevant long-term memory (facts and episodes), most relevant first:"]
    for r in results:
        meta = r.document.metadata
        kind = "episode" if meta.get("content_type") == "memory.episode" else "fact"
        about = f" ({meta['subject']})" if meta.get("subject") else ""
        lines.append(f"- {kind}{about}: {r.document.text}")
    return "\n".join(lines)


def _last_user_turn(result: Materialized) -> str | None:
    for message in reversed(result.neutral_messages):
        if message.role == "user" and isinstance(message.content, str) and message.content.strip():
            return message.content
    return None


def _with_block(result: Materialized, block: Instruction, tokens: int) -> Materialized:
    """``result`` with the block after its leading instructions."""
    item = Item("memory:recall", "memory:recall", block, block.hash, Priority.PINNED, tokens, -1, block.render())
    items = list(result.items)
    at = 0
    while at < len(items) and items[at].content.content_type == "instruction":
        at += 1
    items.insert(at, item)
    return Materialized(
        items=items,
        format=result.format,
        token_count=result.token_count + tokens,
        token_source=result.token_source,
        head=result.head,
        as_of=result.as_of,
        budget=result.budget,
        dropped_early=list(result.dropped),
        rest=None,
    )


def materialize_with_recall(
    memory: Memory,
    query: str | None,
    *,
    k: int,
    rev: str | None = None,
    as_of: Any = None,
    budget: int | None = None,
    format: str = "openai",
    images: Any = None,
    include_reasoning: bool = False,
    compaction: bool = True,
) -> tuple[Materialized, Recall]:
    """Materialize ``rev`` with the ``k`` facts and episodes most relevant to ``query`` (see the module)."""
    repo = memory.repo
    plain = materialize(
        repo,
        rev,
        as_of=as_of,
        budget=budget,
        format=format,
        images=images,
        include_reasoning=include_reasoning,
        compaction=compaction,
    )
    if query is None:
        query = _last_user_turn(plain)
        if query is None:
            return plain, Recall((), 0, "no query given and no user turn to recall for")
    memory.sync_memory()
    results = memory.search(query, k=k, collections=["@memory"])
    if not results:
        return plain, Recall((), 0, "nothing in memory matches")
    for n in range(len(results), 0, -1):
        block = Instruction(recall_text(results[:n]))
        tokens = repo.count_content(block)
        if budget is not None and tokens >= budget:
            continue
        try:
            inner = (
                plain
                if budget is None
                else materialize(
                    repo,
                    rev,
                    as_of=as_of,
                    budget=budget - tokens,
                    format=format,
                    images=images,
                    include_reasoning=include_reasoning,
                    compaction=compaction,
                )
            )
        except BudgetExceededError:
            continue  # pinned items and instructions leave no room for this many: try fewer
        if budget is None or inner.token_count + tokens <= budget:
            ids = tuple(r.document.id for r in results[:n])
            return _with_block(inner, block, tokens), Recall(ids, tokens)
    return plain, Recall((), 0, "no recalled item fits in the budget beside the pinned items")
