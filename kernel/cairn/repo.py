"""The context engine: commit, edit, delete, branch, annotate, budget, log, diff, export.

A ``Repo`` works over any store with the objects, refs and annotations facets and any ``Tokenizer``. History is a tree
of commits (no merges): each append adds a content item, each edit replaces
the content of an earlier item in what is materialized, each delete removes
one (history keeps it). Refs move only by compare-and-swap; a writer that
loses the race re-reads the branch and tries again, so two writers on one
branch never lose a commit.

Every commit records its token count and the cumulative effective token count
of its branch (after edits and deletes), so a budget check costs O(1) reads
plus one per skipped item, however long the history. Each commit also keeps
its depth and a skip pointer to an ancestor (``cairn.model.skip_depth``), so
"is X an ancestor of Y" and "the ancestor at time T" cost O(log n) reads.
"""

from __future__ import annotations

import re
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from cairn.config import Config, ContextSettings
from cairn.errors import (
    BudgetExceededError,
    ConflictError,
    IntegrityError,
    NotFoundError,
    ValidationError,
)
from cairn.events import EventBus, EventName
from cairn.events import bus as default_bus
from cairn.model import (
    Annotation,
    Commit,
    Content,
    ContentTypes,
    Operation,
    Priority,
    format_time,
    is_hash,
    now,
    parse_time,
    sha256_hex,
    skip_depth,
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
    RefUpdate,
    TokenCountStore,
    branch_ref,
    require,
)
from cairn.tokenizers import Tokenizer

if TYPE_CHECKING:  # pragma: no cover
    from cairn.transfer import ImportReport

__all__ = [
    "Budget",
    "BudgetWarning",
    "DiffEntry",
    "LogEntry",
    "Repo",
    "open_repo",
]

#: How often a writer re-reads the branch and retries after losing a compare-and-swap.
MAX_RETRIES = 100


class BudgetWarning(UserWarning):
    """A commit took the effective context over its budget with ``budget_action = "warn"``."""


@attrs.frozen
class Budget:
    """The token budget of the effective context; ``action`` is reject, warn or callback.

    A ``callback(current, maximum, commit)`` may raise to refuse the commit.
    """

    max_tokens: int | None = None
    action: str = attrs.field(default="reject", validator=attrs.validators.in_(("reject", "warn", "callback")))
    callback: Callable[[int, int, Commit], None] | None = None

    def __attrs_post_init__(self) -> None:
        if self.action == "callback" and self.callback is None:
            raise ValidationError("budget action 'callback' needs a callback", what="budget", field="callback")


@attrs.frozen
class LogEntry:
    commit: Commit
    content: Content | None


@attrs.frozen
class DiffEntry:
    """One item that differs between two materialized states."""

    status: str  # added | removed | changed
    item: str  # the item's original (append) commit
    before: Content | None
    after: Content | None


_REV_RE = re.compile(r"\A(?P<base>.+?)(?:~(?P<n>\d+))?\Z")
_HASH_LIKE = re.compile(r"\A[0-9a-fA-F]{4,64}\Z")


class Repo:
    """The versioned context of one project, over a store and a tokenizer."""

    def __init__(
        self,
        store: Facet,
        tokenizer: Tokenizer,
        content_types: ContentTypes,
        *,
        settings: ContextSettings | None = None,
        budget: Budget | None = None,
        hooks: Any = None,
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
        self.budget = budget or Budget(self.settings.max_tokens, self.settings.budget_action)
        self._hooks = hooks
        self._bus = bus or default_bus
        # Commits are immutable, so a cache never goes stale.
        self._commits: OrderedDict[str, Commit] = OrderedDict()
        self._contents: OrderedDict[str, Content] = OrderedDict()
        self._cache_size = 8192
        #: Ancestry over this store (through the cache): the one implementation the engine, import and fsck share.
        self.lineage = Lineage(self._known, self._changes)

    # -- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Repo:
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
            if self.ancestor_at_depth(head, middle).created_at <= moment:  # type: ignore[union-attr]
                low = middle
            else:
                high = middle
        return self.ancestor_at_depth(head, low)

    def walk(self, head: Commit, *, first_chunk: int = 64) -> Iterator[Commit]:
        """``head`` and its ancestors, newest first, read in growing batches."""
        chunk = first_chunk
        start: str | None = head.hash
        while start is not None:
            batch = self.objects.ancestors(start, limit=chunk)
            if not batch:
                return
            for commit in batch:
                self._remember(commit)
                yield commit
            start = batch[-1].parent
            chunk = min(chunk * 4, 4096)

    # -- refs and revisions ----------------------------------------------------

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

    # -- writing ---------------------------------------------------------------

    def append(
        self,
        content: Content | Mapping[str, Any],
        *,
        message: str = "",
        reply_to: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Commit:
        """Add a content item on the current branch."""
        item = self._content(content)
        if reply_to is not None:
            reply_to = self.resolve(reply_to).hash
        return self._commit(Operation.APPEND, item, None, message, reply_to, metadata)

    def edit(
        self,
        target: str,
        content: Content | Mapping[str, Any],
        *,
        message: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> Commit:
        """Replace the content of an earlier item in what is materialized."""
        item = self._content(content)
        return self._commit(Operation.EDIT, item, self.resolve(target).hash, message, None, metadata)

    def delete(self, target: str, *, message: str = "", metadata: Mapping[str, Any] | None = None) -> Commit:
        """Remove an earlier item from what is materialized; history keeps it."""
        return self._commit(Operation.DELETE, None, self.resolve(target).hash, message, None, metadata)

    def _content(self, content: Content | Mapping[str, Any]) -> Content:
        if isinstance(content, Content):
            if content.content_type not in self.content_types:
                raise ValidationError(
                    f"content type {content.content_type!r} is not registered",
                    hint="register it through the cairn_register_content_types hook",
                )
            return content
        return self.content_types.create(content)

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

    def _commit(
        self,
        operation: Operation,
        content: Content | None,
        target: str | None,
        message: str,
        reply_to: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> Commit:
        if not isinstance(message, str):
            raise ValidationError("must be a string", what="commit", field="message")
        blob = content.canonical() if content is not None else None
        content_hash = sha256_hex(blob) if blob is not None else None
        tokens = self.count_content(content) if content is not None else 0
        meta = dict(metadata or {})
        for _ in range(MAX_RETRIES):
            ref, head_hash = self.head_state()
            head = self.commit(head_hash) if head_hash else None
            delta = tokens
            if target is not None:
                delta -= self._check_target(head, target)
            created_at = now()
            if head is not None and head.created_at > created_at:
                created_at = head.created_at  # keep times monotone along a branch (clock skew)
            depth = head.depth + 1 if head else 0
            skip = None
            if head is not None and depth >= 2:
                skip_to = self.ancestor_at_depth(head, skip_depth(depth))
                skip = skip_to.hash if skip_to else None
            commit = Commit.new(
                parent=head.hash if head else None,
                operation=operation,
                content_hash=content_hash,
                target=target,
                reply_to=reply_to,
                message=message,
                metadata=meta,
                created_at=created_at,
                content_type=content.content_type if content is not None else None,
                token_count=tokens,
                cumulative_tokens=max(0, (head.cumulative_tokens if head else 0) + delta),
                depth=depth,
                skip=skip,
                tokenizer=self.tokenizer.name,
            )
            self._check_budget(commit, head)
            update = RefUpdate(ref, commit.hash, head_hash) if ref else RefUpdate(HEAD, commit.hash, head_hash)
            try:
                self.objects.write(
                    blobs={content_hash: blob} if blob is not None else None,  # type: ignore[dict-item]
                    commits=[commit],
                    refs=[update],  # the commit itself records its count and who counted it
                )
            except ConflictError:
                continue  # another writer moved the branch: rebuild on its new head
            self._remember(commit)
            self._notify(commit, ref)
            return commit
        raise ConflictError(
            ref or HEAD,
            None,
            None,
            hint=f"gave up after {MAX_RETRIES} attempts under heavy contention; try again",
        )

    def _check_target(self, head: Commit | None, target: str) -> int:
        """Validate an edit/delete target on ``head``'s lineage; return its current effective tokens."""
        item = self.commit(target)
        if item.operation is not Operation.APPEND:
            raise ValidationError(
                f"commit {item.short} is itself an {item.operation.value}; edit or delete the item it changes",
                hint=f"its item is {item.target[:12]}" if item.target else None,
            )
        if head is None or not self.is_ancestor(item, head):
            raise ValidationError(
                f"commit {item.short} is not on the current branch",
                hint="switch to the branch that holds it first",
            )
        latest, deleted = self._effective(head, item)
        if deleted:
            raise ValidationError(
                f"commit {item.short} was deleted by {latest.short}",  # type: ignore[union-attr]
                hint="deleted items cannot be edited or deleted again; append a new item",
            )
        return self._tokens_of_commit_content(latest or item)

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
            if commit is None or commit.depth > head.depth or not self.is_ancestor(commit, head):
                continue
            latest, deleted = self._effective(head, commit)
            if not deleted:
                total += self._tokens_of_commit_content(latest or commit)
        return total

    def _check_budget(self, commit: Commit, head: Commit | None) -> None:
        maximum = self.budget.max_tokens
        if maximum is None:
            return
        if head is not None and commit.cumulative_tokens <= head.cumulative_tokens:
            return  # a delete or a shrinking edit never makes things worse
        current = commit.cumulative_tokens - (self._skipped_tokens(head) if head else 0)
        current += self.tokenizer.overhead.reply_priming if current > 0 else 0
        if current <= maximum:
            return
        if self.budget.action == "reject":
            raise BudgetExceededError(current, maximum)
        if self.budget.action == "warn":
            warnings.warn(
                f"effective context at {current} tokens, over the budget of {maximum}", BudgetWarning, stacklevel=4
            )
        elif self.budget.callback is not None:
            self.budget.callback(current, maximum, commit)

    def _notify(self, commit: Commit, ref: str | None) -> None:
        branch = ref[len(BRANCH_PREFIX) :] if ref else None
        self._bus.publish(
            EventName.COMMIT_CREATED,
            {
                "commit": commit.hash,
                "operation": commit.operation.value,
                "content_type": commit.content_type,
                "branch": branch,
                "tokens": commit.token_count,
            },
            ts=commit.created_at,
        )
        if self._hooks is not None and self._hooks.cairn_commit_created.get_hookimpls():
            self._hooks.cairn_commit_created(commit=commit, branch=branch)

    # -- branches --------------------------------------------------------------

    def branches(self) -> dict[str, str]:
        """Branch name -> commit hash."""
        return {name[len(BRANCH_PREFIX) :]: value for name, value in self.refs.list_refs(BRANCH_PREFIX).items()}

    def create_branch(self, name: str, start: str | None = None) -> Commit:
        validate_branch_name(name)
        commit = self.resolve(start)
        try:
            self.refs.set_ref(branch_ref(name), commit.hash, expected=None)
        except ConflictError:
            raise ValidationError(
                f"branch {name!r} already exists", hint="pick another name or delete it first"
            ) from None
        self._bus.publish(EventName.BRANCH_CHANGED, {"branch": name, "action": "create", "commit": commit.hash})
        return commit

    def switch(self, name: str, *, create: bool = False) -> None:
        """Point HEAD at branch ``name`` (creating it at HEAD when ``create``)."""
        validate_branch_name(name, existing=not create)
        if not create and self._ensure_head() == SYMBOLIC_PREFIX + branch_ref(name):
            return  # already there (possibly a branch with no commits yet)
        if create:
            self.create_branch(name)
        elif self.refs.get_ref(branch_ref(name)) is None:
            hint = f"create it with `cairn branch create {name}` or `cairn switch -c {name}`"
            if _HASH_LIKE.match(name):
                hint = f"to move HEAD to a commit, use `cairn switch --detach {name}`"
            raise NotFoundError("branch", name, hint=hint)
        self._set_head(SYMBOLIC_PREFIX + branch_ref(name))

    def detach(self, rev: str) -> Commit:
        """Point HEAD directly at a commit (time travel); new commits then move HEAD only."""
        commit = self.resolve(rev)
        self._set_head(commit.hash)
        return commit

    def _set_head(self, value: str) -> None:
        current = self._ensure_head()
        self.refs.set_ref(HEAD, value, expected=current)
        self._bus.publish(EventName.BRANCH_CHANGED, {"head": value, "action": "switch"})

    def rename_branch(self, old: str, new: str) -> None:
        validate_ref_text(old, what="branch name")
        validate_branch_name(new)
        value = self.refs.get_ref(branch_ref(old))
        if value is None:
            raise NotFoundError("branch", old, hint="`cairn branch` lists branches")
        if self.refs.get_ref(branch_ref(new)) is not None:
            raise ValidationError(f"branch {new!r} already exists")
        updates = [RefUpdate(branch_ref(new), value, None), RefUpdate(branch_ref(old), None, value)]
        head = self._ensure_head()
        if head == SYMBOLIC_PREFIX + branch_ref(old):
            updates.append(RefUpdate(HEAD, SYMBOLIC_PREFIX + branch_ref(new), head))
        self.refs.update_refs(updates)
        self._bus.publish(EventName.BRANCH_CHANGED, {"branch": new, "action": "rename", "from": old})

    def delete_branch(self, name: str) -> None:
        """Delete branch ``name``; any name a ref can hold is looked up, so a badly named branch can go too."""
        validate_ref_text(name, what="branch name")
        value = self.refs.get_ref(branch_ref(name))
        if value is None:
            raise NotFoundError("branch", name, hint="`cairn branch` lists branches")
        if self._ensure_head() == SYMBOLIC_PREFIX + branch_ref(name):
            raise ValidationError(f"branch {name!r} is the current branch", hint="switch to another branch first")
        self.refs.delete_ref(branch_ref(name), expected=value)
        self._bus.publish(EventName.BRANCH_CHANGED, {"branch": name, "action": "delete"})

    # -- annotations -----------------------------------------------------------

    def annotate(self, target: str, priority: Priority | str, reason: str = "") -> Annotation:
        """Record a priority (pinned / normal / skip) for an item; append-only."""
        commit = self.resolve(target)
        if commit.operation is not Operation.APPEND:
            raise ValidationError(
                f"commit {commit.short} is an {commit.operation.value}; annotate the item it changes",
                hint=f"that is {commit.target[:12]}" if commit.target else None,
            )
        annotation = Annotation(commit.hash, Priority(priority), reason, now())
        self.annotation_store.add_annotations([annotation])
        self._bus.publish(
            EventName.ANNOTATION_ADDED,
            {"target": commit.hash, "priority": annotation.priority.value, "reason": reason},
        )
        return annotation

    def pin(self, target: str, reason: str = "") -> Annotation:
        return self.annotate(target, Priority.PINNED, reason)

    def skip(self, target: str, reason: str = "") -> Annotation:
        return self.annotate(target, Priority.SKIP, reason)

    def unpin(self, target: str, reason: str = "") -> Annotation:
        return self.annotate(target, Priority.NORMAL, reason)

    def annotations(self, target: str) -> list[Annotation]:
        return self.annotation_store.annotation_history(self.resolve(target).hash)

    # -- reading history -------------------------------------------------------

    def log(
        self,
        rev: str | None = None,
        *,
        limit: int | None = None,
        content_type: str | None = None,
        since: str | None = None,
        until: str | None = None,
        grep: str | None = None,
    ) -> list[LogEntry]:
        """Commits reachable from ``rev`` (default HEAD), newest first, filtered."""
        try:
            head = self.resolve(rev)
        except NotFoundError:
            if rev is None:
                return []
            raise
        since_t = format_time(parse_time(since)) if since else None
        until_t = format_time(parse_time(until)) if until else None
        pattern = grep.lower() if grep else None
        out: list[LogEntry] = []
        for commit in self.walk(head):
            if until_t and commit.created_at > until_t:
                continue
            if since_t and commit.created_at < since_t:
                break  # times only decrease going back along a branch
            if content_type and commit.content_type != content_type:
                continue
            content = self.content_of(commit) if commit.content_hash else None
            if pattern:
                haystack = commit.message.lower()
                if content is not None:
                    haystack += "\n" + content.text_for_search().lower()
                if pattern not in haystack:
                    continue
            out.append(LogEntry(commit, content))
            if limit is not None and len(out) >= limit:
                break
        return out

    def materialize(self, rev: str | None = None, **options: Any):  # -> Materialized
        """Turn the history at ``rev`` into provider-ready messages; see ``cairn.materialize``."""
        from cairn.materialize import materialize

        return materialize(self, rev, **options)

    def diff(self, a: str, b: str) -> list[DiffEntry]:
        """What differs between the materialized (unbudgeted) contexts at two revisions."""
        before = {i.item: i for i in self.materialize(a).items}
        after = {i.item: i for i in self.materialize(b).items}
        out: list[DiffEntry] = []
        for key, old in before.items():
            new = after.get(key)
            if new is None:
                out.append(DiffEntry("removed", key, old.content, None))
            elif new.content_hash != old.content_hash:
                out.append(DiffEntry("changed", key, old.content, new.content))
        for key, new in after.items():
            if key not in before:
                out.append(DiffEntry("added", key, None, new.content))
        return out

    # -- export / import -------------------------------------------------------

    def export(self, out: IO[str], *, branch: str | None = None, progress: Callable[[int], None] | None = None) -> int:
        """Write JSONL: a header, then blobs, commits (parents first), refs and annotations. Returns lines written.

        See ``cairn.transfer`` for the format.
        """
        from cairn.transfer import export_history

        return export_history(self, out, branch=branch, progress=progress)

    def import_(
        self,
        lines: Iterable[str | bytes],
        *,
        batch_size: int = 5000,
        progress: Callable[[int], None] | None = None,
        source: str = "<import>",
    ) -> ImportReport:
        """Read an export, check every record, then store what is new; nothing is stored if a record is wrong.

        Derived fields are recomputed, never taken from the file. New commits
        are written in transactions of ``batch_size``; each ``progress(n)``
        acknowledges ``n`` of them durable. Refs move in the last transaction;
        a ref that exists here with another value is refused before anything
        is written. See ``cairn.transfer``.
        """
        from cairn.transfer import import_history

        return import_history(self, lines, batch_size=batch_size, progress=progress, source=source)


def _looks_like_branch(name: str) -> bool:
    try:
        validate_branch_name(name, existing=True)
    except ValidationError:
        return False
    return True


def open_repo(
    path: str | Path | None = None,
    *,
    config: Config | None = None,
    plugins: Any = None,
    store: Facet | None = None,
    tokenizer: Tokenizer | None = None,
    budget: Budget | None = None,
    bus: EventBus | None = None,
) -> Repo:
    """Open the context repository of the project at ``path`` (default: found from the cwd).

    Store and tokenizer come from ``[cairn] storage`` / ``tokenizer`` unless given.
    """
    from cairn.config import load_config
    from cairn.plugins import load_plugins

    if config is None:
        config = load_config(path)
    if plugins is None:
        plugins = load_plugins(disabled=config.cairn.disabled_plugins)
    settings = config.context
    if store is None:
        store = plugins.create("storage", config.cairn.storage, config)
    if tokenizer is None:
        tokenizer = plugins.create("tokenizers", config.cairn.tokenizer, config)
    return Repo(
        store,
        tokenizer,
        plugins.content_types,
        settings=settings,
        budget=budget,
        hooks=plugins.pm.hook,
        bus=bus,
    )
