"""The maintenance facet on PostgreSQL: stats, garbage collection and the integrity check.

``gc`` works out what no ref reaches with a recursive query into a temporary
table and deletes it in the same transaction, holding the ``refs`` table
against writers meanwhile (reads go on). ``check`` reads one consistent
snapshot: every commit, every ref, and the blobs streamed through a
server-side cursor, never all in memory at once, into the
backend-independent ``check_objects``.
"""

from __future__ import annotations

import collections.abc
from collections.abc import Iterator
from typing import Any

import psycopg

from cairn.storage import GcReport, Maintenance, Problem, StoreStats, check_objects
from cairn_postgres.connection import PostgresConnection, pg_method
from cairn_postgres.objects import COLS, commit_from_row

__all__ = ["PostgresMaintenance"]

# The live set follows parents and edit/delete targets from every ref whose
# value is a stored commit (symbolic values match no hash), so every
# surviving link stays intact and check() stays clean.
_GC_LIVE = """
CREATE TEMP TABLE gc_live ON COMMIT DROP AS
WITH RECURSIVE live(hash) AS (
    SELECT c.hash FROM refs JOIN commits AS c ON c.hash = refs.value
    UNION
    SELECT link.hash FROM live
    JOIN commits AS c ON c.hash = live.hash
    CROSS JOIN LATERAL (VALUES (c.parent), (c.target), (c.merge_parent)) AS link(hash)
    WHERE link.hash IS NOT NULL
)
SELECT hash FROM live
"""
_GC_DEAD = (
    "CREATE TEMP TABLE gc_dead ON COMMIT DROP AS "
    "SELECT hash FROM commits WHERE NOT EXISTS (SELECT 1 FROM gc_live WHERE gc_live.hash = commits.hash)"
)
_GC_DEAD_BLOBS = (
    "CREATE TEMP TABLE gc_dead_blobs ON COMMIT DROP AS SELECT hash FROM blobs WHERE NOT EXISTS ("
    "SELECT 1 FROM gc_live JOIN commits AS c ON c.hash = gc_live.hash WHERE c.content_hash = blobs.hash)"
)
_GC_COUNTS = """
SELECT (SELECT count(*) FROM gc_dead), (SELECT count(*) FROM gc_dead_blobs),
       (SELECT count(*) FROM annotations WHERE target IN (SELECT hash FROM gc_dead))
"""
_GC_DELETE = (
    "DELETE FROM annotations WHERE target IN (SELECT hash FROM gc_dead)",
    "DELETE FROM commits WHERE hash IN (SELECT hash FROM gc_dead)",
    "DELETE FROM token_counts WHERE hash IN (SELECT hash FROM gc_dead_blobs)",
    "DELETE FROM blobs WHERE hash IN (SELECT hash FROM gc_dead_blobs)",
)


class _StreamedBlobs(collections.abc.Mapping[str, bytes]):
    """Every stored blob, for ``check_objects``: hashes in memory, bytes streamed by a server-side cursor."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._hashes = {h for (h,) in conn.execute("SELECT hash FROM blobs")}

    def __getitem__(self, key: str) -> bytes:
        row = self._conn.execute("SELECT data FROM blobs WHERE hash = %s", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return bytes(row[0])

    def __contains__(self, key: object) -> bool:
        return key in self._hashes

    def __iter__(self) -> Iterator[str]:
        return iter(self._hashes)

    def __len__(self) -> int:
        return len(self._hashes)

    def items(self) -> collections.abc.ItemsView[str, bytes]:
        return _StreamedItems(self)


class _StreamedItems(collections.abc.ItemsView[str, bytes]):
    _mapping: _StreamedBlobs

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        with self._mapping._conn.cursor(name="cairn_check_blobs") as cursor:
            cursor.itersize = 500
            cursor.execute("SELECT hash, data FROM blobs")
            for digest, data in cursor:
                yield digest, bytes(data)


class PostgresMaintenance(PostgresConnection, Maintenance):
    """``Maintenance`` over every table of the schema."""

    @pg_method("reading statistics")
    def stats(self) -> StoreStats:
        """Object counts; ``bytes`` is the size of the schema's tables and indexes on the server."""

        def read(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM blobs), (SELECT count(*) FROM commits), (SELECT count(*) FROM refs), "
                "(SELECT count(*) FROM annotations), (SELECT count(*) FROM token_counts), "
                "(SELECT max(version) FROM migrations), current_setting('server_version'), current_database()"
            ).fetchone()
            size = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class AS c "
                "JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
                (self.schema,),
            ).fetchone()
            assert counts is not None and size is not None
            return (*counts, size[0])

        blobs, commits, refs, annotations, tokens, version, server, database, size = self._snapshot(read)
        return StoreStats(
            blobs=blobs,
            commits=commits,
            refs=refs,
            annotations=annotations,
            bytes=int(size),
            details={
                "backend": "postgres",
                "dsn": self.shown,
                "database": database,
                "schema": self.schema,
                "schema_version": version,
                "token_counts": tokens,
                "server_version": server,
            },
        )

    @pg_method("collecting garbage")
    def gc(self, *, dry_run: bool = False) -> GcReport:
        """Remove commits no ref reaches, the blobs no surviving commit uses, and their annotations and token counts.

        One transaction; ``dry_run`` counts the same and removes nothing.
        """

        def run(conn: psycopg.Connection[Any]) -> tuple[int, int, int]:
            if not dry_run:
                # No ref moves (and so no new commit is published) while the live set is worked out.
                conn.execute("LOCK TABLE refs IN EXCLUSIVE MODE")
            for statement in (_GC_LIVE, _GC_DEAD, _GC_DEAD_BLOBS):
                conn.execute(statement)
            row = conn.execute(_GC_COUNTS).fetchone()
            assert row is not None
            if not dry_run:
                for statement in _GC_DELETE:
                    conn.execute(statement)
            return int(row[0]), int(row[1]), int(row[2])

        commits, blobs, annotations = self._write(run)
        return GcReport(commits_removed=commits, blobs_removed=blobs, annotations_removed=annotations, dry_run=dry_run)

    @pg_method("checking the store")
    def check(self) -> list[Problem]:
        """Every problem found in one snapshot: hashes, links, derived fields, refs."""

        def run(conn: psycopg.Connection[Any]) -> list[Problem]:
            commits = [commit_from_row(row) for row in conn.execute(f"SELECT {COLS} FROM commits")]
            refs = dict(conn.execute("SELECT name, value FROM refs ORDER BY name").fetchall())
            return check_objects(self, commits, _StreamedBlobs(conn), refs)

        return self._snapshot(run)
