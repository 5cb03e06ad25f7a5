"""The materializer's walk back through history (``cairn.materialize``), and what it reports left out.

``_Walk`` reads history back from the head in batches, resolving edits,
deletes, annotations and compactions into candidates; a contiguous run a
compaction replaced is stepped over unread, so the walk's cost follows the
budget, not what was compacted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from cairn.materialize_rules import CompactionIndex, compaction_index
from cairn.model import Commit, Content, Operation, Priority

if TYPE_CHECKING:  # pragma: no cover
    from cairn.repo_reader import RepoReader

__all__ = ["Dropped", "Stepped", "expand_dropped"]


@attrs.frozen
class Dropped:
    """An item left out, and why: deleted | skipped | budget | superseded (a named instruction a newer one
    of its name replaces) | held_back (reasoning, unless asked for) | compacted (a compaction's summary
    stands for it) | a tool reason (``cairn.materialize_tools.TOOL_REASONS``: pending_tool_call,
    orphaned_tool_call, orphaned_tool_result ...)."""

    commit: str
    reason: str
    tokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"commit": self.commit, "reason": self.reason, "tokens": self.tokens}


@attrs.frozen
class Stepped:
    """The items of a compacted run the walk stepped over unread, each dropped as ``compacted``, newest first.

    Listed only when asked (``expand_dropped``), so stepping over a long run costs nothing.
    """

    span: tuple[str, ...]  # the run, oldest first
    seen: frozenset[str]  # those the walk read anyway (reported on their own)

    def dropped(self) -> Iterator[Dropped]:
        return (Dropped(h, "compacted") for h in reversed(self.span[1:-1]) if h not in self.seen)


def expand_dropped(entries: Iterable[Dropped | Stepped]) -> Iterator[Dropped]:
    for entry in entries:
        if isinstance(entry, Stepped):
            yield from entry.dropped()
        else:
            yield entry


@attrs.define
class _Candidate:
    commit: Commit
    source: Commit
    content: Content | None  # None when deleted or compacted away
    priority: Priority
    tokens: int
    deleted: bool
    compacted: bool = False  # replaced by a summary shown at another item's place
    shown_hash: str | None = None  # the hash of a summary's content (its compaction carries it)


class _Walk:
    """Reads history back from the head in batches, resolving edits, deletes and annotations."""

    def __init__(
        self, repo: RepoReader, head: Commit, moment: str | None, exclude: set[str], compaction: bool = True
    ) -> None:
        self.repo = repo
        self.head = head
        self.moment = moment
        self.exclude = exclude
        self.changes: dict[str, Commit] = {}  # target -> newest edit/delete seen
        # A compaction comes after every item it replaces, so the walk meets it first; newest first.
        self.compaction = compaction
        self.compactions: list[tuple[Commit, CompactionIndex]] = []
        self.spans: dict[str, tuple[str, ...]] = {}  # a contiguous run's newest item -> the run

    def _compaction(self, commit: Commit) -> None:
        index = compaction_index(self.repo, commit)
        if index is None:
            return  # a compact commit always carries one (Repo.compact); anything else is left alone
        self.compactions.append((commit, index))
        for span in index.spans:
            self.spans.setdefault(span[-1], span)

    def _replaced(self, digest: str) -> tuple[Commit, CompactionIndex, int | None] | None:
        """(the newest compaction replacing ``digest``, its index, the part shown at ``digest`` or None)."""
        for commit, index in self.compactions:
            if digest in index.members:
                return commit, index, index.anchors.get(digest)
        return None

    def __iter__(self) -> Iterator[_Candidate | Stepped]:
        repo = self.repo
        if self.head.last_merge is not None:
            for batch in repo.walk_batches(self.head):
                yield from self._batch(batch)
            return
        # As walk_batches, but a contiguous compacted run is stepped over from its newest item to its
        # first (where its summary stands) unread: the walk's cost follows the budget, not what was compacted.
        chunk, start = 64, self.head.hash  # type: int, str | None
        while start is not None:
            batch = repo.objects.ancestors(start, limit=chunk)
            if not batch:
                return
            for commit in batch:
                repo._remember(commit)
            yield from self._batch(batch)
            start, chunk = batch[-1].parent, min(chunk * 4, 4096)
            seen = {c.hash for c in batch}
            for commit in batch:
                span = self.spans.get(commit.hash)
                if span is not None and span[0] not in seen:
                    yield Stepped(span, frozenset(seen))
                    start = span[0]
                    break

    def _batch(self, batch: list[Commit]) -> Iterator[_Candidate]:
        repo = self.repo
        appends: list[Commit] = []
        for commit in batch:
            if commit.operation is Operation.APPEND:
                if commit.hash not in self.exclude:
                    appends.append(commit)
            elif commit.operation is Operation.COMPACT:
                if self.compaction:
                    self._compaction(commit)
            elif commit.target is not None and commit.target not in self.changes:
                self.changes[commit.target] = commit
        if not appends:
            return
        hits = {c.hash: found for c in appends if (found := self._replaced(c.hash)) is not None}
        if hits:
            yield from self._summarised(appends, hits)
            appends = [c for c in appends if c.hash not in hits]
        if not appends:
            return
        sources = {c.hash: self.changes.get(c.hash, c) for c in appends}
        wanted = {s.content_hash for s in sources.values() if s.operation is not Operation.DELETE}
        # Every commit but a delete carries content (Commit.validate), so these hashes are all set.
        contents = repo.contents(wanted)  # type: ignore[arg-type]
        tokens = repo.source_tokens(sources.values(), contents)
        notes = repo.annotation_store.latest_annotations([c.hash for c in appends], as_of=self.moment)
        for commit in appends:
            source = sources[commit.hash]
            if source.operation is Operation.DELETE:
                yield _Candidate(commit, source, None, Priority.NORMAL, 0, True)
                continue
            # Not a delete, so source.content_hash is set.
            content = contents[source.content_hash]  # type: ignore[index]
            note = notes.get(commit.hash)
            priority = note.priority if note else content.hints.default_priority
            yield _Candidate(commit, source, content, priority, tokens[source.content_hash], False)  # type: ignore[index]  # as above

    def _summarised(
        self, appends: list[Commit], hits: dict[str, tuple[Commit, CompactionIndex, int | None]]
    ) -> Iterator[_Candidate]:
        """Candidates of the items in ``appends`` a compaction replaced: its summary where the first stood."""
        shown = {digest: hit for digest, hit in hits.items() if hit[2] is not None}
        parts = {index.hashes[n]: index.parts[n] for _, index, n in shown.values() if n is not None}
        tokens = self.repo.token_counts(parts) if parts else {}
        notes = self.repo.annotation_store.latest_annotations(list(shown), as_of=self.moment) if shown else {}
        for commit in appends:
            hit = hits.get(commit.hash)
            if hit is None:
                continue
            compaction, index, n = hit
            if n is None:
                yield _Candidate(commit, compaction, None, Priority.NORMAL, 0, False, compacted=True)
                continue
            note = notes.get(commit.hash)
            priority = Priority.SKIP if note is not None and note.priority is Priority.SKIP else Priority.NORMAL
            digest = index.hashes[n]
            yield _Candidate(commit, compaction, index.parts[n], priority, tokens[digest], False, shown_hash=digest)
