"""The read side of the context engine: what ``Repo`` builds on and what reading history needs.

``RepoReader`` holds a store's facets and a tokenizer, and reads through
them: commits and decoded contents (cached; both are immutable, so a cache
never goes stale), ancestry in O(log n) reads (skip pointers, see
``cairn.model.lineage``), HEAD and revisions (``HEAD``, a branch, a full or
short hash, ``~N``), and token counts (the store's cache when it keeps one).

``cairn.materialize`` and ``cairn.transfer`` take a ``RepoReader``, so they
depend on this module and never on ``cairn.repo``, which calls them.
"""

from __future__ import annotations

import copy
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

from cairn.config import ContextSettings
from cairn.errors import ConflictError, IntegrityError, NotFoundError, ValidationError
from cairn.events import EventBus
from cairn.events import bus as default_bus
from cairn.model import (
    Commit,
    Content,
    ContentTypes,
    Operation,
    Priority,
    is_hash,
    validate_branch_name,
    validate_ref_text,
)
from cairn.model.lineage import Lineage
from cairn.storage import (
    BRANCH_PREFIX,
    HEAD,
    SYMBOLIC_PREFIX,
    AnnotationStore,
    Facet,
    ObjectStore,
    RefStore,
    TokenCountStore,
    branch_ref,
    require,
)
from cairn.tokenizers import Tokenizer

__all__ = ["RepoReader"]

_R = TypeVar("_R", bound="RepoReader")

_REV_RE = re.compile(r"\A(?P<base>.+?)(?:~(?P<n>\d+))?\Z")


class RepoReader:
    """A context repository's store and tokenizer, read through caches: commits, contents, ancestry, revisions, tokens."""

    def __init__(
        self,
        store: Facet,
        tokenizer: Tokenizer,
        content_types: ContentTypes,
        *,
        settings: ContextSettings | None = None,
        bus: EventBus | None = None,
    ) -> None:
        self.store = store
        #: The storage facets the engine works through (one store object, typed by facet).
        self.objects = require(store, ObjectStore, doing="the context engine")
        self.refs = require(store, RefStore, doing="the context engine")
        self.annotation_store = require(store, AnnotationStore, doing="the context engine")
        #: The token-count cache, when the backend keeps one; without it counts are made again.
        self.token_cache = store if isinstance(store, TokenCountStore) else None
        self.tokenizer = tokenizer
        self.content_types = content_types
        self.settings = settings or ContextSettings()
        self._bus = bus or default_bus
        # Commits are immutable, so a cache never goes stale.
        self._commits: OrderedDict[str, Commit] = OrderedDict()
        self._contents: OrderedDict[str, Content] = OrderedDict()
        self._cache_size = 8192
        #: Ancestry over this store (through the cache): the one implementation the engine, import and fsck share.
        self.lineage = Lineage(self._known, self._changes)
        #: The branch a view made by ``on_branch`` reads and writes instead of HEAD's.
        self.pinned_branch: str | None = None
        #: The project's config and plugins when opened by ``cairn.repo.open_repo`` (None otherwise).
        self.config: Any = None
        self.plugins: Any = None

    def on_branch(self: _R, branch: str) -> _R:
        """A view of this repository that reads and commits on ``branch`` and never moves HEAD.

        It shares the store and the caches; closing the repository closes it too (closing the view does not).
        """
        view = copy.copy(self)
        view.pinned_branch = branch
        return view

    # -- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        if self.pinned_branch is None:  # a view's store belongs to the repository it was made from
            self.store.close()

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading objects -------------------------------------------------------

    def get_commits(self, hashes: Iterable[str]) -> dict[str, Commit]:
        """Commits by hash, through the in-process cache; unknown hashes left out."""
        wanted = list(dict.fromkeys(hashes))
        found = {h: self._commits[h] for h in wanted if h in self._commits}
        missing = [h for h in wanted if h not in found]
        if missing:
            fetched = self.objects.get_commits(missing)
            for commit in fetched.values():
                self._remember(commit)
            found.update(fetched)
        return found

    def commit(self, digest: str) -> Commit:
        cached = self._commits.get(digest)
        if cached is not None:
            return cached
        commit = self.get_commits([digest]).get(digest)
        if commit is None:
            raise NotFoundError("commit", digest, hint="`cairn log` lists commits")
        return commit

    def _remember(self, commit: Commit) -> None:
        self._commits[commit.hash] = commit
        if len(self._commits) > self._cache_size:
            self._commits.popitem(last=False)

    def contents(self, hashes: Iterable[str]) -> dict[str, Content]:
        """Decode content blobs by hash (unknown types preserved as ``UnknownContent``).

        Decoded items are cached: content is addressed by its hash, so a cached
        item can never be stale.
        """
        wanted = set(hashes)
        found = {h: self._contents[h] for h in wanted if h in self._contents}
        missing = wanted - found.keys()
        if missing:
            for digest, blob in self.objects.get_blobs(missing).items():
                item = self.content_types.decode_bytes(blob)
                found[digest] = item
                self._contents[digest] = item
                if len(self._contents) > self._cache_size:
                    self._contents.popitem(last=False)
        return found

    def content_of(self, commit: Commit) -> Content | None:
        if commit.content_hash is None:
            return None
        found = self.contents([commit.content_hash])
        if commit.content_hash not in found:
            raise IntegrityError(
                f"commit {commit.short} names content {commit.content_hash[:12]}, which is missing",
                hint="run `cairn fsck`",
            )
        return found[commit.content_hash]

    # -- ancestry --------------------------------------------------------------

    def ancestor_at_depth(self, commit: Commit, depth: int) -> Commit | None:
        """The ancestor of ``commit`` at ``depth`` in O(log n) reads (skip pointers)."""
        return self.lineage.ancestor_at_depth(commit, depth)

    def is_ancestor(self, ancestor: Commit, descendant: Commit) -> bool:
        """True when ``ancestor`` is ``descendant`` or one of its ancestors."""
        return self.lineage.is_ancestor(ancestor, descendant)

    def _known(self, digest: str) -> Commit | None:
        cached = self._commits.get(digest)
        return cached if cached is not None else self.get_commits([digest]).get(digest)

    def _changes(self, target: str) -> list[Commit]:
        found = self.objects.commits_targeting([target])
        for change in found:
            self._remember(change)
        return found

    def at_time(self, head: Commit | None, moment: str) -> Commit | None:
        """The newest of ``head`` and its ancestors created at or before ``moment`` (O(log² n))."""
        if head is None or head.created_at <= moment:
            return head
        root = self.ancestor_at_depth(head, 0)
        if root is None or root.created_at > moment:
            return None
        low, high = 0, head.depth  # invariant: created_at(low) <= moment < created_at(high)
        while high - low > 1:
            middle = (low + high) // 2
            # Every depth from 0 to head.depth has an ancestor on head's lineage.
            if self.ancestor_at_depth(head, middle).created_at <= moment:  # type: ignore[union-attr]
                low = middle
            else:
                high = middle
        return self.ancestor_at_depth(head, low)

    def walk(self, head: Commit, *, first_chunk: int = 64) -> Iterator[Commit]:
        """``head`` and its ancestors (through both parents of a merge), newest first, read in growing batches."""
        for batch in self.walk_batches(head, first_chunk=first_chunk):
            yield from batch

    def walk_batches(self, head: Commit, *, first_chunk: int = 64) -> Iterator[list[Commit]]:
        """``walk`` in batches. Without merges each batch is one read along the parents (none when the cache holds it).

        With merges, each first-parent line is read in batches of its own and
        the lines are interleaved newest first (by time, then depth; the
        first parent's line first on ties); a line stops where it meets a
        commit another line already gave, so every commit comes once.
        """
        if head.last_merge is None:
            chunk = first_chunk
            start: str | None = head.hash
            while start is not None:
                # A stretch read before comes from the cache, as one batch as long as this read and the next.
                batch = self._cached_line(start, chunk * 5, at_least=chunk) or self.objects.ancestors(
                    start, limit=chunk
                )
                if not batch:
                    return
                for commit in batch:
                    self._remember(commit)
                yield batch
                start = batch[-1].parent
                chunk = min(max(chunk, len(batch)) * 4, 4096)
            return
        yield from _merged_walk(self, head, first_chunk)

    def _cached_line(self, start: str, limit: int, *, at_least: int) -> list[Commit] | None:
        """``start`` and up to ``limit - 1`` of its first-parent ancestors from the cache alone, or None.

        None unless the cache holds at least ``at_least`` of them (or every
        one down to the root): commits never change, so a walk that read
        this stretch before needs no round trip to the store to read it
        again; a short hit goes to the store, so batches keep their size.
        """
        cache = self._commits
        out: list[Commit] = []
        digest: str | None = start
        while digest is not None and len(out) < limit:
            commit = cache.get(digest)
            if commit is None:
                break
            out.append(commit)
            digest = commit.parent
        return out if len(out) >= at_least or (out and digest is None) else None

    # -- HEAD and revisions ----------------------------------------------------

    def _ensure_head(self) -> str:
        value = self.refs.get_ref(HEAD)
        if value is None:
            value = SYMBOLIC_PREFIX + branch_ref(self.settings.default_branch)
            try:
                self.refs.set_ref(HEAD, value, expected=None)
            except ConflictError:
                value = self.refs.get_ref(HEAD) or value
        return value

    def head_state(self) -> tuple[str | None, str | None]:
        """(branch ref HEAD points to or None when detached, HEAD's commit hash or None when unborn)."""
        if self.pinned_branch is not None:
            ref = branch_ref(self.pinned_branch)
            return ref, self.refs.get_ref(ref)
        value = self._ensure_head()
        if value.startswith(SYMBOLIC_PREFIX):
            ref = value[len(SYMBOLIC_PREFIX) :]
            return ref, self.refs.get_ref(ref)
        return None, value

    @property
    def branch(self) -> str | None:
        """The current branch name, or None on a detached HEAD."""
        ref, _ = self.head_state()
        return ref[len(BRANCH_PREFIX) :] if ref else None

    def head(self) -> Commit | None:
        _, digest = self.head_state()
        return self.commit(digest) if digest else None

    def resolve(self, rev: str | None = None) -> Commit:
        """A commit from a revision: a full or short hash, a branch, ``HEAD``, with an optional ``~N``."""
        rev = "HEAD" if rev is None else rev.strip()
        match = _REV_RE.match(rev)
        if not match:
            raise NotFoundError("revision", rev)
        base, steps = match.group("base"), int(match.group("n") or 0)
        commit = self._resolve_base(base)
        if steps:
            target = self.ancestor_at_depth(commit, commit.depth - steps)
            if target is None:
                raise NotFoundError("revision", rev, hint=f"{base} has only {commit.depth} ancestors")
            commit = target
        return commit

    def _resolve_base(self, base: str) -> Commit:
        """Git's order: HEAD, a full hash of a stored commit, a branch, then a unique short hash."""
        if base == HEAD:
            ref, digest = self.head_state()
            if digest is None:
                raise NotFoundError("commit", "HEAD", hint="the branch has no commits yet")
            return self.commit(digest)
        lowered = base.lower()
        if is_hash(lowered):
            found = self.get_commits([lowered]).get(lowered)
            if found is not None:
                return found
        name = base[len(BRANCH_PREFIX) :] if base.startswith(BRANCH_PREFIX) else base
        validate_ref_text(name, what="revision")  # text a command line could not encode stops here
        branch_value = self.refs.get_ref(branch_ref(name)) if _looks_like_branch(name) else None
        if branch_value:
            return self.commit(branch_value)
        if re.fullmatch(r"[0-9a-f]{4,63}", lowered):
            matches = self.objects.find_commits(lowered, limit=2)
            if len(matches) == 1:
                return self.commit(matches[0])
            if len(matches) > 1:
                raise ValidationError(f"short hash {base!r} is ambiguous", hint="give more digits")
        raise NotFoundError("commit or branch", base, hint="`cairn log` lists commits, `cairn branch` branches")

    # -- token counts ----------------------------------------------------------

    def count_content(self, content: Content) -> int:
        """Tokens an item costs in a request (rendered messages with their overhead)."""
        return sum(self.tokenizer.count_message(m) for m in content.render())

    def source_tokens(self, sources: Iterable[Commit], contents: Mapping[str, Content]) -> dict[str, int]:
        """Token counts of the contents ``sources`` (appends and edits) carry, by content hash.

        A commit counted by this repository's tokenizer already knows its
        count; only the others go to the cache (and, on a miss, the tokenizer).
        """
        name = self.tokenizer.name
        counts: dict[str, int] = {}
        others: dict[str, Content] = {}
        for source in sources:
            digest = source.content_hash
            if digest is None or digest in counts:
                continue
            if source.tokenizer == name:
                counts[digest] = source.token_count
            elif digest in contents:
                others[digest] = contents[digest]
        if others:
            counts.update(self.token_counts(others))
        return counts

    def token_counts(self, items: Mapping[str, Content]) -> dict[str, int]:
        """Token counts of contents by hash, through the store's cache; misses are counted and cached."""
        cache = self.token_cache
        counts = cache.get_token_counts(self.tokenizer.name, items.keys()) if items and cache is not None else {}
        missing = {h: self.count_content(c) for h, c in items.items() if h not in counts}
        if missing:
            if cache is not None:
                cache.put_token_counts(self.tokenizer.name, missing)
            counts.update(missing)
        return counts

    def effective_tokens(self, head: Commit | None = None) -> int:
        """Tokens of the effective context at ``head`` (default HEAD): edits, deletes and skips applied, reply priming included."""
        head = head if head is not None else self.head()
        if head is None:
            return 0
        total = head.cumulative_tokens - self._skipped_tokens(head)
        return total + self.tokenizer.overhead.reply_priming if total > 0 else 0

    def _skipped_tokens(self, head: Commit) -> int:
        skipped = self.annotation_store.annotated(Priority.SKIP)
        if not skipped:
            return 0
        total = 0
        for digest in skipped:
            commit = self.get_commits([digest]).get(digest)
            if commit is None or not self.is_ancestor(commit, head):
                continue
            latest, deleted = self._effective(head, commit)
            if not deleted:
                total += self._tokens_of_commit_content(latest or commit)
        return total

    def _effective(self, head: Commit | None, target: Commit) -> tuple[Commit | None, bool]:
        """(latest edit of ``target`` on ``head``'s lineage or None, whether it is deleted there)."""
        latest = self.lineage.latest_change(head, target)
        if latest is not None and latest.operation is Operation.DELETE:
            return latest, True
        return latest, False

    def _tokens_of_commit_content(self, commit: Commit) -> int:
        if commit.content_hash is None:
            return 0
        if commit.tokenizer == self.tokenizer.name:
            return commit.token_count
        content = self.content_of(commit)
        assert content is not None
        return self.token_counts({commit.content_hash: content})[commit.content_hash]


class _Line:
    """One first-parent line of a merged history, read in growing batches."""

    def __init__(self, reader: RepoReader, start: str, side: int, chunk: int) -> None:
        self.reader = reader
        self.next: str | None = start
        self.side = side
        self.chunk = chunk
        self.buffer: list[Commit] = []

    def peek(self) -> Commit | None:
        if not self.buffer and self.next is not None:
            batch = self.reader.objects.ancestors(self.next, limit=self.chunk)
            self.chunk = min(self.chunk * 4, 4096)
            self.buffer = batch[::-1]
            self.next = batch[-1].parent if batch else None
        return self.buffer[-1] if self.buffer else None


def _merged_walk(reader: RepoReader, head: Commit, first_chunk: int) -> Iterator[list[Commit]]:
    import heapq

    seen: set[str] = set()
    lines = [_Line(reader, head.hash, 0, first_chunk)]
    heap: list[tuple[tuple[str, int, int], int]] = []  # newest first: (inverted time key, line number)

    def push(number: int) -> None:
        top = lines[number].peek()
        if top is not None:
            heapq.heappush(heap, (_newest_first(top, lines[number].side), number))

    push(0)
    batch: list[Commit] = []
    while heap:
        _, number = heapq.heappop(heap)
        line = lines[number]
        commit = line.buffer.pop()
        if commit.hash in seen:
            continue  # this line joined one already walked: the rest comes from there
        seen.add(commit.hash)
        reader._remember(commit)
        batch.append(commit)
        if commit.merge_parent is not None and commit.merge_parent not in seen:
            lines.append(_Line(reader, commit.merge_parent, 1, first_chunk))
            push(len(lines) - 1)
        push(number)
        if len(batch) >= 256:
            yield batch
            batch = []
    if batch:
        yield batch


def _newest_first(commit: Commit, side: int) -> tuple[str, int, int]:
    """A heap key that pops the newest commit first: time and depth inverted, the first parent's line first."""
    inverted = commit.created_at.translate(_INVERT)
    return inverted, -commit.depth, side


#: Inverts the digits of a stored time, so that later times sort first (stored times all have one width).
_INVERT = str.maketrans("0123456789", "9876543210")


def _looks_like_branch(name: str) -> bool:
    try:
        validate_branch_name(name, existing=True)
    except ValidationError:
        return False
    return True
