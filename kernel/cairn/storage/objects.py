"""The objects facet: content blobs and commits, written atomically with the refs that publish them."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence

from cairn.model import Commit
from cairn.storage._facet import Facet
from cairn.storage.refs import RefUpdate

__all__ = ["ObjectStore"]


class ObjectStore(Facet, abc.ABC):
    """Blobs (canonical JSON bytes keyed by SHA-256) and commits; batch reads, ancestry and look-ups.

    Every batch read is one round trip to the backend: the context engine's
    speed depends on it. A backend that provides objects provides refs too
    (``write`` publishes objects and moves refs in one transaction).
    """

    facet = "objects"
    holds = "context objects (blobs and commits)"

    @abc.abstractmethod
    def write(
        self,
        *,
        blobs: Mapping[str, bytes] | None = None,
        commits: Sequence[Commit] = (),
        refs: Sequence[RefUpdate] = (),
        token_counts: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        """Store blobs and commits and apply ref updates, all or nothing.

        Objects already stored are skipped (content addressing deduplicates).
        A commit whose parent, target or content blob is neither stored nor in
        this batch raises ``IntegrityError``. A ref whose current value is not
        ``expected`` raises ``ConflictError``. In both cases nothing is written.
        Returns only once the write is durable. Blob bytes must match their
        hash; commit hashes may be trusted (a check verifies them).

        ``token_counts`` maps a tokenizer name to {content hash: tokens}; a
        backend with the token-count facet caches them in the same
        transaction, one without it raises ``MissingFacetError``.
        """

    @abc.abstractmethod
    def get_blobs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """The stored bytes of each known hash; unknown hashes are left out."""

    @abc.abstractmethod
    def get_commits(self, hashes: Iterable[str]) -> dict[str, Commit]:
        """Each known commit by hash; unknown hashes are left out."""

    @abc.abstractmethod
    def ancestors(self, start: str, *, limit: int | None = None) -> list[Commit]:
        """``start`` and its ancestors, newest first, following ``parent``; at most ``limit``."""

    @abc.abstractmethod
    def children(self, commit: str) -> list[Commit]:
        """Commits whose parent is ``commit``, oldest first."""

    @abc.abstractmethod
    def commits_by_type(
        self,
        content_type: str,
        *,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[Commit]:
        """Commits (on any branch) whose content type is ``content_type``, newest first, ``since <= created_at <= until``."""

    @abc.abstractmethod
    def commits_by_time(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[Commit]:
        """Commits (on any branch) with ``since <= created_at <= until``, newest first."""

    @abc.abstractmethod
    def commits_targeting(self, targets: Iterable[str]) -> list[Commit]:
        """Edits and deletes (on any branch) whose target is one of ``targets``, oldest first."""

    def changes_since(self, since: str) -> list[Commit]:
        """Edits and deletes (on any branch) with ``created_at >= since``, oldest first.

        What a merge reads to find both sides' changes. This default filters
        ``commits_by_time``; a backend with an index on the changes' times
        should answer from it, in one read.
        """
        return [c for c in reversed(self.commits_by_time(since=since)) if c.target is not None]

    @abc.abstractmethod
    def find_commits(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Hashes of commits starting with ``prefix`` (a lowercase hex string), for short hashes."""
