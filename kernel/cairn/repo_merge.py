"""Merging branches and picking single commits onto one.

``merge`` fast-forwards when the current branch is an ancestor of the one
merged in, and otherwise writes a merge commit with two parents (``parent``:
ours, ``merge_parent``: theirs). Its metadata records the merge base, the
items both sides changed (``overlap``) and every conflict with how it was
resolved, so its derived counts can be worked out again anywhere
(``cairn.model.lineage``) and the history says what happened.

A conflict is an item both sides changed differently since the base: both
edited it to different content, or one edited and the other deleted it. A
merge with conflicts raises ``MergeConflictError`` and writes nothing, unless
a strategy (``ours`` or ``theirs``) resolves them all; when the version it
keeps is not already the newer one, a resolution commit (an edit, or a
delete, with ``metadata.resolves`` naming the merge) follows the merge in the
same transaction. Priorities are annotations, which hold on every branch at
once, so the two sides of a merge never disagree about one.

After a merge the materialized order is: the base's items, then both sides'
items by commit time, ours first on equal times (``cairn.materialize``). The
order comes from hashed fields only, so it is the same on every backend and
after export and import.

``cherry_pick`` applies one commit's operation on the current branch: an
append appends the same content, an edit or delete changes the same item,
which must be on the current branch (otherwise it is a conflict).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from typing import Any

import attrs

from cairn.errors import ConflictError, MergeConflictError, ValidationError
from cairn.events import EventName
from cairn.model import Commit, Operation, format_time, parse_time, skip_depth
from cairn.repo_reader import RepoReader
from cairn.storage import BRANCH_PREFIX, RefUpdate

__all__ = ["Conflict", "MergeResult", "RepoMerge", "STRATEGIES"]

STRATEGIES = ("ours", "theirs")
_RETRIES = 100


@attrs.frozen
class Conflict:
    """An item both sides of a merge changed differently: ``kind`` is edit/edit, edit/delete or delete/edit."""

    item: str
    kind: str
    ours: str  # our latest change of the item
    theirs: str  # their latest change of the item

    def to_dict(self) -> dict[str, str]:
        return {"item": self.item, "kind": self.kind, "ours": self.ours, "theirs": self.theirs}


@attrs.frozen
class MergeResult:
    """What ``Repo.merge`` did: ``up_to_date``, ``fast_forward`` or ``merge``, and the commit the branch is at."""

    kind: str
    head: str
    base: str | None = None
    merge: Commit | None = None
    conflicts: tuple[Conflict, ...] = ()
    resolutions: tuple[Commit, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "head": self.head,
            "base": self.base,
            "merge": self.merge.hash if self.merge else None,
            "conflicts": [c.to_dict() for c in self.conflicts],
            "resolutions": [c.hash for c in self.resolutions],
        }


def _later(moment: str) -> str:
    """One microsecond after ``moment``."""
    return format_time(parse_time(moment) + _dt.timedelta(microseconds=1))


def _newest(changes: Iterable[Commit]) -> dict[str, Commit]:
    """Each target's newest change (by time, then depth) among ``changes``."""
    out: dict[str, Commit] = {}
    for change in changes:
        if change.operation not in (Operation.EDIT, Operation.DELETE):
            continue
        # An edit or a delete names its target (Commit.validate).
        known = out.get(change.target)  # type: ignore[arg-type]
        if known is None or (change.created_at, change.depth) > (known.created_at, known.depth):
            out[change.target] = change  # type: ignore[index]  # as above
    return out


def _same_effect(a: Commit, b: Commit) -> bool:
    return a.operation is b.operation and a.content_hash == b.content_hash


class RepoMerge(RepoReader):
    """The merge and cherry-pick operations of ``Repo``."""

    def _clock(self) -> str:  # pragma: no cover - Repo overrides it with its replaceable clock
        raise NotImplementedError

    def _notify(self, commit: Commit, ref: str | None) -> None:  # pragma: no cover - Repo overrides it
        raise NotImplementedError

    # -- ancestry over both parents ---------------------------------------------

    def merge_base(self, a: Commit, b: Commit) -> Commit | None:
        """The newest commit on ``a``'s first-parent chain that ``b`` reaches, or None for unrelated histories.

        Ancestry is monotone along a first-parent chain, so a binary search
        over depth finds it in O(log n) ancestry questions.
        """
        fork = self._fork_point(a, b)
        if fork is not None and all(
            h.last_merge is None or self.is_ancestor(self.commit(h.last_merge), fork) for h in (a, b)
        ):
            return fork  # no merge on either line since they forked: the fork point is the base
        root = self.ancestor_at_depth(a, 0)
        if root is None or not self.is_ancestor(root, b):
            return None
        low, high = 0, a.depth + 1  # invariant: low reaches b; high does not (or is past a)
        while high - low > 1:
            middle = (low + high) // 2
            # middle <= a.depth, and every depth up to a's has an ancestor on its first-parent line.
            if self.is_ancestor(self.ancestor_at_depth(a, middle), b):  # type: ignore[arg-type]
                low = middle
            else:
                high = middle
        return self.ancestor_at_depth(a, low)

    def _fork_point(self, a: Commit, b: Commit) -> Commit | None:
        """Where ``a``'s and ``b``'s first-parent chains meet, or None: both walked back in step, by skip pointers
        where they still differ (as Bitcoin's ``LastCommonAncestor``), so O(log n) reads."""
        x: Commit | None = a
        y: Commit | None = b
        if a.depth > b.depth:
            x = self.ancestor_at_depth(a, b.depth)
        elif b.depth > a.depth:
            y = self.ancestor_at_depth(b, a.depth)
        while x is not None and y is not None and x.hash != y.hash:
            if x.skip is not None and y.skip is not None and x.skip != y.skip:
                x, y = self._known(x.skip), self._known(y.skip)
            else:
                x = self._known(x.parent) if x.parent else None
                y = self._known(y.parent) if y.parent else None
        return x if x is not None and y is not None else None

    def side_commits(self, head: Commit, base: Commit) -> list[Commit]:
        """Every commit ``head`` reaches that ``base`` does not (both parents followed), newest first by time.

        Each first-parent stretch is read in one batch: where it meets
        ``base``'s history is found by a binary search, since ancestry is
        monotone along a first-parent chain.
        """
        out: dict[str, Commit] = {}
        stack = [head]
        while stack:
            start = stack.pop()
            if start.hash in out or self.is_ancestor(start, base):
                continue
            low, high = -1, start.depth  # low: reaches into base's history (or none); high: does not
            while high - low > 1:
                middle = (low + high) // 2
                # 0 <= middle < start.depth: an ancestor at that depth exists.
                if self.is_ancestor(self.ancestor_at_depth(start, middle), base):  # type: ignore[arg-type]
                    low = middle
                else:
                    high = middle
            for commit in self.objects.ancestors(start.hash, limit=start.depth - low):
                if commit.hash in out:
                    break
                self._remember(commit)
                out[commit.hash] = commit
                if commit.merge_parent is not None:
                    stack.append(self.commit(commit.merge_parent))
        return sorted(out.values(), key=lambda c: (c.created_at, c.depth, c.hash), reverse=True)

    def _side_changes(self, head: Commit, base: Commit) -> dict[str, Commit]:
        """The newest edit or delete of each item that ``head`` reaches and ``base`` does not.

        Without a merge on ``head``'s line since ``base``, every such commit
        descends from ``base`` and so is no older: the changes since
        ``base``'s time (an indexed read) filtered by ancestry are all there
        is, and no append is read. Otherwise every commit of the side is read.
        """
        merge = self._known(head.last_merge) if head.last_merge is not None else None
        if merge is not None and not self.is_ancestor(merge, base):
            return _newest(self.side_commits(head, base))
        changes = []
        for change in self.objects.changes_since(base.created_at):
            self._remember(change)
            if change.depth > base.depth and self.lineage.first_parent_of(change, head):
                changes.append(change)
        return _newest(changes)

    # -- merge --------------------------------------------------------------------

    def merge(self, branch: str, *, strategy: str | None = None, message: str | None = None) -> MergeResult:
        """Merge ``branch`` (any revision) into the current branch; see the module docstring.

        Raises ``MergeConflictError`` (nothing written) when both sides
        changed an item differently and no ``strategy`` is given.
        """
        if strategy is not None and strategy not in STRATEGIES:
            raise ValidationError(f"unknown merge strategy {strategy!r}", hint="use ours or theirs")
        if message is not None and not isinstance(message, str):
            raise ValidationError("must be a string", what="merge", field="message")
        for _ in range(_RETRIES):
            ref, ours_hash = self.head_state()
            if ref is None:
                raise ValidationError(
                    "HEAD is detached: there is no branch to merge into",
                    hint="switch to a branch first (`cairn switch NAME`)",
                )
            theirs = self.resolve(branch)
            try:
                result = self._merge_once(ref, ours_hash, theirs, branch, strategy, message)
            except ConflictError:
                continue  # another writer moved the branch: merge into its new head
            return result
        raise ConflictError(ref or "HEAD", None, None, hint=f"gave up after {_RETRIES} attempts under heavy contention")

    def _merge_once(
        self,
        ref: str,
        ours_hash: str | None,
        theirs: Commit,
        branch: str,
        strategy: str | None,
        message: str | None,
    ) -> MergeResult:
        ours = self.commit(ours_hash) if ours_hash else None
        if ours is not None and self.is_ancestor(theirs, ours):
            return MergeResult("up_to_date", ours.hash)
        if ours is None or self.is_ancestor(ours, theirs):
            self.refs.update_refs([RefUpdate(ref, theirs.hash, ours_hash)])
            self._bus.publish(
                EventName.BRANCH_CHANGED,
                {"branch": ref[len(BRANCH_PREFIX) :], "action": "fast_forward", "commit": theirs.hash},
            )
            return MergeResult("fast_forward", theirs.hash, base=ours_hash)
        base = self.merge_base(ours, theirs)
        if base is None:
            raise ValidationError(
                f"{branch} and the current branch have no commit in common",
                hint="cherry-pick the commits you need instead (`cairn cherry-pick REV`)",
            )
        ours_changes, theirs_changes = self._side_changes(ours, base), self._side_changes(theirs, base)
        overlap = sorted(ours_changes.keys() & theirs_changes.keys())
        conflicts = []
        for item in overlap:
            mine, other = ours_changes[item], theirs_changes[item]
            if not _same_effect(mine, other):
                conflicts.append(
                    Conflict(item, f"{mine.operation.value}/{other.operation.value}", mine.hash, other.hash)
                )
        if conflicts and strategy is None:
            raise MergeConflictError(branch, conflicts)
        return self._write_merge(ref, ours, theirs, base, branch, strategy, message, overlap, conflicts)

    def _write_merge(
        self,
        ref: str,
        ours: Commit,
        theirs: Commit,
        base: Commit,
        branch: str,
        strategy: str | None,
        message: str | None,
        overlap: list[str],
        conflicts: list[Conflict],
    ) -> MergeResult:
        created_at = max(self._clock(), ours.created_at, theirs.created_at)
        here = self.branch or "HEAD"
        record = {
            "base": base.hash,
            "branch": branch,
            "strategy": strategy,
            "overlap": overlap,
            "conflicts": [{**c.to_dict(), "took": strategy} for c in conflicts],
        }
        depth = ours.depth + 1
        skip_to = self.ancestor_at_depth(ours, skip_depth(depth)) if depth >= 2 else None
        merge = Commit.new(
            parent=ours.hash,
            operation=Operation.MERGE,
            content_hash=None,
            merge_parent=theirs.hash,
            message=message if message is not None else f"Merge {branch} into {here}",
            metadata={"merge": record},
            created_at=created_at,
            depth=depth,
            skip=skip_to.hash if skip_to else None,
            tokenizer=self.tokenizer.name,
        )
        merge = attrs.evolve(merge, last_merge=merge.hash)
        self._remember(merge)  # its ancestry questions read it back through the cache
        counter = self._count_other
        cumulative = self.lineage.merge_tokens(merge, ours, theirs, self.tokenizer.name, counter)
        merge = attrs.evolve(merge, cumulative_tokens=cumulative or 0)
        self._remember(merge)
        commits = [merge]
        head = merge
        moment = created_at
        for conflict in conflicts:
            chosen = self.commit(conflict.ours if strategy == "ours" else conflict.theirs)
            other = self.commit(conflict.theirs if strategy == "ours" else conflict.ours)
            if (chosen.created_at, chosen.depth) > (other.created_at, other.depth):
                continue  # already the newer change: it is what the merge shows
            moment = max(moment, _later(max(chosen.created_at, other.created_at)), head.created_at)
            item = self.commit(conflict.item)
            current = self.lineage.tokens_at(head, item, self.tokenizer.name, counter) or 0
            tokens = self._tokens_of_commit_content(chosen) if chosen.operation is Operation.EDIT else 0
            depth = head.depth + 1
            skip_to = self.ancestor_at_depth(head, skip_depth(depth)) if depth >= 2 else None
            head = Commit.new(
                parent=head.hash,
                operation=chosen.operation,
                content_hash=chosen.content_hash,
                target=conflict.item,
                message=f"Resolve {conflict.item[:12]} ({conflict.kind}): take {strategy}",
                metadata={"resolves": merge.hash},
                created_at=moment,
                content_type=chosen.content_type,
                token_count=tokens,
                cumulative_tokens=max(0, head.cumulative_tokens + tokens - current),
                depth=depth,
                skip=skip_to.hash if skip_to else None,
                tokenizer=self.tokenizer.name,
                last_merge=merge.hash,
            )
            self._remember(head)
            commits.append(head)
        self.objects.write(commits=commits, refs=[RefUpdate(ref, head.hash, ours.hash)])
        for commit in commits:
            self._notify(commit, ref)
        return MergeResult(
            "merge", head.hash, base=base.hash, merge=merge, conflicts=tuple(conflicts), resolutions=tuple(commits[1:])
        )

    def _count_other(self, commit: Commit) -> int:
        """Tokens of ``commit``'s content by this repository's tokenizer."""
        return self._tokens_of_commit_content(commit)

    # -- cherry-pick -------------------------------------------------------------

    def _cherry_pick_plan(self, rev: str) -> tuple[Commit, str]:
        """The commit to pick and the operation's description; refuses what cannot be picked."""
        picked = self.resolve(rev)
        if picked.operation is Operation.MERGE:
            raise ValidationError(
                f"commit {picked.short} is a merge", hint="merge its branch instead (`cairn merge BRANCH`)"
            )
        head = self.head()
        if head is not None and self.is_ancestor(picked, head):
            raise ValidationError(f"commit {picked.short} is already on the current branch")
        if picked.operation is not Operation.APPEND:
            # Not an append, so it names its target (Commit.validate).
            item = self.commit(picked.target)  # type: ignore[arg-type]
            if head is None or not self.is_ancestor(item, head):
                raise MergeConflictError(
                    picked.short,
                    [Conflict(item.hash, f"{picked.operation.value}/absent", "", picked.hash)],
                )
        return picked, picked.operation.value
