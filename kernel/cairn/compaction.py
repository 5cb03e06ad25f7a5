"""Compaction: older items summarised into one commit that records where the summaries came from.

``compact`` reads the branch as it is materialized (unbudgeted), keeps the
last ``keep_last`` items, pinned items and instructions where they are, and
puts one summary in place of each maximal run of the other, older items
(oldest first, only as many as ``target_tokens`` needs when given). The
summaries go into one ``Operation.COMPACT`` commit whose ``compaction``
item names the items each one replaces, and whose metadata records the
provenance: summarizer, provider, model, usage, prompt version, the
effective tokens before and after. History keeps every original:
``materialize(..., compaction=False)`` and time travel to before the
compaction show them.

Without a model (the ``noop`` provider) a summary is extractive
(``cairn.summarize.extractive_summary``) and says so; with one, the
prompt is ``SUMMARY_PROMPT``, versioned by ``PROMPT_VERSION``.

``maybe_compact`` is the automatic trigger: ``[context] compact_at`` (a
fraction of ``max_tokens``) and ``compact_keep_last``. Every compaction
publishes ``context:compaction`` on the event bus and, on a store that
keeps a run ledger, is a ``compaction`` run there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from cairn.errors import ConflictError, ValidationError
from cairn.events import EventName
from cairn.model import Commit, Operation, ToolIO
from cairn.model.compaction import EXTRACTIVE, Compaction
from cairn.repo_reader import RepoReader
from cairn.storage import branch_ref
from cairn.summarize import Summarize, extractive_summary, split_summarizer

if TYPE_CHECKING:  # pragma: no cover
    from cairn.ledger import Ledger
    from cairn.materialize import Item

__all__ = [
    "COMPACTION_RUN_TYPE",
    "PROMPT_VERSION",
    "SUMMARY_PROMPT",
    "CompactionResult",
    "RepoCompaction",
    "compactions_of",
    "maybe_compact",
]

#: The version of ``SUMMARY_PROMPT``; a compaction records it. Change both together.
PROMPT_VERSION = "cairn.compact/1"
#: What the LLM is asked for each run of items it summarises.
SUMMARY_PROMPT = (
    "You compact the context of an LLM agent. The numbered items below are consecutive turns of its "
    "conversation (role: text). Write one short paragraph that keeps what a later turn may need: the "
    "facts stated, questions asked, decisions made, tool results and open tasks. Plain text only, no preamble."
)
#: The ledger run type of a compaction.
COMPACTION_RUN_TYPE = "compaction"
#: ``compact_keep_last`` when neither the caller nor the config says.
DEFAULT_KEEP_LAST = 8


@attrs.frozen
class CompactionResult:
    """What a compaction did, or (``dry_run``) would do."""

    branch: str
    head: str  # the tip it read
    runs: tuple[tuple[str, ...], ...]  # the items each summary replaces, in history order
    replaced_tokens: int
    tokens_before: int
    summarizer: str  # "extractive" or the provider and model that will write / wrote the summaries
    prompt_version: str | None
    prompt: str | None  # what the LLM is asked (None for extractive summaries)
    dry_run: bool
    commit: Commit | None = None
    summaries: tuple[str, ...] = ()
    tokens_after: int | None = None
    run_id: str | None = None
    skipped: str | None = None  # why nothing was committed although there was something to compact

    @property
    def replaced(self) -> int:
        return sum(len(r) for r in self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "branch": self.branch,
            "head": self.head,
            "dry_run": self.dry_run,
            "commit": self.commit.hash if self.commit else None,
            "runs": [list(r) for r in self.runs],
            "replaced": self.replaced,
            "replaced_tokens": self.replaced_tokens,
            "tokens_before": self.tokens_before,
            "tokens_after": self.tokens_after,
            "summarizer": self.summarizer,
            "prompt_version": self.prompt_version,
            "prompt": self.prompt,
            "summaries": list(self.summaries),
            "provenance": self.commit.metadata.get("compaction") if self.commit else None,
            "run_id": self.run_id,
            "skipped": self.skipped,
        }


def _count(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"{what} must be a whole number from {minimum}, got {value!r:.40}", what="compact")
    return value


def _protected(item: Item) -> bool:
    return item.priority.value == "pinned" or item.content.content_type == "instruction"


def _runs(items: list[Item], keep_last: int, target_tokens: int | None, total: int) -> list[list[Item]]:
    """Maximal runs of unprotected items older than the last ``keep_last``, a tool call never parted from its result."""
    cut = max(0, len(items) - keep_last)
    calls = {
        i.content.call_id: n
        for n, i in enumerate(items)
        if isinstance(i.content, ToolIO) and i.content.direction == "call" and i.content.call_id
    }
    for item in items[cut:]:
        content = item.content
        if isinstance(content, ToolIO) and content.direction == "result" and content.call_id in calls:
            cut = min(cut, calls[content.call_id])  # keep the call beside its kept result
    runs: list[list[Item]] = []
    current: list[Item] = []
    removed = 0
    for item in items[:cut]:
        if target_tokens is not None and total - removed <= target_tokens:
            break
        if _protected(item):
            if current:
                runs.append(current)
            current = []
            continue
        current.append(item)
        removed += item.tokens
    if current:
        runs.append(current)
    return runs


def _contiguous(repo: RepoReader, head: Commit, run: tuple[str, ...]) -> bool:
    """Whether history from the run's first item to its last holds nothing but its items and their changes.

    Then the materializer may step over that stretch unread (``cairn.materialize``).
    """
    if head.last_merge is not None or len(run) < 3:
        return False
    first, last = repo.commit(run[0]), repo.commit(run[-1])
    stretch = repo.objects.ancestors(last.hash, limit=last.depth - first.depth + 1)
    members = set(run)
    return (
        bool(stretch)
        and stretch[-1].hash == first.hash
        and all(
            c.hash in members or (c.operation in (Operation.EDIT, Operation.DELETE) and c.target in members)
            for c in stretch
        )
    )


def _texts(run: list[Item]) -> list[str]:
    out = []
    for item in run:
        text = "\n".join(f"{m.role}: {m.content}" if m.content else m.role for m in item.messages).strip()
        out.append(text or item.content.text_for_search() or item.content.content_type)
    return out


class RepoCompaction(RepoReader):
    """``Repo``'s compaction methods (``cairn.repo`` writes the commit)."""

    #: What writes the summaries of an automatic compaction (``[context] compact_at``): None is extractive.
    summarize: Summarize | None = None
    summarizer: str | None = None  # its name, ``provider/model``
    _compacting = False
    budget: Any  # cairn.repo.Budget, set by Repo
    _commit: Callable[..., Commit]  # cairn.repo.Repo._commit

    def compact(
        self,
        *,
        keep_last: int | None = None,
        target_tokens: int | None = None,
        dry_run: bool = False,
        branch: str | None = None,
        summarize: Summarize | None = None,
        summarizer: str | None = None,
        ledger: Ledger | None = None,
    ) -> CompactionResult:
        """Summarise older items of ``branch`` (default: the current one) into one compaction commit.

        See the module's docstring.

        ``summarize`` writes each summary (``cairn.summarize``); None makes
        extractive ones. ``summarizer`` names it for a dry run (``provider/model``).
        ``ledger`` records the compaction run (default: one over the repository's
        store when it keeps a run ledger).
        """
        if keep_last is None:
            keep_last = self.settings.compact_keep_last
        keep_last = _count(keep_last, "keep_last", 0)
        if target_tokens is not None:
            target_tokens = _count(target_tokens, "target_tokens", 0)
        name = branch if branch is not None else self.branch
        if name is None:
            raise ValidationError(
                "HEAD is detached: there is no branch to compact", hint="switch to a branch, or give --branch"
            )
        ref = branch_ref(name)
        tip = self.refs.get_ref(ref)
        if tip is None:
            raise ValidationError(f"branch {name!r} has no commits to compact", hint="`cairn branch` lists branches")
        head = self.commit(tip)
        from cairn.materialize import materialize

        view = materialize(self, head.hash)
        items = list(view.items)
        if head.last_merge is None:
            items.sort(key=lambda i: i.depth)
        runs = _runs(items, keep_last, target_tokens, view.token_count)
        replaced_tokens = sum(i.tokens for run in runs for i in run)
        label = EXTRACTIVE if summarize is None else (summarizer or "llm")
        plan = CompactionResult(
            branch=name,
            head=head.hash,
            runs=tuple(tuple(i.item for i in run) for run in runs),
            replaced_tokens=replaced_tokens,
            tokens_before=view.token_count,
            summarizer=label,
            prompt_version=None if summarize is None else PROMPT_VERSION,
            prompt=None if summarize is None else SUMMARY_PROMPT,
            dry_run=dry_run,
        )
        if dry_run or not runs:
            return plan
        usage: dict[str, Any] = {}
        texts: list[str] = []
        for run in runs:
            if summarize is None:
                texts.append(extractive_summary(_texts(run)))
                continue
            text, label, used = summarize(_texts(run))
            texts.append(text)
            for key, value in used.items():  # usage summed over the runs' calls
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    usage[key] = usage.get(key, 0) + value
                else:
                    usage.setdefault(key, value)
        content = Compaction(
            [
                {"replaces": list(r), "text": t, **({"contiguous": True} if _contiguous(self, head, r) else {})}
                for r, t in zip(plan.runs, texts, strict=True)
            ],
            label,
            plan.prompt_version,
        )
        if self.count_content(content) >= replaced_tokens:
            # Nothing to gain (short items, long summaries): no commit, so an automatic trigger cannot loop.
            return attrs.evolve(plan, summaries=tuple(texts), summarizer=label, skipped="the summaries are not shorter")
        provider, model = split_summarizer(label)
        provenance = {
            "summarizer": label,
            "provider": provider,
            "model": model,
            "usage": usage or None,
            "prompt_version": plan.prompt_version,
            "replaced": plan.replaced,
            "replaced_tokens": replaced_tokens,
            "tokens_before": view.token_count,
            "keep_last": keep_last,
            "target_tokens": target_tokens,
            "tokenizer": self.tokenizer.name,
        }
        message = f"Compact {plan.replaced} items into {len(runs)} {'summary' if len(runs) == 1 else 'summaries'}"
        commit = self._commit(
            Operation.COMPACT,
            content,
            None,
            message,
            None,
            {"compaction": provenance},
            replaced=replaced_tokens,
            on_ref=ref,
            expect_head=head.hash,
        )
        after = self.effective_tokens(commit)
        result = attrs.evolve(plan, commit=commit, summaries=tuple(texts), tokens_after=after, summarizer=label)
        run_id = _record(self, ledger, result)
        result = attrs.evolve(result, run_id=run_id)
        self._bus.publish(
            EventName.COMPACTION_CREATED,
            {
                "commit": commit.hash,
                "branch": name,
                "replaced": plan.replaced,
                "summaries": len(runs),
                "tokens_before": view.token_count,
                "tokens_after": after,
                "summarizer": label,
                "run_id": run_id,
            },
            ts=commit.created_at,
        )
        return result

    def maybe_compact(self) -> CompactionResult | None:
        """Compact the current branch if it passed ``[context] compact_at`` of ``max_tokens``."""
        if self.settings.compact_at is None or self._compacting:
            return None
        return maybe_compact(self, self.summarize, self.summarizer)


def _record(repo: RepoCompaction, ledger: Ledger | None, result: CompactionResult) -> str | None:
    """The compaction as a run in the ledger (metadata only: hashes, counts, who summarised); its id."""
    from cairn.storage import RunStore

    if ledger is None:
        if not isinstance(repo.store, RunStore):
            return None  # a context-only backend keeps no ledger
        from cairn.ledger import Ledger

        ledger = Ledger(repo.store, bus=repo._bus)
    assert result.commit is not None
    meta: Mapping[str, Any] = result.commit.metadata["compaction"]
    run = ledger.open(COMPACTION_RUN_TYPE, metadata={"branch": result.branch})
    run.close(
        "ok",
        summary=result.commit.message,
        metadata={"commit": result.commit.hash, "summaries": len(result.runs), **meta},
    )
    return run.run.run_id


def maybe_compact(
    repo: RepoCompaction, summarize: Summarize | None = None, summarizer: str | None = None
) -> CompactionResult | None:
    """Compact the current branch when its effective tokens passed ``compact_at`` of ``max_tokens``; else None.

    Nothing happens without both settings, on a detached HEAD, or while a
    compaction is already under way in this repository.
    """
    fraction = repo.settings.compact_at
    maximum = repo.budget.max_tokens
    if fraction is None or maximum is None or repo._compacting or repo.branch is None:
        return None
    if repo.effective_tokens() <= fraction * maximum:
        return None
    repo._compacting = True
    try:
        result = repo.compact(summarize=summarize, summarizer=summarizer)
    except ConflictError:
        return None  # another writer moved the branch: its next commit checks again
    finally:
        repo._compacting = False
    return result if result.commit is not None else None


def compactions_of(repo: RepoReader, item: Commit) -> list[Commit]:
    """The compactions, on any branch, that replaced ``item``, oldest first (found through the content-type index)."""
    out = []
    for commit in repo.objects.commits_by_type("compaction"):
        if commit.operation is not Operation.COMPACT:
            continue
        content = repo.content_of(commit)
        if isinstance(content, Compaction) and item.hash in content.replaced():
            out.append(commit)
    out.reverse()
    return out
