"""The context engine: commit, edit, delete, branch, annotate, budget, log, diff, export.

A ``Repo`` works over any store with the objects, refs and annotations facets
and any ``Tokenizer``. History is a graph of commits: each append
adds a content item, each edit replaces the content of an earlier item in
what is materialized, each delete removes one (history keeps it), and a
merge joins another branch's history (``cairn.repo_merge``). Refs move
only by compare-and-swap; a writer that loses the race re-reads the branch
and tries again, so two writers on one branch never lose a commit.

Every commit records its token count and the cumulative effective token count
of its branch (after edits and deletes), so a budget check costs O(1) reads
plus one per skipped item, however long the history. Each commit also keeps
its depth and a skip pointer to an ancestor (``cairn.model.skip_depth``), so
"is X an ancestor of Y" and "the ancestor at time T" cost O(log n) reads.

``Repo`` is one class, written in a few modules by what changes together:

=================== ===========================================================
``repo_reader``     ``RepoReader``, the base: the store's facets, caches of
                    commits and contents, ancestry, HEAD and revisions, token
                    counts (what ``materialize`` and ``transfer`` read through)
``repo_branches``   ``RepoBranches``: list, create, switch, detach, rename,
                    delete
``repo_history``    ``RepoHistory``: log, materialize, diff, export, import
``repo_merge``      ``RepoMerge``: merge (fast-forward or a merge commit with
                    two parents, conflicts, strategies), the merge base, and
                    what cherry-pick may pick
``compaction``      ``RepoCompaction``: compact (summaries in place of older
                    items) and the automatic ``compact_at`` trigger
``repo`` (here)     ``Repo``: writing commits (append, edit, delete) under the
                    budget, annotations, and ``open_repo``
=================== ===========================================================
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from cairn.commit_checks import check_content, check_tool_io
from cairn.compaction import RepoCompaction
from cairn.config import Config, ContextSettings
from cairn.errors import BudgetExceededError, ConflictError, ValidationError
from cairn.events import EventBus, EventName
from cairn.model import (
    Annotation,
    Commit,
    Content,
    ContentTypes,
    Operation,
    Priority,
    ToolIO,
    now,
    sha256_hex,
    skip_depth,
)
from cairn.repo_branches import RepoBranches
from cairn.repo_history import DiffEntry, LogEntry, RepoHistory
from cairn.repo_merge import Conflict, MergeResult, RepoMerge
from cairn.storage import BRANCH_PREFIX, HEAD, Facet, RefUpdate
from cairn.tokenizers import Tokenizer

if TYPE_CHECKING:  # pragma: no cover
    from cairn.sessions import Session
    from cairn.summarize import Summarize

__all__ = [
    "Budget",
    "BudgetWarning",
    "check_tool_io",
    "Conflict",
    "DiffEntry",
    "LogEntry",
    "MergeResult",
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


class Repo(RepoBranches, RepoHistory, RepoMerge, RepoCompaction):
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
        super().__init__(store, tokenizer, content_types, settings=settings, bus=bus)
        self.budget = budget or Budget(self.settings.max_tokens, self.settings.budget_action)
        self._hooks = hooks
        self.summarize: Summarize | None = None  # see RepoCompaction
        self.summarizer: str | None = None
        self._compacting = False

    def session(self, session_id: str | None = None, **new: Any) -> Session:
        """Session ``session_id``, or a new one (``title``, ``start``, ``provider``, ``model``, ``tools``).

        A new session does not move HEAD; ``cairn.sessions.Sessions.resume`` does.
        """
        from cairn.sessions import Sessions

        sessions = Sessions(self)
        return sessions.get(session_id) if session_id is not None else sessions.new(**new)

    # -- writing ---------------------------------------------------------------
    # Commit and annotation times come from this module's ``now``, one clock a test can replace.

    def append(
        self,
        content: Content | Mapping[str, Any],
        *,
        message: str = "",
        reply_to: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        derive_metadata: Callable[[Commit | None], Mapping[str, Any]] | None = None,
    ) -> Commit:
        """Add a content item on the current branch.

        ``derive_metadata(head)``, when given, adds metadata computed from the
        branch's head as this commit is built on it (again after each lost
        compare-and-swap): running totals stay exact under concurrent writers.

        The item is checked against what the providers accept
        (``cairn.commit_checks``); a ``tool_io`` call without ``call_id`` gets
        a stable one derived from the branch's head and the item, and a
        result without one replying to a call takes that call's.
        """
        item = self._content(content)
        if reply_to is not None:
            reply_to = self.resolve(reply_to).hash
        check_content(item)
        if isinstance(item, ToolIO):
            item = self._tool_io(item, reply_to)
        commit = self._commit(Operation.APPEND, item, None, message, reply_to, metadata, derive_metadata)
        self.maybe_compact()
        return commit

    def edit(
        self,
        target: str,
        content: Content | Mapping[str, Any],
        *,
        message: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> Commit:
        """Replace the content of an earlier item in what is materialized (``target`` is required: ``"HEAD"`` is explicit).

        The new content is checked as an append's is; a ``tool_io`` edit
        without ``call_id`` keeps the one the item has.
        """
        if not isinstance(target, str) or not target.strip():
            raise ValidationError(
                "edit needs the item to edit", what="edit", field="target", hint="give its hash, or HEAD"
            )
        item = self._content(content)
        check_content(item)
        edited = self.resolve(target)
        if isinstance(item, ToolIO) and item.call_id is None:
            before = self.content_of(self.commit(edited.target) if edited.target else edited)
            if isinstance(before, ToolIO) and before.call_id:
                item = attrs.evolve(item, call_id=before.call_id)
            else:
                item = self._tool_io(item, None)
        commit = self._commit(Operation.EDIT, item, edited.hash, message, None, metadata)
        self.maybe_compact()
        return commit

    def delete(self, target: str, *, message: str = "", metadata: Mapping[str, Any] | None = None) -> Commit:
        """Remove an earlier item from what is materialized; history keeps it."""
        return self._commit(Operation.DELETE, None, self.resolve(target).hash, message, None, metadata)

    def cherry_pick(self, rev: str, *, message: str | None = None) -> Commit:
        """Apply one commit's operation on the current branch; an edit or delete whose item is not here is a conflict."""
        picked, _ = self._cherry_pick_plan(rev)
        text = message if message is not None else f"{picked.message}\n\n(cherry picked from {picked.hash})".lstrip()
        meta = {**picked.metadata, "cherry_picked_from": picked.hash}
        if picked.operation is Operation.DELETE:
            # An edit or a delete names its target (Commit.validate).
            return self.delete(picked.target, message=text, metadata=meta)  # type: ignore[arg-type]
        content = self.content_of(picked)
        assert content is not None
        if picked.operation is Operation.EDIT:
            return self.edit(picked.target, content, message=text, metadata=meta)  # type: ignore[arg-type]  # as above
        head = self.head()
        reply_to = picked.reply_to
        if reply_to is not None and (head is None or not self.is_ancestor(self.commit(reply_to), head)):
            reply_to = None  # what it replied to is not on this branch
        return self.append(content, message=text, reply_to=reply_to, metadata=meta)

    def restore(self, rev: str, *, version: int, message: str | None = None) -> Commit:
        """A new edit of ``rev``'s item carrying version ``version`` (1 = the original) of its content and metadata."""
        versions = [e for e in self.edit_history(rev) if e.content is not None]
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= len(versions):
            raise ValidationError(
                f"version {version!r} is out of range: the item has versions 1 to {len(versions)}",
                what="restore",
                field="version",
                hint="`cairn history REV` lists them",
            )
        chosen = versions[version - 1]
        item = versions[0].commit
        text = (
            message
            if message is not None
            else f"Restore version {version} of {item.short} (from {chosen.commit.short})"
        )
        # versions keeps only entries with content, so chosen.content is set.
        return self.edit(item.hash, chosen.content, message=text, metadata=chosen.commit.metadata)  # type: ignore[arg-type]

    def _clock(self) -> str:
        return now()

    def _tool_io(self, item: ToolIO, reply_to: str | None) -> ToolIO:
        if item.call_id is not None:
            return item
        if item.direction == "call":
            _, head = self.head_state()
            seed = (head or "") + "\n" + item.canonical().decode()
            return attrs.evolve(item, call_id="call_" + sha256_hex(seed.encode())[:24])
        replied = self.content_of(self.commit(reply_to)) if reply_to is not None else None
        if isinstance(replied, ToolIO) and replied.direction == "call" and replied.call_id:
            return attrs.evolve(item, call_id=replied.call_id)
        raise ValidationError(
            "a tool result needs the call_id of its call",
            what="tool_io",
            field="call_id",
            hint="give call_id, or reply to the call (reply_to / --reply-to)",
        )

    def _content(self, content: Content | Mapping[str, Any]) -> Content:
        if isinstance(content, Content):
            if content.content_type not in self.content_types:
                raise ValidationError(
                    f"content type {content.content_type!r} is not registered",
                    hint="register it through the cairn_register_content_types hook",
                )
            return content
        return self.content_types.create(content)

    def _commit(
        self,
        operation: Operation,
        content: Content | None,
        target: str | None,
        message: str,
        reply_to: str | None,
        metadata: Mapping[str, Any] | None,
        derive_metadata: Callable[[Commit | None], Mapping[str, Any]] | None = None,
        *,
        replaced: int = 0,
        on_ref: str | None = None,
        expect_head: str | None = None,
    ) -> Commit:
        """Write one commit on the current branch (``on_ref``: that branch ref), retrying lost races.

        ``replaced``: the effective tokens a compaction takes out. ``expect_head``:
        refuse (``ConflictError``) rather than rebuild when the branch moved from it.
        """
        if not isinstance(message, str):
            raise ValidationError("must be a string", what="commit", field="message")
        blob = content.canonical() if content is not None else None
        content_hash = sha256_hex(blob) if blob is not None else None
        tokens = self.count_content(content) if content is not None else 0
        meta = dict(metadata or {})
        for _ in range(MAX_RETRIES):
            ref: str | None
            head_hash: str | None
            if on_ref is not None:
                ref, head_hash = on_ref, self.refs.get_ref(on_ref)
            else:
                ref, head_hash = self.head_state()
            if expect_head is not None and head_hash != expect_head:
                raise ConflictError(
                    ref or HEAD, expect_head, head_hash, hint="the branch moved while compacting; compact again"
                )
            if ref is None:
                raise ValidationError(
                    f"HEAD is detached at {str(head_hash)[:12]}: a commit here would belong to no branch",
                    hint="create a branch here first (`cairn switch -c NAME`), or switch to one",
                )
            head = self.commit(head_hash) if head_hash else None
            delta = tokens - replaced
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
            if head is not None and head.last_merge is not None:
                merged = {"last_merge": head.last_merge}
            else:
                merged = {}
            commit = Commit.new(
                parent=head.hash if head else None,
                operation=operation,
                content_hash=content_hash,
                target=target,
                reply_to=reply_to,
                message=message,
                metadata={**meta, **derive_metadata(head)} if derive_metadata is not None else meta,
                created_at=created_at,
                content_type=content.content_type if content is not None else None,
                token_count=tokens,
                cumulative_tokens=max(0, (head.cumulative_tokens if head else 0) + delta),
                depth=depth,
                skip=skip,
                tokenizer=self.tokenizer.name,
                **merged,
            )
            self._check_budget(commit, head)
            update = RefUpdate(ref, commit.hash, head_hash)
            try:
                self.objects.write(
                    blobs={content_hash: blob} if content_hash is not None and blob is not None else None,
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
        compacted = self._compacted_by(head, item)
        if compacted is not None:
            raise ValidationError(
                f"commit {item.short} was compacted by {compacted.short}: a summary stands for it",
                hint="append a new item; `cairn materialize --no-compaction` shows the original",
            )
        latest, deleted = self._effective(head, item)
        if deleted:
            assert latest is not None  # a delete is reported with the commit that made it
            raise ValidationError(
                f"commit {item.short} was deleted by {latest.short}",
                hint="deleted items cannot be edited or deleted again; append a new item",
            )
        return self._tokens_of_commit_content(latest or item)

    def _compacted_by(self, head: Commit, item: Commit) -> Commit | None:
        """The newest compaction on ``head``'s lineage that replaced ``item``, or None (one indexed read)."""
        from cairn.materialize_rules import compacted_items

        return compacted_items(self, head).get(item.hash)

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

    def priority(self, target: str) -> tuple[Priority, str]:
        """An item's effective priority and where it comes from: ``"annotation"`` or ``"default"`` (its type's)."""
        commit = self.resolve(target)
        item = self.commit(commit.target) if commit.target else commit
        note = self.annotation_store.latest_annotations([item.hash]).get(item.hash)
        if note is not None:
            return note.priority, "annotation"
        content = self.content_of(item)
        return (content.hints.default_priority if content is not None else Priority.NORMAL), "default"

    def pinned(self, *, limit: int = 100) -> list[tuple[str, str]]:
        """Items on the current branch always kept: (item hash, "annotation" or "default"), newest first.

        Reads at most ``limit`` pinned annotations and ``limit`` instructions, so the scan is bounded.
        """
        return self._with_priority(Priority.PINNED, limit)

    def skipped(self, *, limit: int = 100) -> list[tuple[str, str]]:
        """Items on the current branch left out by an annotation: (item hash, "annotation"), newest first; bounded by ``limit``."""
        return self._with_priority(Priority.SKIP, limit)

    def _with_priority(self, priority: Priority, limit: int) -> list[tuple[str, str]]:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError("limit must be a whole number from 1", given=limit)
        head = self.head()
        if head is None:
            return []
        notes = sorted(self.annotation_store.annotated(priority).values(), key=lambda a: a.created_at, reverse=True)
        found: dict[str, tuple[str, str]] = {}
        for note in notes[:limit]:
            found[note.target] = (note.target, "annotation")
        if priority is Priority.PINNED:  # instructions are pinned by their type unless an annotation says otherwise
            for commit in self.objects.commits_by_type("instruction", limit=limit):
                if commit.operation is Operation.APPEND and commit.hash not in found:
                    found.setdefault(commit.hash, (commit.hash, "default"))
            latest = self.annotation_store.latest_annotations([h for h, s in found.values() if s == "default"])
            found = {h: v for h, v in found.items() if v[1] == "annotation" or h not in latest}
        commits = self.get_commits(found)
        out = [(commits[h], v) for h, v in found.items() if h in commits and self.is_ancestor(commits[h], head)]
        out.sort(key=lambda pair: (pair[0].created_at, pair[0].depth), reverse=True)
        return [v for _, v in out[:limit]]


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
    repo = Repo(
        store,
        tokenizer,
        plugins.content_types,
        settings=settings,
        budget=budget,
        hooks=plugins.pm.hook,
        bus=bus,
    )
    # What a session's ask builds its providers and ledger from (cairn.sessions).
    repo.config, repo.plugins = config, plugins
    return repo
