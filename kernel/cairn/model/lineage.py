"""Ancestry and derived fields: how the context engine sets them, worked out again.

A commit's derived fields (depth, skip pointer, content type, token counts,
tokenizer) are not covered by its hash. ``Lineage`` answers ancestry
questions over commits whose derived fields are known to be right, and
``Lineage.derive`` works out what a commit's derived fields must be from its
hashed fields and the commits before it. Import uses it to recompute every
derived field of a file instead of trusting it; ``cairn.storage.check_objects``
uses it to compare what a store holds with what it should hold. One piece of
code, so the engine, import and fsck cannot drift apart.

The rules (``cairn.repo.Repo`` writes commits by them):

- ``depth`` counts first-parent ancestors; ``skip`` names the ancestor at
  ``skip_depth(depth)`` on the first-parent chain from depth 2 on, None below;
- ``last_merge`` is the commit itself for a merge, else its parent's;
- ``content_type`` is the content blob's ``content_type``, None for a delete;
- ``token_count`` is what the content costs by ``tokenizer``, 0 for a delete;
- ``cumulative_tokens`` is the parent's plus what the commit changes, never
  below 0: an append adds its tokens, an edit adds its tokens and takes away
  those of the item's current version, a delete takes those away. The current
  version is the latest edit of the item on the parent's lineage, or the item.
  A merge's count is worked out from both sides and their base (``merge_tokens``).

With merges, "on the lineage" means reachable through either parent, and the
latest change of an item is the newest one reachable (by time, then depth):
a merge resolves a conflict with a change newer than both sides'.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from cairn.model.commit import Commit, Operation, skip_depth
from cairn.model.compaction import replaced_tokens

__all__ = ["Derived", "Lineage"]

Lookup = Callable[[str], "Commit | None"]
Changes = Callable[[str], Iterable[Commit]]
#: Tokens of a commit's content by the tokenizer being derived for, or None when they cannot be counted here.
Counter = Callable[[Commit], "int | None"]


@attrs.frozen
class Derived:
    """A commit's derived fields as they must be; None in ``cumulative_tokens`` means "cannot be told here".

    ``problems`` says what is wrong with the commit's links, as (kind,
    message) pairs: ``missing_parent``, ``missing_target``, ``bad_target``
    (not an appended item on its lineage, or one already deleted) and
    ``bad_time`` (older than its parent). The engine never writes such a commit.
    """

    depth: int
    skip: str | None
    content_type: str | None
    token_count: int
    cumulative_tokens: int | None
    tokenizer: str | None
    problems: tuple[tuple[str, str], ...] = ()
    last_merge: str | None = None

    def fields(self) -> dict[str, Any]:
        """The derived fields to store (``cumulative_tokens`` must be known)."""
        return {
            "depth": self.depth,
            "skip": self.skip,
            "content_type": self.content_type,
            "token_count": self.token_count,
            "cumulative_tokens": self.cumulative_tokens,
            "tokenizer": self.tokenizer,
            **({"last_merge": self.last_merge} if self.last_merge is not None else {}),
        }


class Lineage:
    """Ancestry over commits whose depth and skip pointers are right.

    ``lookup(hash)`` returns such a commit or None; ``changes(target)`` the
    edits and deletes of ``target`` that ``lookup`` also knows (in any order).
    Every question costs O(log n) look-ups, thanks to the skip pointers.
    """

    def __init__(self, lookup: Lookup, changes: Changes) -> None:
        self.lookup = lookup
        self.changes = changes

    def ancestor_at_depth(self, commit: Commit, depth: int) -> Commit | None:
        """The ancestor of ``commit`` at ``depth`` (``commit`` itself at its own depth); None if unknown."""
        if depth > commit.depth or depth < 0:
            return None
        walk: Commit | None = commit
        while walk is not None and walk.depth > depth:
            here = walk.depth
            jump = skip_depth(here)
            jump_prev = skip_depth(here - 1)
            # Take the skip pointer unless it overshoots, or the parent's pointer gets closer.
            take_skip = walk.skip is not None and (
                jump == depth or (jump > depth and not (jump_prev < jump - 2 and jump_prev >= depth))
            )
            step = walk.skip if take_skip else walk.parent
            walk = self.lookup(step) if step is not None else None
        return walk

    def is_ancestor(self, ancestor: Commit, descendant: Commit) -> bool:
        """True when ``ancestor`` is ``descendant`` or reachable from it through either parent.

        The first-parent chain costs O(log n) look-ups; each merge under
        ``descendant`` newer than ``ancestor`` adds the same question about
        the side it merged in.
        """
        return self._reaches(ancestor, descendant, set())

    def _reaches(self, ancestor: Commit, descendant: Commit, asked: set[str]) -> bool:
        found = self.ancestor_at_depth(descendant, ancestor.depth)
        if found is not None and found.hash == ancestor.hash:
            return True
        merge_hash = descendant.last_merge
        while merge_hash is not None and merge_hash not in asked:
            asked.add(merge_hash)
            merge = self.lookup(merge_hash)
            if merge is None or merge.created_at < ancestor.created_at:
                return False  # times never decrease from a commit to its children
            side = self.lookup(merge.merge_parent) if merge.merge_parent else None
            if side is not None and self._reaches(ancestor, side, asked):
                return True
            parent = self.lookup(merge.parent) if merge.parent else None
            merge_hash = parent.last_merge if parent is not None else None
        return False

    def first_parent_of(self, ancestor: Commit, descendant: Commit) -> bool:
        """True when ``ancestor`` is on ``descendant``'s first-parent chain."""
        found = self.ancestor_at_depth(descendant, ancestor.depth)
        return found is not None and found.hash == ancestor.hash

    def latest_change(self, head: Commit | None, target: Commit) -> Commit | None:
        """The newest edit or delete of ``target`` on ``head``'s lineage (by time, then depth), or None."""
        if head is None:
            return None
        merged = head.last_merge is not None
        latest: Commit | None = None
        for change in self.changes(target.hash):
            known = self.lookup(change.hash) or change
            if not merged and known.depth > head.depth:
                continue
            if latest is None or (known.created_at, known.depth) > (latest.created_at, latest.depth):
                if self.is_ancestor(known, head):
                    latest = known
        return latest

    def tokens_at(self, head: Commit | None, item: Commit, tokenizer: str | None, count: Counter | None) -> int | None:
        """What ``item`` costs in ``head``'s effective context (0 when deleted or not there); None if unknown."""
        if head is None or not self.is_ancestor(item, head):
            return 0
        latest = self.latest_change(head, item)
        if latest is not None and latest.operation is Operation.DELETE:
            return 0
        source = latest or item
        if tokenizer is not None and source.tokenizer == tokenizer:
            return source.token_count
        return count(source) if count is not None else None

    def merge_tokens(
        self, merge: Commit, ours: Commit, theirs: Commit, tokenizer: str | None, count: Counter | None
    ) -> int | None:
        """A merge's cumulative tokens: both sides' counts less their base's, corrected for the items both changed.

        The merge's metadata names its base and the items both sides
        changed (``merge.base``, ``merge.overlap``); each of those is counted
        as it is at the merge instead of twice. None when a count is unknown.
        """
        found = merge.metadata.get("merge")
        record: dict[str, Any] = found if isinstance(found, dict) else {}
        base_hash = record.get("base")
        base = self.lookup(base_hash) if isinstance(base_hash, str) else None
        if base is None:
            return None
        total = ours.cumulative_tokens + theirs.cumulative_tokens - base.cumulative_tokens
        for digest in record.get("overlap", ()):
            item = self.lookup(digest) if isinstance(digest, str) else None
            if item is None:
                return None
            values = [self.tokens_at(c, item, tokenizer, count) for c in (ours, theirs, base, merge)]
            if any(v is None for v in values):
                return None
            at_ours, at_theirs, at_base, at_merge = values
            # None of them is None: checked just above, which mypy does not carry through any().
            total -= at_ours + at_theirs - at_base - at_merge  # type: ignore[operator]
        return max(0, total)

    def _resolves(self, commit: Commit, item: str) -> bool:
        """True when ``commit`` is a merge's resolution of ``item`` (metadata ``resolves``: the merge, which lists it)."""
        merge = self.lookup(commit.metadata["resolves"]) if isinstance(commit.metadata.get("resolves"), str) else None
        if merge is None or merge.operation is not Operation.MERGE:
            return False
        record = merge.metadata.get("merge")
        conflicts = record.get("conflicts", ()) if isinstance(record, dict) else ()
        return any(isinstance(c, dict) and c.get("item") == item for c in conflicts)

    def derive(
        self,
        commit: Commit,
        *,
        content_type: str | None,
        token_count: int | None = None,
        tokenizer: str | None = None,
        count: Counter | None = None,
    ) -> Derived:
        """What ``commit``'s derived fields must be, given its parent and target through ``lookup``.

        ``content_type`` is its content blob's type (None for a delete).
        ``token_count`` and ``tokenizer``: the commit's count by that
        tokenizer; None keeps the commit's own (a store check cannot count).
        ``count`` counts the content of an earlier commit by ``tokenizer`` when
        that commit was counted by another; without it such a cumulative count
        is unknown (None).
        """
        problems: list[tuple[str, str]] = []
        if tokenizer is None:
            tokenizer = commit.tokenizer
        tokens = commit.token_count if token_count is None else token_count
        if commit.operation in (Operation.DELETE, Operation.MERGE):
            content_type, tokens = None, 0
        parent = self.lookup(commit.parent) if commit.parent is not None else None
        if commit.parent is not None and parent is None:
            problems.append(("missing_parent", f"parent {commit.parent[:12]} is missing"))
            return Derived(commit.depth, commit.skip, content_type, tokens, None, tokenizer, tuple(problems))
        depth = parent.depth + 1 if parent is not None else 0
        skip = None
        if parent is not None and depth >= 2:
            found = self.ancestor_at_depth(parent, skip_depth(depth))
            skip = found.hash if found is not None else commit.skip
        if parent is not None and commit.created_at < parent.created_at:
            problems.append(
                ("bad_time", f"it is older than its parent {parent.short} (times only grow along a branch)")
            )
        last_merge = parent.last_merge if parent is not None else None
        base = parent.cumulative_tokens if parent is not None else 0
        cumulative: int | None = base + tokens
        if commit.operation is Operation.MERGE:
            last_merge = commit.hash
            side = self.lookup(commit.merge_parent) if commit.merge_parent else None
            if side is None:
                problems.append(("missing_parent", f"merged-in parent {str(commit.merge_parent)[:12]} is missing"))
                cumulative = None
            else:
                if commit.created_at < side.created_at:
                    problems.append(("bad_time", f"it is older than its merged-in parent {side.short}"))
                assert parent is not None
                own = attrs.evolve(commit, last_merge=commit.hash)  # its own ancestry goes through itself
                cumulative = self.merge_tokens(own, parent, side, tokenizer, count)
        elif commit.operation is Operation.COMPACT:
            cumulative = max(0, base + tokens - replaced_tokens(commit.metadata))
        elif commit.operation is not Operation.APPEND:
            removed = self._current_tokens(commit, parent, tokenizer, count, problems)
            cumulative = None if removed is None else max(0, base + tokens - removed)
        return Derived(depth, skip, content_type, tokens, cumulative, tokenizer, tuple(problems), last_merge)

    def _current_tokens(
        self,
        commit: Commit,
        parent: Commit | None,
        tokenizer: str | None,
        count: Counter | None,
        problems: list[tuple[str, str]],
    ) -> int | None:
        """Tokens of the current version of an edit's or delete's item, by ``tokenizer``; None if unknown."""
        assert commit.target is not None
        item = self.lookup(commit.target)
        if item is None:
            problems.append(("missing_target", f"target {commit.target[:12]} is missing"))
            return None
        if item.operation is not Operation.APPEND:
            problems.append(
                (
                    "bad_target",
                    f"it targets {item.short}, itself {'a' if item.operation is Operation.DELETE else 'an'} "
                    f"{item.operation.value}, not an appended item",
                )
            )
            return None
        if parent is None or not self.is_ancestor(item, parent):
            problems.append(
                (
                    "bad_target",
                    f"it targets {item.short}, which is not on its lineage (it needs an item earlier on its branch)",
                )
            )
            return None
        latest = self.latest_change(parent, item)
        if latest is not None and latest.operation is Operation.DELETE:
            if self._resolves(commit, item.hash):
                return 0  # a merge's resolution brings back an item one side deleted
            problems.append(("bad_target", f"it targets {item.short}, already deleted by {latest.short}"))
            return None
        source = latest or item
        if tokenizer is not None and source.tokenizer == tokenizer:
            return source.token_count
        return count(source) if count is not None else None
