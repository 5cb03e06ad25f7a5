"""Three rules of ``cairn.materialize``: the order of materialized items, which named directives are in
force, and which items compactions replaced.

Kept apart so each stays small; the first two work on the materializer's candidates
(an item's commit, its content, priority and whether it is deleted).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from cairn.model import Commit, Instruction, Operation, Priority
from cairn.model.compaction import Compaction

if TYPE_CHECKING:  # pragma: no cover
    from cairn.repo_reader import RepoReader

__all__ = ["compacted_items", "order_key", "superseded_directives"]


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


def compacted_items(repo: RepoReader, head: Commit, moment: str | None = None) -> dict[str, Commit]:
    """Items on ``head``'s lineage a compaction there replaced: item -> the newest such compaction.

    Compactions are found through the content-type index, so the cost grows
    with the number of compactions, not with the length of history.
    """
    found: dict[str, Commit] = {}
    for commit in repo.objects.commits_by_type("compaction", until=moment):  # newest first
        if commit.operation is not Operation.COMPACT or not repo.is_ancestor(commit, head):
            continue
        content = repo.content_of(commit)
        if isinstance(content, Compaction):
            for digest in content.replaced():
                found.setdefault(digest, commit)
    return found
