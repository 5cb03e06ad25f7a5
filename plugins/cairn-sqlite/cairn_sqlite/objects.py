"""The objects facet on SQLite: blobs and commits, and ``write``, the one transaction that publishes them.

``write`` stores blobs and commits, moves refs (``cairn_sqlite.refs``) and
caches token counts (``cairn_sqlite.token_counts``) in one ``BEGIN
IMMEDIATE`` transaction, calling those modules' helpers directly.

Every batch read is one statement: the hashes travel as one JSON array
through ``json_each(?)``, so there is no limit on SQL variables. History
walks follow ``parent_seq`` (the parent's rowid) through the table itself.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cairn.errors import IntegrityError, ValidationError
from cairn.model import Commit, Operation, sha256_hex
from cairn.storage import ObjectStore, RefUpdate
from cairn_sqlite.connection import SqliteConnection, distinct, insert, sql_limit, sqlite_method
from cairn_sqlite.refs import checked_refs, swap
from cairn_sqlite.schema import COMMIT_COLUMNS
from cairn_sqlite.token_counts import PUT_TOKENS, count_rows

__all__ = ["COLS", "KNOWN_COMMITS", "SqliteObjects", "commit_from_row"]

#: The commit columns in ``COMMIT_COLUMNS`` order, as ``commit_from_row`` reads them.
COLS = ", ".join(f'"{c}"' for c in COMMIT_COLUMNS)
_C_COLS = ", ".join(f'c."{c}"' for c in COMMIT_COLUMNS)
_INSERT_COMMIT = (
    f"INSERT OR IGNORE INTO commits ({COLS}, parent_seq) "
    f"VALUES ({', '.join('?' * len(COMMIT_COLUMNS))}, (SELECT seq FROM commits WHERE hash = ?))"
)
_INSERT_BLOB = "INSERT OR IGNORE INTO blobs (hash, data) VALUES (?, ?)"
#: Which of a JSON array of hashes are stored commits.
KNOWN_COMMITS = "SELECT hash FROM commits WHERE hash IN (SELECT value FROM json_each(?))"
_KNOWN_BLOBS = "SELECT hash FROM blobs WHERE hash IN (SELECT value FROM json_each(?))"
_GET_BLOBS = "SELECT hash, data FROM blobs WHERE hash IN (SELECT value FROM json_each(?))"
_GET_COMMITS = f"SELECT {COLS} FROM commits WHERE hash IN (SELECT value FROM json_each(?))"
_ANCESTORS = f"""
WITH RECURSIVE chain(n, seq) AS (
    SELECT 0, seq FROM commits WHERE hash = ?
    UNION ALL
    SELECT chain.n + 1, c.parent_seq FROM chain JOIN commits AS c ON c.seq = chain.seq
    WHERE c.parent_seq IS NOT NULL
    LIMIT ?
)
SELECT {_C_COLS} FROM chain JOIN commits AS c ON c.seq = chain.seq ORDER BY chain.n
"""
_CHILDREN = f"SELECT {COLS} FROM commits WHERE parent = ? ORDER BY created_at, rowid"
_TARGETING = f"SELECT {COLS} FROM commits WHERE target IN (SELECT value FROM json_each(?)) ORDER BY created_at, rowid"
_CHANGES = f"SELECT {COLS} FROM commits WHERE target IS NOT NULL AND created_at >= ? ORDER BY created_at, rowid"
_FIND = "SELECT hash FROM commits WHERE hash >= ? AND hash < ? ORDER BY hash LIMIT ?"
_HEX = re.compile(r"\A[0-9a-f]*\Z")


# -- rows ------------------------------------------------------------------------------

_OPERATIONS = {op.value: op for op in Operation}


def commit_from_row(row: Sequence[Any]) -> Commit:
    """The commit a row of ``COLS`` holds."""
    # Rows were validated on the way in, so the constructor is called directly
    # (no per-field checks): history reads are the materializer's hot path.
    return Commit(
        hash=row[0],
        parent=row[1],
        operation=_OPERATIONS[row[2]],
        content_hash=row[3],
        target=row[4],
        reply_to=row[5],
        message=row[6],
        metadata={} if row[7] == "{}" else json.loads(row[7]),
        created_at=row[8],
        content_type=row[9],
        token_count=row[10],
        cumulative_tokens=row[11],
        depth=row[12],
        skip=row[13],
        tokenizer=row[14],
        merge_parent=row[15],
        last_merge=row[16],
    )


def _metadata_text(metadata: dict[str, Any]) -> str:
    """Canonical JSON text (the commit's hash covers it, so it is known to encode)."""
    if not metadata:
        return "{}"
    return json.dumps(metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _commit_row(commit: Commit) -> tuple[Any, ...]:
    return (
        commit.hash,
        commit.parent,
        commit.operation.value,
        commit.content_hash,
        commit.target,
        commit.reply_to,
        commit.message,
        _metadata_text(commit.metadata),
        commit.created_at,
        commit.content_type,
        commit.token_count,
        commit.cumulative_tokens,
        commit.depth,
        commit.skip,
        commit.tokenizer,
        commit.merge_parent,
        commit.last_merge,
        commit.parent,  # looked up for parent_seq
    )


# -- write's checks ------------------------------------------------------------------------


def _topological(commits: list[Commit]) -> list[Commit]:
    """The batch with each commit after its parent and target (foreign keys are checked per statement)."""
    if len(commits) == 1 and isinstance(commits[0], Commit):
        return commits
    by_hash: dict[str, Commit] = {}
    for commit in commits:
        if not isinstance(commit, Commit):
            raise ValidationError(f"expected a cairn.model.Commit, got {type(commit).__name__}", what="write")
        by_hash.setdefault(commit.hash, commit)
    # Usually (an import, a branch) the batch is already in order: check in one pass.
    seen: set[str] = set()
    for commit in commits:
        if (
            (commit.parent in by_hash and commit.parent not in seen)
            or (commit.target in by_hash and commit.target not in seen)
            or (commit.merge_parent in by_hash and commit.merge_parent not in seen)
        ):
            break
        seen.add(commit.hash)
    else:
        return list(by_hash.values())
    done: set[str] = set()
    ordered: list[Commit] = []
    for start in by_hash.values():
        if start.hash in done:
            continue
        stack = [start]
        visiting = {start.hash}
        while stack:
            top = stack[-1]
            pending = [
                by_hash[d]
                for d in (top.parent, top.target, top.merge_parent)
                if d is not None and d in by_hash and d not in done and d not in visiting
            ]
            if pending:
                stack.append(pending[0])
                visiting.add(pending[0].hash)
                continue
            stack.pop()
            visiting.discard(top.hash)
            if top.hash not in done:
                done.add(top.hash)
                ordered.append(top)
    return ordered


def _checked_blobs(blobs: Mapping[str, bytes]) -> list[tuple[str, bytes]]:
    """(hash, bytes) rows; ``IntegrityError`` before anything is written when bytes do not match their hash."""
    rows = []
    for digest, data in blobs.items():
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValidationError(f"blob {digest!r:.20} must be bytes, got {type(data).__name__}", what="write")
        data = bytes(data)
        if sha256_hex(data) != digest:
            raise IntegrityError(
                f"blob {str(digest)[:12]}: its bytes do not match its hash",
                hint="key each blob by the SHA-256 of its bytes; nothing was written",
            )
        rows.append((digest, data))
    return rows


def _check_links(conn: sqlite3.Connection, ordered: list[Commit], batch_blobs: set[str]) -> None:
    """``IntegrityError`` naming the first parent, target or content blob neither stored nor in the batch."""
    batch = {c.hash for c in ordered}
    need_commits = {
        h for c in ordered for h in (c.parent, c.target, c.merge_parent) if h is not None and h not in batch
    }
    need_blobs = {c.content_hash for c in ordered if c.content_hash is not None and c.content_hash not in batch_blobs}
    stored_commits = _known(conn, "commits", need_commits)
    stored_blobs = _known(conn, "blobs", need_blobs)
    known_commits = batch | stored_commits
    known_blobs = batch_blobs | stored_blobs
    for commit in ordered:
        for what, digest, known in (
            ("parent", commit.parent, known_commits),
            ("target", commit.target, known_commits),
            ("merged-in parent", commit.merge_parent, known_commits),
            ("content blob", commit.content_hash, known_blobs),
        ):
            if digest is not None and digest not in known:
                error = IntegrityError(
                    f"commit {commit.short}: its {what} {digest[:12]} is neither stored nor in this write",
                    hint=f"write the {what} first or in the same batch; nothing was written",
                )
                error.commit = commit.hash  # type: ignore[attr-defined]  # an extra fact for callers
                error.missing = digest  # type: ignore[attr-defined]  # an extra fact for callers
                raise error


def _known(conn: sqlite3.Connection, table: str, hashes: set[str]) -> set[str]:
    """Which of ``hashes`` are stored in ``table`` (blobs or commits), in one statement."""
    if not hashes:
        return set()
    if len(hashes) == 1:
        (digest,) = hashes
        found = conn.execute(f"SELECT hash FROM {table} WHERE hash = ?", (digest,)).fetchone()
        return {digest} if found else set()
    sql = KNOWN_COMMITS if table == "commits" else _KNOWN_BLOBS
    return {h for (h,) in conn.execute(sql, (json.dumps(sorted(hashes)),))}


# -- the facet -------------------------------------------------------------------------------


class SqliteObjects(SqliteConnection, ObjectStore):
    """``ObjectStore`` over the ``blobs`` and ``commits`` tables."""

    @sqlite_method("writing")
    def write(
        self,
        *,
        blobs: Mapping[str, bytes] | None = None,
        commits: Sequence[Commit] = (),
        refs: Sequence[RefUpdate] = (),
        token_counts: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        """Store blobs and commits, apply ref updates and cache token counts in one transaction (see ``ObjectStore.write``).

        Blobs are verified against their hashes first (a mismatch raises
        ``IntegrityError`` and nothing is written). Commit hashes are trusted:
        ``Commit.new`` computes them and ``import`` verifies them, and
        recomputing each one here would cost more than the insert;
        ``check()`` verifies every stored commit.
        """
        blob_rows = _checked_blobs(blobs or {})
        ordered = _topological(list(commits))
        updates = checked_refs(refs)
        token_rows = [
            row for tokenizer, counts in (token_counts or {}).items() for row in count_rows(tokenizer, counts)
        ]
        if not (blob_rows or ordered or updates or token_rows):
            return
        batch_blobs = {digest for digest, _ in blob_rows}
        with self._write_transaction() as conn:
            for update in updates:
                swap(conn, update)
            if ordered and not self._foreign_keys:
                _check_links(conn, ordered, batch_blobs)
            insert(conn, _INSERT_BLOB, blob_rows)
            try:
                # Batch order puts parents and targets first, so the foreign keys
                # catch exactly the links that are neither stored nor in the batch.
                insert(conn, _INSERT_COMMIT, [_commit_row(c) for c in ordered])
            except sqlite3.IntegrityError:
                _check_links(conn, ordered, batch_blobs)  # names the missing object
                raise
            insert(conn, PUT_TOKENS, token_rows)

    @sqlite_method("reading blobs")
    def get_blobs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """The stored bytes of each known hash; unknown hashes are left out. One statement."""
        keys = distinct(hashes, "get_blobs")
        if not keys:
            return {}
        assert self._conn is not None
        return {h: bytes(d) for h, d in self._conn.execute(_GET_BLOBS, (json.dumps(keys),))}

    @sqlite_method("reading commits")
    def get_commits(self, hashes: Iterable[str]) -> dict[str, Commit]:
        """Each known commit by hash; unknown hashes are left out. One statement."""
        keys = distinct(hashes, "get_commits")
        if not keys:
            return {}
        assert self._conn is not None
        rows = self._conn.execute(_GET_COMMITS, (json.dumps(keys),))
        return {row[0]: commit_from_row(row) for row in rows}

    @sqlite_method("reading ancestors")
    def ancestors(self, start: str, *, limit: int | None = None) -> list[Commit]:
        """``start`` and its ancestors, newest first, at most ``limit``; empty if ``start`` is unknown. One statement."""
        n = sql_limit(limit)
        if n == 0:
            return []
        assert self._conn is not None
        return [commit_from_row(r) for r in self._conn.execute(_ANCESTORS, (start, n))]

    @sqlite_method("reading children")
    def children(self, commit: str) -> list[Commit]:
        """Commits whose parent is ``commit``, oldest first."""
        assert self._conn is not None
        return [commit_from_row(r) for r in self._conn.execute(_CHILDREN, (commit,))]

    def _by_time(
        self, content_type: str | None, since: str | None, until: str | None, limit: int | None
    ) -> list[Commit]:
        where: list[str] = []
        params: list[Any] = []
        if content_type is not None:
            where.append("content_type = ?")
            params.append(content_type)
        if since is not None:
            where.append("created_at >= ?")
            params.append(since)
        if until is not None:
            where.append("created_at <= ?")
            params.append(until)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        # rowid breaks ties in insertion order and is part of every index, so no sort is needed.
        sql = f"SELECT {COLS} FROM commits{clause} ORDER BY created_at DESC, rowid DESC LIMIT ?"
        assert self._conn is not None
        return [commit_from_row(r) for r in self._conn.execute(sql, (*params, sql_limit(limit)))]

    @sqlite_method("reading commits by type")
    def commits_by_type(
        self,
        content_type: str,
        *,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[Commit]:
        """Commits of ``content_type`` with ``since <= created_at <= until``, newest first."""
        return self._by_time(content_type, since, until, limit)

    @sqlite_method("reading commits by time")
    def commits_by_time(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[Commit]:
        """Commits with ``since <= created_at <= until``, newest first."""
        return self._by_time(None, since, until, limit)

    @sqlite_method("reading edits and deletes")
    def commits_targeting(self, targets: Iterable[str]) -> list[Commit]:
        """Edits and deletes whose target is one of ``targets``, oldest first. One statement."""
        keys = distinct(targets, "commits_targeting")
        if not keys:
            return []
        assert self._conn is not None
        return [commit_from_row(r) for r in self._conn.execute(_TARGETING, (json.dumps(keys),))]

    @sqlite_method("reading edits and deletes by time")
    def changes_since(self, since: str) -> list[Commit]:
        """Edits and deletes with ``created_at >= since``, oldest first; one statement over a partial index."""
        assert self._conn is not None
        return [commit_from_row(r) for r in self._conn.execute(_CHANGES, (since,))]

    @sqlite_method("finding commits")
    def find_commits(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Hashes starting with ``prefix`` (hex, any case), in hash order; empty for a non-hex prefix."""
        prefix = prefix.lower()
        n = sql_limit(limit)
        if not _HEX.match(prefix) or n == 0:
            return []
        assert self._conn is not None
        # Every hex digit sorts below "g", so [prefix, prefix + "g") is exactly the prefix's range.
        return [h for (h,) in self._conn.execute(_FIND, (prefix, prefix + "g", n))]
