"""The maintenance facet on SQLite: stats, garbage collection and the integrity check.

``gc`` works out what no ref reaches with a recursive CTE into temporary
tables and deletes it in the same transaction. ``check`` runs SQLite's own
integrity and foreign-key checks, then the backend-independent
``check_objects`` over every commit and blob (blob bytes streamed, never all
in memory at once).
"""

from __future__ import annotations

import collections.abc
import sqlite3
from collections.abc import Iterator

from cairn.storage import GcReport, Maintenance, Problem, StoreStats, check_objects
from cairn_sqlite.connection import SqliteConnection, is_corruption, sqlite_method
from cairn_sqlite.objects import COLS, commit_from_row

__all__ = ["SqliteMaintenance"]

# gc: the live set follows parents (both of a merge) and edit/delete targets from every ref
# whose value is a stored commit (symbolic values match no hash). Following
# targets too keeps every surviving link intact, so check() stays clean.
_GC_SQL = (
    "CREATE TEMP TABLE gc_live (hash TEXT PRIMARY KEY)",
    "CREATE TEMP TABLE gc_dead (hash TEXT PRIMARY KEY)",
    "CREATE TEMP TABLE gc_dead_blobs (hash TEXT PRIMARY KEY)",
    """
    WITH RECURSIVE live(hash) AS (
        SELECT commits.hash FROM refs JOIN commits ON commits.hash = refs.value
        UNION
        SELECT n.hash FROM live
        JOIN commits AS c ON c.hash = live.hash
        JOIN commits AS n ON n.hash = c.parent OR n.hash = c.target OR n.hash = c.merge_parent
    )
    INSERT INTO temp.gc_live (hash) SELECT hash FROM live
    """,
    "INSERT INTO temp.gc_dead (hash) SELECT hash FROM commits WHERE hash NOT IN (SELECT hash FROM temp.gc_live)",
    """
    INSERT INTO temp.gc_dead_blobs (hash)
    SELECT hash FROM blobs WHERE hash NOT IN (
        SELECT c.content_hash FROM temp.gc_live AS l JOIN commits AS c ON c.hash = l.hash
        WHERE c.content_hash IS NOT NULL
    )
    """,
)
_GC_COUNTS = """
SELECT
    (SELECT count(*) FROM temp.gc_dead),
    (SELECT count(*) FROM temp.gc_dead_blobs),
    (SELECT count(*) FROM annotations WHERE target IN (SELECT hash FROM temp.gc_dead))
"""
_GC_DELETE = (
    "DELETE FROM annotations WHERE target IN (SELECT hash FROM temp.gc_dead)",
    "DELETE FROM commits WHERE hash IN (SELECT hash FROM temp.gc_dead)",
    "DELETE FROM token_counts WHERE hash IN (SELECT hash FROM temp.gc_dead_blobs)",
    "DELETE FROM blobs WHERE hash IN (SELECT hash FROM temp.gc_dead_blobs)",
)
_GC_DROP = ("DROP TABLE temp.gc_live", "DROP TABLE temp.gc_dead", "DROP TABLE temp.gc_dead_blobs")


class _StreamedBlobs(collections.abc.Mapping[str, bytes]):
    """Every stored blob, for ``check_objects``: hashes in memory, bytes streamed one row at a time."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._hashes = {h for (h,) in conn.execute("SELECT hash FROM blobs")}

    def __getitem__(self, key: str) -> bytes:
        row = self._conn.execute("SELECT data FROM blobs WHERE hash = ?", (key,)).fetchone()
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
    """One query for all (hash, bytes) pairs instead of one query per blob."""

    _mapping: _StreamedBlobs

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        for digest, data in self._mapping._conn.execute("SELECT hash, data FROM blobs"):
            yield digest, bytes(data)


class SqliteMaintenance(SqliteConnection, Maintenance):
    """``Maintenance`` over every table of the file."""

    @sqlite_method("reading statistics")
    def stats(self) -> StoreStats:
        """Object counts; ``bytes`` is the database size (page_count * page_size)."""
        with self._read_transaction() as conn:
            blobs, commits, refs, annotations, tokens = conn.execute(
                "SELECT (SELECT count(*) FROM blobs), (SELECT count(*) FROM commits), (SELECT count(*) FROM refs), "
                "(SELECT count(*) FROM annotations), (SELECT count(*) FROM token_counts)"
            ).fetchone()
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            version = conn.execute("SELECT max(version) FROM migrations").fetchone()[0]
        return StoreStats(
            blobs=blobs,
            commits=commits,
            refs=refs,
            annotations=annotations,
            bytes=pages * page_size,
            details={
                "backend": "sqlite",
                "path": self.path,
                "schema_version": version,
                "token_counts": tokens,
                "page_size": page_size,
                "pages": pages,
                "free_pages": free,
                "sqlite_version": sqlite3.sqlite_version,
            },
        )

    @sqlite_method("collecting garbage")
    def gc(self, *, dry_run: bool = False) -> GcReport:
        """Remove commits no ref reaches, the blobs no surviving commit uses, and their annotations and token counts.

        Reachability follows parents and edit/delete targets from every ref
        whose value is a stored commit hash (symbolic refs are skipped). One
        transaction; ``dry_run`` counts the same and removes nothing.
        """
        begin = self._read_transaction if dry_run else self._write_transaction
        with begin() as conn:
            for statement in _GC_SQL:
                conn.execute(statement)
            commits, blobs, annotations = conn.execute(_GC_COUNTS).fetchone()
            if not dry_run:
                for statement in _GC_DELETE:
                    conn.execute(statement)
            for statement in _GC_DROP:
                conn.execute(statement)
        return GcReport(commits_removed=commits, blobs_removed=blobs, annotations_removed=annotations, dry_run=dry_run)

    @sqlite_method("checking the database")
    def check(self) -> list[Problem]:
        """Every problem found: SQLite's own integrity and foreign-key checks, hashes, links, derived fields, refs.

        A database too damaged to read is reported as a problem, not raised.
        """
        problems: list[Problem] = []
        try:
            self._check(problems)
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise
            problems.append(
                Problem(
                    "other",
                    self.path,
                    f"the database is corrupt and could not be read in full ({exc}); restore it from a backup, "
                    f"or try `sqlite3 {self.path} .recover`",
                )
            )
        return problems

    def _check(self, problems: list[Problem]) -> None:
        with self._read_transaction() as conn:
            for (message,) in conn.execute("PRAGMA integrity_check"):
                if message != "ok":
                    problems.append(Problem("other", self.path, f"SQLite integrity check: {message}"))
            for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check"):
                problems.append(Problem("other", f"{table}:{rowid}", f"refers to a missing row of {parent}"))
            commits = [commit_from_row(row) for row in conn.execute(f"SELECT {COLS} FROM commits")]
            refs = dict(conn.execute("SELECT name, value FROM refs ORDER BY name").fetchall())
            problems.extend(check_objects(self, commits, _StreamedBlobs(conn), refs))
