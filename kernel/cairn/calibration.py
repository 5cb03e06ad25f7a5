"""How far the tokenizer's estimate was from what the provider counted, read back from history.

After a provider call, ``cairn ask`` records on the reply's commit the
usage the provider reported (``metadata.usage``: input/output tokens, cache
reads and writes, whether the counts were only estimated) beside what the
materializer estimated for the context it sent (``metadata.context_tokens``,
counted by ``metadata.context_tokenizer``). ``last_calibration`` finds the
newest such reply on a branch whose usage the provider reported, so
``cairn status`` can show estimated against actual prompt tokens and the
estimate's error: the figure to tune the approx tokenizer's ``scale`` with.

It reads commit metadata only (no contents), and at most ``limit`` commits
back from the head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:  # pragma: no cover
    from cairn.model import Commit
    from cairn.repo_reader import RepoReader

__all__ = ["Calibration", "last_calibration"]


@attrs.frozen
class Calibration:
    """One call's prompt tokens: the estimate sent with it and the provider's count."""

    commit: str  # the reply's commit
    estimated: int
    actual: int
    tokenizer: str | None  # the tokenizer that made the estimate, when recorded
    provider: str | None
    model: str | None

    @property
    def error(self) -> float:
        """(estimated - actual) / actual: negative when the estimate was low."""
        return (self.estimated - self.actual) / self.actual

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "estimated_prompt_tokens": self.estimated,
            "actual_prompt_tokens": self.actual,
            "error": round(self.error, 4),
            "tokenizer": self.tokenizer,
            "provider": self.provider,
            "model": self.model,
        }


def from_commit(commit: Commit) -> Calibration | None:
    """The calibration a reply's commit records; None when it records no estimate or no reported usage."""
    meta = commit.metadata
    usage = meta.get("usage")
    estimated = meta.get("context_tokens")
    if not isinstance(usage, dict) or usage.get("estimated") is not False:
        return None
    actual = usage.get("input_tokens")
    if not isinstance(estimated, int) or not isinstance(actual, int) or not _count(estimated) or not _count(actual):
        return None
    if actual == 0:
        return None
    tokenizer = meta.get("context_tokenizer")
    return Calibration(
        commit.hash,
        estimated,
        actual,
        tokenizer if isinstance(tokenizer, str) else None,
        _text(meta.get("provider")),
        _text(meta.get("model")),
    )


def last_calibration(repo: RepoReader, head: Commit | None = None, *, limit: int = 200) -> Calibration | None:
    """The newest reply within ``limit`` commits of ``head`` (default HEAD) with an estimate and reported usage."""
    head = head if head is not None else repo.head()
    if head is None:
        return None
    for seen, commit in enumerate(repo.walk(head)):
        if seen >= limit:
            return None
        found = from_commit(commit)
        if found is not None:
            return found
    return None


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
