"""History -> provider-ready messages under a token budget.

``materialize`` is a pure function of the store's contents and its inputs:

1. ``as_of`` (a commit or a time) picks the head and the annotation time, so
   commits, edits and annotations are all seen as they were then.
2. Pinned items and instructions are always kept (an explicit skip or unpin
   annotation overrides an instruction's default), with their edits applied.
3. The rest fills the remaining budget newest first, walking back from the
   head; the walk stops at the first unit that does not fit, so what is kept
   is a contiguous recent stretch, never a patchwork.
4. A tool call and its result are one unit: kept together or dropped
   together, the result directly after its call (``cairn.materialize_tools``
   orders them as the providers require and leaves out what no provider
   accepts: calls without results, results without calls).
5. Deleted items vanish, skipped ones are left out, and a named instruction
   gives way to the newest one of its name; every left-out item is reported
   in ``dropped`` with its reason.
6. A compaction (``cairn.compaction``) shows each of its summaries where the
   first item it replaces stood; the others are dropped as ``compacted``.
   The walk meets a compaction before the items it replaces (it is newer),
   so finding them costs nothing extra; ``compaction=False`` ignores them.

Cost grows with what is returned, not with the length of history: the walk
reads back only as far as the budget reaches, pinned items and instructions
come from indexed look-ups, and ancestry checks use skip pointers. Listing
``dropped`` in full finishes the walk, so it costs O(history) and is computed
only when asked for.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeGuard

import attrs

from cairn.errors import BudgetExceededError, ValidationError
from cairn.images import ImageReader, with_images
from cairn.materialize_formats import FORMATS, format_messages, to_anthropic, to_openai, to_text
from cairn.materialize_rules import compacted_items, fit_request, order_key, request_tokens, superseded_directives
from cairn.materialize_tools import arrange_tool_calls
from cairn.materialize_walk import Dropped, Stepped, _Candidate, _Walk, expand_dropped
from cairn.model import (
    Commit,
    Content,
    Message,
    Operation,
    Priority,
    ToolIO,
    format_time,
    parse_time,
)

if TYPE_CHECKING:  # pragma: no cover
    from cairn.repo_reader import RepoReader

__all__ = [
    "FORMATS",
    "Dropped",
    "Item",
    "Materialized",
    "format_messages",
    "materialize",
    "request_tokens",
    "to_anthropic",
    "to_openai",
    "to_text",
]

#: How far from a pinned tool call (or result) to look for its partner.
PARTNER_SEARCH = 64


@attrs.frozen
class Item:
    """One content item in a materialized context."""

    item: str  # the append commit that created it
    source: str  # the commit whose content is shown (the item or its latest edit)
    content: Content
    content_hash: str
    priority: Priority
    tokens: int
    depth: int
    messages: tuple[Message, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "source": self.source,
            "content_type": self.content.content_type,
            "content": self.content.to_dict(),
            "priority": self.priority.value,
            "tokens": self.tokens,
        }


class Materialized:
    """The result: formatted ``messages``, the ``items`` behind them, counts, and ``dropped``."""

    def __init__(
        self,
        *,
        items: list[Item],
        format: str,
        token_count: int,
        token_source: str,
        head: str | None,
        as_of: str | None,
        budget: int | None,
        dropped_early: list[Dropped | Stepped],
        rest: Iterator[Dropped] | None,
    ) -> None:
        self.items = tuple(items)
        self.format = format
        self.token_count = token_count
        self.token_source = token_source
        self.head = head
        self.as_of = as_of
        self.budget = budget
        self._dropped = dropped_early
        self._rest = rest
        neutral = [m for item in self.items for m in item.messages]
        self.neutral_messages = tuple(neutral)
        self.messages = format_messages(neutral, format)

    @property
    def commit_count(self) -> int:
        return len(self.items)

    @property
    def dropped(self) -> tuple[Dropped, ...]:
        """Every item left out, with its reason (finishes the walk through history on first use)."""
        if self._rest is not None:
            self._dropped.extend(self._rest)
            self._rest = None
        self._dropped = list(expand_dropped(self._dropped))
        return tuple(self._dropped)  # type: ignore[arg-type]  # expanded: Dropped only

    def iter_dropped(self) -> Iterator[Dropped]:
        """The items left out, newest first, walking history only as far as they are read.

        A viewer showing the first few hundred drops of a long history reads
        that far back, not the whole of it; ``dropped`` is every one.
        """
        i = 0
        self._dropped = list(expand_dropped(self._dropped))
        while True:
            if i < len(self._dropped):
                yield self._dropped[i]  # type: ignore[misc]  # expanded: Dropped only
                i += 1
                continue
            if self._rest is None:
                return
            following = next(self._rest, None)
            if following is None:
                self._rest = None
                return
            self._dropped.extend(expand_dropped([following]))

    @property
    def dropped_so_far(self) -> tuple[Dropped, ...]:
        """What is known left out without reading further back than the walk went (``dropped_complete`` says if all)."""
        return tuple(expand_dropped(self._dropped))

    @property
    def dropped_complete(self) -> bool:
        return self._rest is None

    def to_dict(self, *, include_dropped: bool = True, complete: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": self.format,
            "messages": self.messages,
            "token_count": self.token_count,
            "token_source": self.token_source,
            "commit_count": self.commit_count,
            "head": self.head,
            "as_of": self.as_of,
            "budget": self.budget,
            "items": [i.to_dict() for i in self.items],
        }
        if include_dropped:
            listed = self.dropped if complete else self.dropped_so_far
            data["dropped"] = [d.to_dict() for d in listed]
            data["dropped_complete"] = self.dropped_complete
        return data


def _is_call(content: Content) -> TypeGuard[ToolIO]:
    return isinstance(content, ToolIO) and content.direction == "call" and bool(content.call_id)


def _is_result(content: Content) -> TypeGuard[ToolIO]:
    return isinstance(content, ToolIO) and content.direction == "result" and bool(content.call_id)


def _resolve_as_of(repo: RepoReader, head: Commit | None, as_of: Any) -> tuple[Commit | None, str | None]:
    """(the head to materialize, the annotation time) for an ``as_of`` commit or time."""
    if as_of is None:
        return head, None
    if isinstance(as_of, _dt.datetime):
        moment = format_time(as_of if as_of.tzinfo else as_of.replace(tzinfo=_dt.timezone.utc))
        return repo.at_time(head, moment), moment
    if isinstance(as_of, Commit):
        as_of = as_of.hash
    text = str(as_of).strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ].*)?", text):
        moment = format_time(parse_time(text))
        return repo.at_time(head, moment), moment
    commit = repo.resolve(text)
    if head is not None and not repo.is_ancestor(commit, head):
        raise ValidationError(
            f"as_of commit {commit.short} is not in the history being materialized",
            hint="pick a commit on that branch, or materialize the branch that holds it",
        )
    return commit, commit.created_at


def materialize(
    repo: RepoReader,
    rev: str | None = None,
    *,
    as_of: Any = None,
    budget: int | None = None,
    format: str = "openai",
    images: ImageReader | None = None,
    include_reasoning: bool = False,
    keep_pending_calls: bool = False,
    compaction: bool = True,
) -> Materialized:
    """Materialize the history at ``rev`` (default HEAD) as of ``as_of`` within ``budget`` tokens.

    Compactions put their summaries in place of the items they replace;
    ``compaction=False`` shows the originals instead (history keeps them).

    ``images``, for a model that takes images, reads the files artifact
    references point at, so they are sent as images (``cairn.images``).
    Items of types whose hints say ``sent_by_default=False`` (reasoning)
    are left out as ``held_back`` unless ``include_reasoning``. Tool calls
    with no result yet at the end are left out (``pending_tool_call``)
    unless ``keep_pending_calls``. ``token_count`` is the tokenizer's own
    count of the messages sent (``Tokenizer.count_messages``).
    """
    if format not in FORMATS:
        raise ValidationError(f"unknown format {format!r}", hint=f"one of: {', '.join(FORMATS)}")
    if budget is not None and (not isinstance(budget, int) or budget <= 0):
        raise ValidationError(f"budget must be a positive number of tokens, got {budget!r}")
    source = "exact" if repo.tokenizer.exact else "estimated"
    if rev is None:
        head = repo.head()
    else:
        head = repo.resolve(rev)
    head, moment = _resolve_as_of(repo, head, as_of)
    if head is None:
        return Materialized(
            items=[],
            format=format,
            token_count=0,
            token_source=source,
            head=None,
            as_of=moment,
            budget=budget,
            dropped_early=[],
            rest=None,
        )

    required, superseded = _required(repo, head, moment, compaction)
    # required candidates are never deletes: their content is set
    held = [] if include_reasoning else [c for c in required if not c.content.hints.sent_by_default]  # type: ignore[union-attr]
    required = [c for c in required if c not in held]
    priming = repo.tokenizer.overhead.reply_priming
    required_tokens = sum(c.tokens for c in required)
    if budget is not None and required and required_tokens + priming > budget:
        raise BudgetExceededError(
            required_tokens + priming,
            budget,
            what="pinned items and instructions",
            hint="raise the budget, or unpin or skip some of them",
        )
    # Reply priming is paid once anything is sent; with nothing required, an
    # impossible budget just keeps nothing.
    remaining = None if budget is None else max(0, budget - required_tokens - priming)

    walk = _Walk(
        repo, head, moment, exclude={c.commit.hash for c in (*required, *superseded, *held)}, compaction=compaction
    )
    candidates = iter(walk)
    kept: list[_Candidate] = list(required)
    dropped: list[Dropped | Stepped] = [Dropped(c.commit.hash, "superseded", c.tokens) for c in superseded]
    dropped.extend(Dropped(c.commit.hash, "held_back", c.tokens) for c in held)
    pending: dict[str | None, list[_Candidate]] = {}  # call_id -> results waiting for their call
    # call_id -> a call already kept, for a result committed before its call (met after it, walking back)
    calls_kept: dict[str | None, _Candidate] = {
        c.content.call_id: c
        for c in required
        if isinstance(c.content, ToolIO) and _is_call(c.content)  # required items are never deletes
    }
    stopped = False

    for candidate in candidates:
        if isinstance(candidate, Stepped):  # compacted items the walk stepped over
            dropped.append(candidate)
            continue
        if candidate.compacted:
            dropped.append(Dropped(candidate.commit.hash, "compacted"))
            continue
        if candidate.deleted:
            dropped.append(Dropped(candidate.commit.hash, "deleted"))
            continue
        if candidate.priority is Priority.SKIP:
            dropped.append(Dropped(candidate.commit.hash, "skipped", candidate.tokens))
            continue
        content = candidate.content
        assert content is not None
        if not include_reasoning and not content.hints.sent_by_default:
            dropped.append(Dropped(candidate.commit.hash, "held_back", candidate.tokens))
            continue
        if _is_result(content):
            call = calls_kept.get(content.call_id)
            if call is None:
                pending.setdefault(content.call_id, []).append(candidate)
                continue
            if remaining is not None and candidate.tokens > remaining:
                # The call is newer and kept; its result does not fit: the pair goes together.
                dropped.append(Dropped(candidate.commit.hash, "budget", candidate.tokens))
                if call in kept and call not in required:
                    kept.remove(call)
                    remaining += call.tokens
                    dropped.append(Dropped(call.commit.hash, "budget", call.tokens))
                stopped = True
                break
            kept.append(candidate)
            if remaining is not None:
                remaining -= candidate.tokens
            continue
        unit = [candidate]
        if _is_call(content):
            unit += pending.pop(content.call_id, [])
            calls_kept.setdefault(content.call_id, candidate)
        cost = sum(c.tokens for c in unit)
        if remaining is not None and cost > remaining:
            dropped.extend(Dropped(c.commit.hash, "budget", c.tokens) for c in unit)
            stopped = True
            break
        kept.extend(unit)
        if remaining is not None:
            remaining -= cost

    def rest() -> Iterator[Dropped]:
        waiting = [c for group in pending.values() for c in group]
        for candidate in candidates:
            if isinstance(candidate, Stepped):
                yield from candidate.dropped()
            elif candidate.compacted:
                yield Dropped(candidate.commit.hash, "compacted")
            elif candidate.deleted:
                yield Dropped(candidate.commit.hash, "deleted")
            elif candidate.priority is Priority.SKIP:
                yield Dropped(candidate.commit.hash, "skipped", candidate.tokens)
            # not deleted (the branch above), so its content is set
            elif not include_reasoning and not candidate.content.hints.sent_by_default:  # type: ignore[union-attr]
                yield Dropped(candidate.commit.hash, "held_back", candidate.tokens)
            else:
                yield Dropped(candidate.commit.hash, "budget", candidate.tokens)
        for candidate in waiting:
            yield Dropped(candidate.commit.hash, "budget" if stopped else "orphaned_tool_result", candidate.tokens)

    kept.sort(key=order_key(repo, head))
    kept, misfits = arrange_tool_calls(kept, keep_pending=keep_pending_calls)
    dropped.extend(Dropped(c.commit.hash, reason, c.tokens) for c, reason in misfits)
    items = [
        Item(
            item=c.commit.hash,
            source=c.source.hash,
            # Kept candidates are never deletes: content and its hash are set.
            content=c.content,  # type: ignore[arg-type]
            # A summary is shown from its compaction's item: its own hash (shown_hash) names it.
            content_hash=c.shown_hash or c.source.content_hash,  # type: ignore[arg-type]  # as above
            priority=c.priority,
            tokens=c.tokens,
            depth=c.commit.depth,
            messages=with_images(c.content.render(), c.content, images),  # type: ignore[union-attr, arg-type]  # as above
        )
        for c in kept
    ]
    token_count = request_tokens(repo.tokenizer, items)
    if budget is not None and token_count > budget:
        # The tokenizer counts a request otherwise than item by item: leave out the oldest until it fits.
        items, token_count, over = fit_request(repo.tokenizer, items, budget, {c.commit.hash for c in required})
        dropped.extend(Dropped(i.item, "budget", i.tokens) for i in over)
    return Materialized(
        items=items,
        format=format,
        token_count=token_count,
        token_source=source,
        head=head.hash,
        as_of=moment,
        budget=budget,
        dropped_early=dropped,
        rest=rest() if (stopped or pending) else None,
    )


def _resolve_items(
    repo: RepoReader, head: Commit, moment: str | None, appends: dict[str, Commit]
) -> dict[str, _Candidate]:
    """Candidates for items anywhere on ``head``'s lineage: latest edit or delete, annotation, tokens.

    Unlike the walk, which sees edits on its way back, this looks them up by
    target, so it serves items far older than the walk reaches.
    """
    latest: dict[str, Commit] = {}
    merged = head.last_merge is not None
    for change in repo.objects.commits_targeting(appends):
        if (merged or change.depth <= head.depth) and repo.is_ancestor(change, head):
            # A change (edit or delete) names its target (Commit.validate).
            known = latest.get(change.target)  # type: ignore[arg-type]
            if known is None or (change.created_at, change.depth) > (known.created_at, known.depth):
                latest[change.target] = change  # type: ignore[index]  # as above
    notes = repo.annotation_store.latest_annotations(appends, as_of=moment)
    sources = {h: latest.get(h, c) for h, c in appends.items()}
    # Every commit but a delete carries content (Commit.validate), so these hashes are all set.
    contents = repo.contents(s.content_hash for s in sources.values() if s.operation is not Operation.DELETE)  # type: ignore[misc]
    tokens = repo.source_tokens(sources.values(), contents)
    out: dict[str, _Candidate] = {}
    for digest, commit in appends.items():
        source = sources[digest]
        if source.operation is Operation.DELETE:
            out[digest] = _Candidate(commit, source, None, Priority.NORMAL, 0, True)
            continue
        # Not a delete, so source.content_hash is set.
        content = contents[source.content_hash]  # type: ignore[index]
        note = notes.get(digest)
        priority = note.priority if note else content.hints.default_priority
        out[digest] = _Candidate(commit, source, content, priority, tokens[source.content_hash], False)  # type: ignore[index]  # as above
    return out


def _on_line(repo: RepoReader, head: Commit, commits: Iterable[Commit]) -> dict[str, Commit]:
    return {
        c.hash: c
        for c in commits
        if c.operation is Operation.APPEND
        and (c.depth <= head.depth or head.last_merge is not None)
        and repo.is_ancestor(c, head)
    }


def _required(
    repo: RepoReader, head: Commit, moment: str | None, compaction: bool = True
) -> tuple[list[_Candidate], list[_Candidate]]:
    """Pinned items and instructions on ``head``'s lineage, with edits applied; skips honoured.

    Also the named instructions a newer one of the same name supersedes (left out).
    An item a compaction replaced stays replaced (pinned afterwards or not)
    unless ``compaction`` is False.
    """
    pinned = repo.annotation_store.annotated(Priority.PINNED, as_of=moment)
    instructions = repo.objects.commits_by_type("instruction", until=moment)
    candidates = set(pinned)
    for commit in instructions:
        repo._remember(commit)
        # An edit or delete always names its target (Commit.validate).
        candidates.add(commit.hash if commit.operation is Operation.APPEND else commit.target)  # type: ignore[arg-type]
    if not candidates:
        return [], []
    items = _on_line(repo, head, repo.get_commits(candidates).values())
    # An item is compacted only while unpinned: a pinned one is checked only when pinned after a compaction.
    newest_pin = max((pinned[h].created_at for h in items if h in pinned), default=None)
    if newest_pin is not None and compaction and repo.objects.commits_by_type("compaction", until=newest_pin, limit=1):
        gone = compacted_items(repo, head, moment)
        items = {h: c for h, c in items.items() if h not in gone}
    if not items:
        return [], []
    resolved = _resolve_items(repo, head, moment, items)
    superseded = superseded_directives(resolved.values())
    out = [
        c
        for c in resolved.values()
        if not c.deleted and c.priority is Priority.PINNED and c.commit.hash not in superseded
    ]
    out.extend(_partners(repo, head, moment, out))
    return out, [resolved[h] for h in superseded]


def _partners(repo: RepoReader, head: Commit, moment: str | None, required: list[_Candidate]) -> list[_Candidate]:
    """The other half of every required tool call or result, so a kept pair is never split."""
    have = {c.commit.hash for c in required}
    extra: list[_Candidate] = []
    for candidate in required:
        content = candidate.content
        if not isinstance(content, ToolIO) or not (_is_call(content) or _is_result(content)):
            continue
        # The partner is usually just before a result or just after a call, but either may come first.
        nearby = [
            *repo.objects.ancestors(candidate.commit.hash, limit=PARTNER_SEARCH),
            *_forward(repo, head, candidate.commit),
        ]
        items = {h: c for h, c in _on_line(repo, head, nearby).items() if h not in have}
        if not items:
            continue
        for partner in _resolve_items(repo, head, moment, items).values():
            other = partner.content
            if partner.deleted or not isinstance(other, ToolIO):
                continue
            if other.call_id == content.call_id and other.direction != content.direction:
                extra.append(attrs.evolve(partner, priority=Priority.PINNED))
                have.add(partner.commit.hash)
    return extra


def _forward(repo: RepoReader, head: Commit, commit: Commit) -> list[Commit]:
    """Up to PARTNER_SEARCH descendants of ``commit`` on ``head``'s lineage, oldest first."""
    out: list[Commit] = []
    here = commit
    while len(out) < PARTNER_SEARCH and here.depth < head.depth:
        nxt = repo.ancestor_at_depth(head, here.depth + 1)
        if nxt is None:
            break
        out.append(nxt)
        here = nxt
    return out
