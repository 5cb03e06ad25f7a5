"""Rules of ``cairn.materialize``: the order of materialized items, which named directives are in force,
which items compactions replaced, and what a request costs by the tokenizer's own count.

Kept apart so each stays small; they work on the materializer's candidates
(an item's commit, its content, priority and whether it is deleted) and
its items (messages and token counts).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs

from cairn.errors import BudgetExceededError
from cairn.model import Commit, Instruction, Operation, Priority, ToolIO
from cairn.model.compaction import Compaction, Summary
from cairn.tokenizers import Tokenizer

if TYPE_CHECKING:  # pragma: no cover
    from cairn.repo_reader import RepoReader

__all__ = [
    "CompactionIndex",
    "compacted_items",
    "compaction_index",
    "fit_request",
    "order_key",
    "request_tokens",
    "superseded_directives",
]


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


def request_tokens(tokenizer: Tokenizer, items: Iterable[Any]) -> int:
    """What ``tokenizer`` says the messages of ``items`` cost as one request (its ``count_messages``).

    Each item's ``tokens`` is the sum of its messages' ``count_message``, so
    for a tokenizer that keeps the base class's rule (per-message counts plus
    the reply priming once) this equals the items' sum plus the priming; a
    tokenizer that counts a request otherwise is asked, and honoured. The
    first case is answered from the items' (cached) counts, without counting
    any text again.
    """
    if type(tokenizer).count_messages is Tokenizer.count_messages:
        total = sum(item.tokens for item in items)
        return total + tokenizer.overhead.reply_priming if total else 0
    return tokenizer.count_messages([m for item in items for m in item.messages])


def fit_request(
    tokenizer: Tokenizer, items: list[Any], budget: int, keep: set[str]
) -> tuple[list[Any], int, list[Any]]:
    """Leave out the oldest items not in ``keep`` (a tool call with its results) until the request fits ``budget``.

    Returns the items kept, their count, and the items left out.
    """
    out = list(items)
    dropped: list[Any] = []
    count = request_tokens(tokenizer, out)
    while count > budget:
        excess = count - budget
        gone: set[str] = set()
        freed = 0
        for item in out:
            if freed >= excess:
                break
            if item.item in keep or item.item in gone:
                continue
            group = [item]
            if isinstance(item.content, ToolIO) and item.content.call_id:
                group = [i for i in out if isinstance(i.content, ToolIO) and i.content.call_id == item.content.call_id]
            if any(i.item in keep for i in group):
                continue
            gone.update(i.item for i in group)
            freed += sum(i.tokens for i in group)
        if not gone:
            raise BudgetExceededError(
                count,
                budget,
                what="pinned items and instructions",
                hint="raise the budget, or unpin or skip some of them",
            )
        dropped.extend(i for i in out if i.item in gone)
        out = [i for i in out if i.item not in gone]
        count = request_tokens(tokenizer, out)
    return out, count, dropped


@attrs.frozen
class CompactionIndex:
    """What the materializer needs of one compaction, worked out once per process (by content hash)."""

    parts: tuple[Summary, ...]
    hashes: tuple[str, ...]  # each part's content hash
    anchors: dict[str, int]  # the first item a part replaces -> the part's index
    members: frozenset[str]  # every item the compaction replaces
    spans: tuple[tuple[str, ...], ...]  # contiguous runs (Compaction.spans)


_INDEXES: OrderedDict[str, CompactionIndex] = OrderedDict()
_INDEXES_LOCK = threading.Lock()
_INDEXES_KEPT = 64


def compaction_index(repo: RepoReader, commit: Commit) -> CompactionIndex | None:
    """The index of a compact commit's content (None if it carries no compaction), cached by content hash."""
    key = commit.content_hash or ""
    with _INDEXES_LOCK:
        found = _INDEXES.get(key)
        if found is not None:
            _INDEXES.move_to_end(key)
            return found
    content = repo.content_of(commit)
    if not isinstance(content, Compaction):
        return None
    parts = content.parts()
    found = CompactionIndex(
        parts,
        tuple(p.hash for p in parts),
        {p.replaces[0]: i for i, p in enumerate(parts)},
        frozenset(content.replaced()),
        tuple(content.spans()),
    )
    with _INDEXES_LOCK:
        _INDEXES[key] = found
        if len(_INDEXES) > _INDEXES_KEPT:
            _INDEXES.popitem(last=False)
    return found


def compacted_items(repo: RepoReader, head: Commit, moment: str | None = None) -> dict[str, Commit]:
    """Items on ``head``'s lineage a compaction there replaced: item -> the newest such compaction.

    Compactions are found through the content-type index, so the cost grows
    with the number of compactions, not with the length of history.
    """
    found: dict[str, Commit] = {}
    for commit in repo.objects.commits_by_type("compaction", until=moment):  # newest first
        if commit.operation is not Operation.COMPACT or not repo.is_ancestor(commit, head):
            continue
        index = compaction_index(repo, commit)
        if index is not None:
            for digest in index.members:
                found.setdefault(digest, commit)
    return found
