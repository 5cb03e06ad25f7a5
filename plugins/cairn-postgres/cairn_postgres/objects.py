"""The objects facet on PostgreSQL: blobs and commits, and ``write``, the one transaction that publishes them.

``write`` moves refs (``cairn_postgres.refs``), stores blobs and commits and
caches token counts (``cairn_postgres.token_counts``) in one transaction.
Foreign keys hold every commit's parent, target and content blob to stored
rows, so a batch naming a missing object fails as a whole; the error is
then worked out again outside the transaction to name what was missing.

The common write, one commit published by one ref move, is a single
statement: the ref's conditional ``UPDATE`` and, gated on its ``RETURNING``,
the inserts of the blobs, the commit and the token counts. Small batches go
in with ``executemany`` (psycopg pipelines it); large ones
(an import) are copied into temporary tables with binary ``COPY`` and
inserted from there in one statement each. Batch reads pass their keys as
one array parameter (``= ANY(%s)``): one statement, no limit on keys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from cairn.errors import ConflictError, IntegrityError, ValidationError
from cairn.model import Commit, Operation, sha256_hex
from cairn.storage import ObjectStore, RefUpdate
from cairn_postgres.connection import PostgresConnection, distinct, pg_method, sql_limit
from cairn_postgres.refs import checked_refs, swap
from cairn_postgres.token_counts import PUT_TOKENS, count_rows

__all__ = ["COLS", "PostgresObjects", "commit_from_row"]

COMMIT_COLUMNS = (
    "hash",
    "parent",
    "operation",
    "content_hash",
    "target",
    "reply_to",
    "message",
    "metadata",
    "created_at",
    "content_type",
    "token_count",
    "cumulative_tokens",
    "depth",
    "skip",
    "tokenizer",
    "merge_parent",
    "last_merge",
)
#: Their PostgreSQL types, for binary COPY and the typed parameters of the one-statement write.
_COMMIT_TYPES = (
    "text", "text", "text", "text", "text", "text", "bytea", "text",
    "text", "text", "int8", "int8", "int8", "text", "text", "text", "text",
)  # fmt: skip
#: The commit columns in ``COMMIT_COLUMNS`` order, as ``commit_from_row`` reads them.
COLS = ", ".join(COMMIT_COLUMNS)
_INSERT_COMMIT = (
    f"INSERT INTO commits ({COLS}) VALUES ({', '.join(['%s'] * len(COMMIT_COLUMNS))}) ON CONFLICT (hash) DO NOTHING"
)
_INSERT_BLOB = "INSERT INTO blobs (hash, data) VALUES (%s, %s) ON CONFLICT (hash) DO NOTHING"
# One statement that moves (or creates) a ref and, only if it did, stores the blobs, the
# commit and the token counts: the modifying CTEs all run, each gated on the ref's RETURNING.
_PUBLISH_TAIL = f"""
, blob AS (
    INSERT INTO blobs (hash, data)
    SELECT h, d FROM unnest(%(blob_hashes)s::text[], %(blob_data)s::bytea[]) AS u(h, d)
    WHERE EXISTS (SELECT 1 FROM ref)
    ON CONFLICT (hash) DO NOTHING
), cmt AS (
    INSERT INTO commits ({COLS})
    SELECT * FROM (VALUES ({", ".join(f"%(c{i})s::{t}" for i, t in enumerate(_COMMIT_TYPES))})) AS v
    WHERE %(has_commit)s AND EXISTS (SELECT 1 FROM ref)
    ON CONFLICT (hash) DO NOTHING
), tok AS (
    INSERT INTO token_counts (tokenizer, hash, count)
    SELECT t, h, c FROM unnest(%(tok_names)s::text[], %(tok_hashes)s::text[], %(tok_counts)s::int8[]) AS u(t, h, c)
    WHERE EXISTS (SELECT 1 FROM ref)
    ON CONFLICT (tokenizer, hash) DO UPDATE SET count = excluded.count
)
SELECT count(*) FROM ref
"""
_MOVE_AND_PUBLISH = (
    "WITH ref AS (UPDATE refs SET value = %(new)s WHERE name = %(name)s AND value = %(expected)s RETURNING 1)"
    + _PUBLISH_TAIL
)
_CREATE_AND_PUBLISH = (
    "WITH ref AS (INSERT INTO refs (name, value) VALUES (%(name)s, %(new)s) ON CONFLICT (name) DO NOTHING RETURNING 1)"
    + _PUBLISH_TAIL
)
_GET_BLOBS = "SELECT hash, data FROM blobs WHERE hash = ANY(%s)"
_GET_COMMITS = f"SELECT {COLS} FROM commits WHERE hash = ANY(%s)"
_ANCESTORS = f"""
WITH RECURSIVE chain AS (
    SELECT 1 AS n, {COLS} FROM commits WHERE hash = %s
    UNION ALL
    SELECT chain.n + 1, {", ".join("p." + c for c in COMMIT_COLUMNS)}
    FROM chain JOIN commits AS p ON p.hash = chain.parent
    WHERE chain.n < %s
)
SELECT {COLS} FROM chain ORDER BY n
"""
_CHILDREN = f"SELECT {COLS} FROM commits WHERE parent = %s ORDER BY created_at, seq"
_TARGETING = f"SELECT {COLS} FROM commits WHERE target = ANY(%s) ORDER BY created_at, seq"
_FIND = "SELECT hash FROM commits WHERE hash >= %s AND hash < %s ORDER BY hash LIMIT %s"
_HEX = re.compile(r"\A[0-9a-f]*\Z")
#: Batches at least this large go in through COPY and a temporary table.
_COPY_AT = 64
_NO_LIMIT = 2**62

# -- rows ------------------------------------------------------------------------------

_OPERATIONS = {op.value: op for op in Operation}


def commit_from_row(row: Sequence[Any]) -> Commit:
    """The commit a row of ``COLS`` holds (validated on the way in, so built without per-field checks)."""
    return Commit(
        hash=row[0],
        parent=row[1],
        operation=_OPERATIONS[row[2]],
        content_hash=row[3],
        target=row[4],
        reply_to=row[5],
        message=bytes(row[6]).decode("utf-8", "surrogatepass"),
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


def _commit_row(commit: Commit) -> tuple[Any, ...]:
    metadata = (
        json.dumps(commit.metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        if commit.metadata
        else "{}"
    )
    return (
        commit.hash,
        commit.parent,
        commit.operation.value,
        commit.content_hash,
        commit.target,
        commit.reply_to,
        commit.message.encode("utf-8", "surrogatepass"),
        metadata,
        commit.created_at,
        commit.content_type,
        commit.token_count,
        commit.cumulative_tokens,
        commit.depth,
        commit.skip,
        commit.tokenizer,
        commit.merge_parent,
        commit.last_merge,
    )


def _checked_commits(commits: Sequence[Commit]) -> list[Commit]:
    out: dict[str, Commit] = {}
    for commit in commits:
        if not isinstance(commit, Commit):
            raise ValidationError(f"expected a cairn.model.Commit, got {type(commit).__name__}", what="write")
        for name in (
            "hash",
            "parent",
            "merge_parent",
            "content_hash",
            "target",
            "reply_to",
            "created_at",
            "content_type",
            "skip",
            "last_merge",
        ):
            value = getattr(commit, name)
            if isinstance(value, str) and "\x00" in value:
                raise ValidationError(f"commit {commit.short}: {name} holds a NUL character", what="write")
        out.setdefault(commit.hash, commit)
    return list(out.values())


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


def _copy_in(
    conn: psycopg.Connection[Any], table: str, columns: str, types: Sequence[str], rows: Sequence[Any]
) -> None:
    """Insert ``rows`` into ``table`` through a temporary table filled by binary COPY (duplicates skipped)."""
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {table}_in ON COMMIT DELETE ROWS AS SELECT {columns} FROM {table} WITH NO DATA"
    )
    with conn.cursor().copy(f"COPY {table}_in ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)
    conn.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table}_in ON CONFLICT DO NOTHING")


def _publish_params(
    update: RefUpdate,
    blobs: list[tuple[str, bytes]],
    commits: list[tuple[Any, ...]],
    tokens: list[tuple[str, str, int]],
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "name": update.name,
        "new": update.new,
        "expected": update.expected,
        "blob_hashes": [h for h, _ in blobs],
        "blob_data": [d for _, d in blobs],
        "has_commit": bool(commits),
        "tok_names": [t for t, _, _ in tokens],
        "tok_hashes": [h for _, h, _ in tokens],
        "tok_counts": [c for _, _, c in tokens],
    }
    row = commits[0] if commits else (None,) * len(COMMIT_COLUMNS)
    params.update({f"c{i}": value for i, value in enumerate(row)})
    return params


def _missing_link(conn: psycopg.Connection[Any], commits: list[Commit], batch_blobs: set[str]) -> IntegrityError:
    """The error naming the first parent, target or content blob neither stored nor in the batch."""
    batch = {c.hash for c in commits}
    need_commits = sorted(
        {h for c in commits for h in (c.parent, c.target, c.merge_parent) if h is not None and h not in batch}
    )
    need_blobs = sorted({c.content_hash for c in commits if c.content_hash and c.content_hash not in batch_blobs})
    stored_commits = {h for (h,) in conn.execute("SELECT hash FROM commits WHERE hash = ANY(%s)", (need_commits,))}
    stored_blobs = {h for (h,) in conn.execute("SELECT hash FROM blobs WHERE hash = ANY(%s)", (need_blobs,))}
    for commit in commits:
        for what, digest, known in (
            ("parent", commit.parent, batch | stored_commits),
            ("merged-in parent", commit.merge_parent, batch | stored_commits),
            ("target", commit.target, batch | stored_commits),
            ("content blob", commit.content_hash, batch_blobs | stored_blobs),
        ):
            if digest is not None and digest not in known:
                error = IntegrityError(
                    f"commit {commit.short}: its {what} {digest[:12]} is neither stored nor in this write",
                    hint=f"write the {what} first or in the same batch; nothing was written",
                )
                error.commit = commit.hash  # type: ignore[attr-defined]  # an extra fact for callers
                error.missing = digest  # type: ignore[attr-defined]  # an extra fact for callers
                return error
    return IntegrityError(
        "a commit of this write refers to an object that is not stored (removed by a concurrent gc?)",
        hint="write it again; nothing was written",
    )


# -- the facet -------------------------------------------------------------------------------


class PostgresObjects(PostgresConnection, ObjectStore):
    """``ObjectStore`` over the ``blobs`` and ``commits`` tables."""

    @pg_method("writing")
    def write(
        self,
        *,
        blobs: Mapping[str, bytes] | None = None,
        commits: Sequence[Commit] = (),
        refs: Sequence[RefUpdate] = (),
        token_counts: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        """Move refs, store blobs and commits and cache token counts in one transaction (see ``ObjectStore.write``).

        Blobs are verified against their hashes first (a mismatch raises
        ``IntegrityError`` and nothing is written). Commit hashes are
        trusted, as every backend trusts them; ``check()`` verifies them.
        """
        blob_rows = _checked_blobs(blobs or {})
        batch = _checked_commits(list(commits))
        updates = checked_refs(refs)
        token_rows = [
            row for tokenizer, counts in (token_counts or {}).items() for row in count_rows(tokenizer, counts)
        ]
        if not (blob_rows or batch or updates or token_rows):
            return
        commit_rows = [_commit_row(c) for c in batch]

        def run(conn: psycopg.Connection[Any]) -> None:
            for update in updates:
                swap(conn, update)
            if len(blob_rows) >= _COPY_AT:
                _copy_in(conn, "blobs", "hash, data", ("text", "bytea"), blob_rows)
            elif blob_rows:
                conn.cursor().executemany(_INSERT_BLOB, blob_rows)
            if len(commit_rows) >= _COPY_AT:
                _copy_in(conn, "commits", COLS, _COMMIT_TYPES, commit_rows)
            elif commit_rows:
                conn.cursor().executemany(_INSERT_COMMIT, commit_rows)
            if token_rows:
                conn.cursor().executemany(PUT_TOKENS, token_rows)

        def publish(conn: psycopg.Connection[Any]) -> None:
            # The common write, one commit published by one ref move: a single statement.
            (update,) = updates
            params = _publish_params(update, blob_rows, commit_rows, token_rows)
            row = conn.execute(_MOVE_AND_PUBLISH if update.expected else _CREATE_AND_PUBLISH, params).fetchone()
            if not row or row[0] != 1:
                current = conn.execute("SELECT value FROM refs WHERE name = %s", (update.name,)).fetchone()
                raise ConflictError(update.name, update.expected, current[0] if current else None)

        single = len(updates) == 1 and updates[0].new is not None and len(commit_rows) <= 1
        single = single and len(blob_rows) < _COPY_AT and len(token_rows) < _COPY_AT
        try:
            self._write(publish if single else run)
        except pg_errors.ForeignKeyViolation:
            raise self._read(lambda conn: _missing_link(conn, batch, {d for d, _ in blob_rows})) from None

    @pg_method("reading blobs")
    def get_blobs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """The stored bytes of each known hash; unknown hashes are left out. One statement."""
        keys = distinct(hashes, "get_blobs")
        if not keys:
            return {}
        rows = self._read(lambda conn: conn.execute(_GET_BLOBS, (keys,)).fetchall())
        return {h: bytes(d) for h, d in rows}

    @pg_method("reading commits")
    def get_commits(self, hashes: Iterable[str]) -> dict[str, Commit]:
        """Each known commit by hash; unknown hashes are left out. One statement."""
        keys = distinct(hashes, "get_commits")
        if not keys:
            return {}
        rows = self._read(lambda conn: conn.execute(_GET_COMMITS, (keys,)).fetchall())
        return {row[0]: commit_from_row(row) for row in rows}

    @pg_method("reading ancestors")
    def ancestors(self, start: str, *, limit: int | None = None) -> list[Commit]:
        """``start`` and its ancestors, newest first, at most ``limit``; empty if ``start`` is unknown. One statement."""
        n = sql_limit(limit)
        if n == 0 or not isinstance(start, str) or "\x00" in start:
            return []
        rows = self._read(lambda conn: conn.execute(_ANCESTORS, (start, _NO_LIMIT if n is None else n)).fetchall())
        return [commit_from_row(r) for r in rows]

    @pg_method("reading children")
    def children(self, commit: str) -> list[Commit]:
        """Commits whose parent is ``commit``, oldest first."""
        if not isinstance(commit, str) or "\x00" in commit:
            return []
        return [commit_from_row(r) for r in self._read(lambda conn: conn.execute(_CHILDREN, (commit,)).fetchall())]

    def _by_time(
        self, content_type: str | None, since: str | None, until: str | None, limit: int | None
    ) -> list[Commit]:
        where: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("content_type = %s", content_type),
            ("created_at >= %s", since),
            ("created_at <= %s", until),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = f"SELECT {COLS} FROM commits{' WHERE ' + ' AND '.join(where) if where else ''}"
        sql += " ORDER BY created_at DESC, seq DESC LIMIT %s"
        params.append(sql_limit(limit))
        return [commit_from_row(r) for r in self._read(lambda conn: conn.execute(sql, params).fetchall())]

    @pg_method("reading commits by type")
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

    @pg_method("reading commits by time")
    def commits_by_time(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[Commit]:
        """Commits with ``since <= created_at <= until``, newest first."""
        return self._by_time(None, since, until, limit)

    @pg_method("reading edits and deletes")
    def commits_targeting(self, targets: Iterable[str]) -> list[Commit]:
        """Edits and deletes whose target is one of ``targets``, oldest first. One statement."""
        keys = distinct(targets, "commits_targeting")
        if not keys:
            return []
        return [commit_from_row(r) for r in self._read(lambda conn: conn.execute(_TARGETING, (keys,)).fetchall())]

    @pg_method("finding commits")
    def find_commits(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Hashes starting with ``prefix`` (hex, any case), in hash order; empty for a non-hex prefix."""
        prefix = prefix.lower()
        n = sql_limit(limit)
        if not _HEX.match(prefix) or n == 0:
            return []
        # Every hex digit sorts below "g" (collation C), so [prefix, prefix + "g") is exactly the prefix's range.
        rows = self._read(lambda conn: conn.execute(_FIND, (prefix, prefix + "g", n)).fetchall())
        return [h for (h,) in rows]
