"""The objects facet: content blobs and commits, read from the in-process catalog index.

``write`` stores blobs, commits and token counts and moves refs in one
transaction (``ContextBase._write``); every read is answered from the
catalog index (brought up to date in one round trip when the catalog ref
moved), and blob bytes come through one ``cat-file`` round trip.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from cairn.errors import IntegrityError
from cairn.model import Commit
from cairn.storage import ObjectStore, RefUpdate
from cairn_git._base import checked_keys, checked_limit, locked, writing
from cairn_git._context import ContextBase, checked_blobs, checked_commits, checked_refs, count_rows

__all__ = ["GitObjects"]

_HEX = re.compile(r"\A[0-9a-f]*\Z")


class GitObjects(ContextBase, ObjectStore):
    """``ObjectStore`` over the catalog (``refs/<ns>/objects``)."""

    @writing
    def write(
        self,
        *,
        blobs: Mapping[str, bytes] | None = None,
        commits: Sequence[Commit] = (),
        refs: Sequence[RefUpdate] = (),
        token_counts: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        """Store blobs, commits and token counts and apply ref updates in one git transaction (see ``ObjectStore.write``).

        Blob bytes are checked against their hashes first; commit hashes are
        trusted (``check`` verifies them). A failed compare-and-swap raises
        ``ConflictError`` and leaves every ref where it was.
        """
        blob_items = checked_blobs(blobs or {})
        commit_list = checked_commits(commits)
        updates = [(u, self._git_ref(u.name)) for u in checked_refs(refs)]
        counts = [(t, d, n) for t, per in (token_counts or {}).items() for d, n in count_rows(t, per)]
        if not (blob_items or commit_list or updates or counts):
            return
        self._write(blob_items, commit_list, updates, counts)  # an import's thousands of objects: one pack

    @locked
    def get_blobs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """The stored bytes of each known hash; unknown hashes are left out. One ``cat-file`` round trip."""
        keys = checked_keys(hashes, "get_blobs")
        if not keys:
            return {}
        catalog = self._refresh()
        known = [(h, catalog.blobs[h]) for h in keys if h in catalog.blobs]
        out = {}
        for (digest, _), found in zip(known, self._cat.read([oid for _, oid in known]), strict=True):
            if found is None:
                raise IntegrityError(
                    f"blob {digest[:12]} is in the catalog but its git object is missing",
                    hint="run `git fsck`; fetch the missing objects from a clone",
                )
            out[digest] = found[2]
        return out

    @locked
    def get_commits(self, hashes: Iterable[str]) -> dict[str, Commit]:
        """Each known commit by hash (from the in-process index); unknown hashes are left out."""
        keys = checked_keys(hashes, "get_commits")
        if not keys:
            return {}
        commits = self._refresh().commits
        return {h: commits[h] for h in keys if h in commits}

    @locked
    def ancestors(self, start: str, *, limit: int | None = None) -> list[Commit]:
        """``start`` and its ancestors, newest first, at most ``limit``; empty if ``start`` is unknown."""
        n = checked_limit(limit)
        if n == 0:
            return []
        return self._refresh().ancestors(start, n)

    @locked
    def children(self, commit: str) -> list[Commit]:
        """Commits whose parent is ``commit``, oldest first."""
        catalog = self._refresh()
        kids = [catalog.commits[h] for h in catalog.children.get(commit, ())]
        return sorted(kids, key=lambda c: (c.created_at, c.hash))

    def _by_time(
        self, keep: Callable[[Commit], bool] | None, since: str | None, until: str | None, limit: int | None
    ) -> list[Commit]:
        n = checked_limit(limit)
        catalog = self._refresh()
        order = catalog.by_time()
        low = 0 if since is None else bisect.bisect_left(order, (since, ""))
        high = len(order) if until is None else bisect.bisect_right(order, (until, "\uffff"))
        out: list[Commit] = []
        for index in range(high - 1, low - 1, -1):
            if n is not None and len(out) >= n:
                break
            commit = catalog.commits[order[index][1]]
            if keep is None or keep(commit):
                out.append(commit)
        return out

    @locked
    def commits_by_type(
        self, content_type: str, *, since: str | None = None, until: str | None = None, limit: int | None = None
    ) -> list[Commit]:
        """Commits of ``content_type`` with ``since <= created_at <= until``, newest first."""
        return self._by_time(lambda c: c.content_type == content_type, since, until, limit)

    @locked
    def commits_by_time(
        self, *, since: str | None = None, until: str | None = None, limit: int | None = None
    ) -> list[Commit]:
        """Commits with ``since <= created_at <= until``, newest first."""
        return self._by_time(None, since, until, limit)

    @locked
    def commits_targeting(self, targets: Iterable[str]) -> list[Commit]:
        """Edits and deletes whose target is one of ``targets``, oldest first."""
        keys = checked_keys(targets, "commits_targeting")
        catalog = self._refresh()
        found = [catalog.commits[h] for t in keys for h in catalog.targeting.get(t, ())]
        return sorted(found, key=lambda c: (c.created_at, c.hash))

    @locked
    def find_commits(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Hashes starting with ``prefix`` (hex, any case), in hash order."""
        prefix = prefix.lower()
        n = checked_limit(limit)
        if not _HEX.match(prefix) or n == 0:
            return []
        ordered = self._refresh().sorted_hashes()
        start = bisect.bisect_left(ordered, prefix)
        out: list[str] = []
        for digest in ordered[start:]:
            if not digest.startswith(prefix) or (n is not None and len(out) >= n):
                break
            out.append(digest)
        return out
