"""Two rules of ``cairn.materialize``: the order of materialized items, and which named directives are in force.

Kept apart so each stays small; both work on the materializer's candidates
(an item's commit, its content, priority and whether it is deleted).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from cairn.model import Commit, Instruction, Priority

if TYPE_CHECKING:  # pragma: no cover
    from cairn.repo_reader import RepoReader

__all__ = ["order_key", "superseded_directives"]


def order_key(repo: RepoReader, head: Commit) -> Callable[[Any], tuple[Any, ...]]:
    """The materialized order: by the type's ``order`` hint, then commit time, ours before theirs on equal
    times (a merged-in side's items follow), then depth. Without merges that is history order."""
    if head.last_merge is None:
        return lambda c: (c.content.hints.order, c.commit.depth)

    def key(c: Any) -> tuple[Any, ...]:
        side = 0 if repo.lineage.first_parent_of(c.commit, head) else 1
        return (c.content.hints.order, c.commit.created_at, side, c.commit.depth, c.commit.hash)

    return key


def superseded_directives(candidates: Iterable[Any]) -> set[str]:
    """Named instructions a newer one (by time, then depth) of their name replaces; skipped and deleted ones take no part."""
    newest: dict[str, Any] = {}
    named: list[Any] = []
    for c in candidates:
        if c.deleted or c.priority is Priority.SKIP or not isinstance(c.content, Instruction) or not c.content.name:
            continue
        named.append(c)
        known = newest.get(c.content.name)
        if known is None or (c.commit.created_at, c.commit.depth) > (known.commit.created_at, known.commit.depth):
            newest[c.content.name] = c
    return {c.commit.hash for c in named if newest[c.content.name] is not c}
