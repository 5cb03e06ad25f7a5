"""Memory tiers: long-term facts and episodes, kept as content on the ``memory`` branch.

Raw history is the context and the ledger as they are. Above it:

- facts (``memory.fact``): ``remember`` appends one; ``supersede`` edits
  one (the newer statement replaces the older in recall; history keeps
  both); ``forget`` deletes one (a tombstone). ``facts(as_of=...)`` reads
  them as they were at a time, like any branch.
- episodes (``memory.episode``): ``consolidate`` summarises, per branch,
  the commits no episode covers yet: through the configured LLM, or, with
  none (the ``noop`` provider), an extractive summary (the opening words
  of the first and last items, and how many were in between) labelled
  ``extractive``.

All writes go through the context engine on ``refs/heads/memory``, so
facts and episodes get hashes, history, export/import and push/pull like
everything else. ``MemoryBranch`` is a ``Repo`` whose HEAD is that branch,
whatever the user's HEAD is.
"""

from __future__ import annotations

from typing import Any

import attrs

from cairn.errors import NotFoundError, ValidationError
from cairn.memory.sources import MEMORY_BRANCH, current_items
from cairn.model import Commit, Operation
from cairn.model.memory import Episode, Fact
from cairn.repo import Repo
from cairn.storage import BRANCH_PREFIX, branch_ref
from cairn.summarize import Summarize, extractive_summary

__all__ = ["MemoryBranch", "MemoryItem", "consolidate", "extractive_summary"]

#: Most characters of history one episode's summary request holds (the rest is cut, newest kept).
MAX_EPISODE_INPUT = 24_000


@attrs.frozen
class MemoryItem:
    """A current fact or episode: its id (the item's first commit), its current commit and content."""

    id: str
    commit: Commit
    content: Fact | Episode

    def to_dict(self) -> dict[str, Any]:
        data = self.content.to_dict()
        return {"id": self.id, "commit": self.commit.hash, "created": self.commit.created_at, **data}


class MemoryBranch(Repo):
    """The context engine writing to and reading from the ``memory`` branch, never moving HEAD."""

    def head_state(self) -> tuple[str | None, str | None]:
        ref = branch_ref(MEMORY_BRANCH)
        return ref, self.refs.get_ref(ref)

    @classmethod
    def of(cls, repo: Repo) -> MemoryBranch:
        """A view of ``repo``'s store on the memory branch (no token budget: memory is not sent whole)."""
        return cls(repo.store, repo.tokenizer, repo.content_types, settings=repo.settings)

    def close(self) -> None:  # the store belongs to the repo this view was made from
        return None

    # -- reading ------------------------------------------------------------------

    def items(self, *, as_of: str | None = None) -> list[MemoryItem]:
        """Current facts and episodes (as of a time when given), newest first."""
        head = self.head()
        if head is not None and as_of is not None:
            head = self.at_time(head, as_of)
        current = current_items(self, head.hash if head else None)
        contents = self.contents({c.content_hash for c in current.values() if c.content_hash})
        out = []
        for item, commit in current.items():
            content = contents.get(commit.content_hash or "")
            if isinstance(content, (Fact, Episode)):
                out.append(MemoryItem(item, commit, content))
        out.sort(key=lambda m: (m.commit.created_at, m.commit.depth), reverse=True)
        return out

    def facts(self, *, subject: str | None = None, as_of: str | None = None) -> list[MemoryItem]:
        return [
            m
            for m in self.items(as_of=as_of)
            if isinstance(m.content, Fact) and (subject is None or m.content.subject == subject)
        ]

    def episodes(self, *, branch: str | None = None) -> list[MemoryItem]:
        return [
            m for m in self.items() if isinstance(m.content, Episode) and (branch is None or m.content.branch == branch)
        ]

    def find(self, ident: str) -> MemoryItem:
        """A current fact or episode by its id or an unambiguous prefix of it (4 characters at least)."""
        if not isinstance(ident, str) or len(ident.strip()) < 4:
            raise ValidationError(f"{ident!r} is too short to name a memory item", hint="give 4 or more characters")
        matches = [m for m in self.items() if m.id.startswith(ident.strip().lower())]
        if not matches:
            raise NotFoundError("memory item", ident, hint="list them with `cairn memory facts`")
        if len(matches) > 1:
            raise ValidationError(f"{ident!r} names {len(matches)} memory items", hint="give more characters")
        return matches[0]

    # -- writing ------------------------------------------------------------------

    def remember(self, text: str, *, subject: str | None = None, source: str | None = None) -> MemoryItem:
        fact = _fact(text, subject, source)
        commit = self.append(fact, message="remember")
        return MemoryItem(commit.hash, commit, fact)

    def supersede(self, ident: str, text: str, *, subject: str | None = None, source: str | None = None) -> MemoryItem:
        old = self.find(ident)
        if not isinstance(old.content, Fact):
            raise ValidationError(f"{old.id[:12]} is an episode; only facts are superseded")
        fact = _fact(text, subject if subject is not None else old.content.subject, source)
        commit = self.edit(old.id, fact, message="supersede")
        return MemoryItem(old.id, commit, fact)

    def forget(self, ident: str) -> MemoryItem:
        old = self.find(ident)
        self.delete(old.id, message="forget")
        return old


def _fact(text: str, subject: str | None, source: str | None) -> Fact:
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("a fact needs some text", what="remember", hint='cairn memory remember "the fact"')
    if subject is not None and not subject.strip():
        raise ValidationError("the subject is empty", what="remember", hint="leave --subject out, or give one")
    return Fact(text.strip(), subject.strip() if subject else None, source)


def consolidate(memory: MemoryBranch, summarize: Summarize | None = None) -> list[MemoryItem]:
    """An episode per branch for the commits no episode covers yet; returns the episodes made.

    ``summarize(texts) -> (summary, "provider/model", usage)`` writes the
    summary; None makes an extractive one, labelled ``extractive``.
    """
    covered: dict[str, str] = {}
    for episode in memory.episodes():
        assert isinstance(episode.content, Episode)
        covered.setdefault(episode.content.branch, episode.content.last)  # newest first: the latest wins
    made: list[MemoryItem] = []
    for ref, head in sorted(memory.refs.list_refs(BRANCH_PREFIX).items()):
        branch = ref[len(BRANCH_PREFIX) :]
        if branch == MEMORY_BRANCH:
            continue
        fresh: list[Commit] = []
        for commit in memory.walk(memory.commit(head)):
            if commit.hash == covered.get(branch):
                break
            fresh.append(commit)
        fresh.reverse()
        with_content = [c for c in fresh if c.operation is not Operation.DELETE and c.content_hash]
        if not with_content:
            continue
        contents = memory.contents({c.content_hash for c in with_content if c.content_hash})
        # with_content keeps commits whose content_hash is set.
        texts = [t for c in with_content if (t := contents[c.content_hash].text_for_search().strip())]  # type: ignore[index]
        if not texts:
            continue
        usage: dict[str, Any] = {}
        if summarize is None:
            summary, summarizer = extractive_summary(texts), "extractive"
        else:
            summary, summarizer, usage = summarize(_bounded(texts))
        made_episode = Episode(summary, branch, fresh[0].hash, fresh[-1].hash, len(fresh), summarizer, usage)
        commit = memory.append(made_episode, message=f"consolidate {branch}")
        made.append(MemoryItem(commit.hash, commit, made_episode))
    return made


def _bounded(texts: list[str]) -> list[str]:
    """The newest texts that fit ``MAX_EPISODE_INPUT`` characters, in order."""
    out: list[str] = []
    size = 0
    for text in reversed(texts):
        if size + len(text) > MAX_EPISODE_INPUT and out:
            break
        out.append(text[:MAX_EPISODE_INPUT])
        size += len(text)
    return list(reversed(out))
