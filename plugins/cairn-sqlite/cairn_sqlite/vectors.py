"""The vectors facet on SQLite: one row per (embedder, text hash), the vector as a float32 blob.

Embedders get a small integer id in ``embedders`` the first time they store
a vector, so the wide key is not repeated in every row. ``put_vectors``
writes a whole batch in one transaction (one fsync) and one statement,
which is what keeps ``cairn memory index`` close to the embedder's own
speed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping

from cairn.model.embedding import EmbedderIdentity, check_vector_bytes
from cairn.storage import VectorStore
from cairn_sqlite.connection import SqliteConnection, distinct, sqlite_method

__all__ = ["SqliteVectors"]

_KEYS = "(SELECT value FROM json_each(?))"
#: One statement stores a whole batch: the vectors as one blob cut by ``substr`` (bytes, for a blob) at
#: each hash's position in a JSON array. One call into SQLite instead of one per row, so the writing
#: thread does not take Python's lock back thousands of times while an embedder runs beside it.
#: (``WHERE true`` tells the parser that ON CONFLICT belongs to the INSERT, not to a join.)
_INSERT = (
    "INSERT INTO vectors (embedder, hash, vector) SELECT ?1, j.value, substr(?2, j.key * ?4 + 1, ?4) "
    "FROM json_each(?3) AS j WHERE true ON CONFLICT DO NOTHING"
)
#: Rows per statement: a bound on the blob built for it (8 MiB at 512 dimensions).
_ROWS_PER_STATEMENT = 4096


def _embedder_id(conn: sqlite3.Connection, identity: EmbedderIdentity) -> int | None:
    row = conn.execute(
        "SELECT id FROM embedders WHERE provider = ? AND model = ? AND dimensions = ?",
        (identity.provider, identity.model, identity.dimensions),
    ).fetchone()
    return None if row is None else int(row[0])


class SqliteVectors(SqliteConnection, VectorStore):
    """``VectorStore`` over the ``embedders`` and ``vectors`` tables."""

    @sqlite_method("storing vectors")
    def put_vectors(self, identity: EmbedderIdentity, vectors: Mapping[str, bytes]) -> int:
        checked = check_vector_bytes(identity, vectors)
        if not checked:
            return 0
        width = 4 * identity.dimensions
        with self._write_transaction() as conn:
            embedder = _embedder_id(conn, identity)
            if embedder is None:
                embedder = conn.execute(
                    "INSERT INTO embedders (provider, model, dimensions) VALUES (?, ?, ?)",
                    (identity.provider, identity.model, identity.dimensions),
                ).lastrowid
            before = conn.total_changes
            digests = list(checked)
            for start in range(0, len(digests), _ROWS_PER_STATEMENT):
                part = digests[start : start + _ROWS_PER_STATEMENT]
                conn.execute(_INSERT, (embedder, b"".join(checked[d] for d in part), json.dumps(part), width))
            return conn.total_changes - before

    @sqlite_method("reading vectors")
    def get_vectors(self, identity: EmbedderIdentity, hashes: Iterable[str]) -> dict[str, bytes]:
        assert self._conn is not None
        wanted = distinct(hashes, "get_vectors")
        embedder = _embedder_id(self._conn, identity)
        if embedder is None or not wanted:
            return {}
        rows = self._conn.execute(
            f"SELECT hash, vector FROM vectors WHERE embedder = ? AND hash IN {_KEYS}", (embedder, json.dumps(wanted))
        )
        return {digest: bytes(data) for digest, data in rows}

    @sqlite_method("reading vectors")
    def stored_vectors(self, identity: EmbedderIdentity, hashes: Iterable[str]) -> set[str]:
        assert self._conn is not None
        wanted = distinct(hashes, "stored_vectors")
        embedder = _embedder_id(self._conn, identity)
        if embedder is None or not wanted:
            return set()
        rows = self._conn.execute(
            f"SELECT hash FROM vectors WHERE embedder = ? AND hash IN {_KEYS}", (embedder, json.dumps(wanted))
        )
        return {digest for (digest,) in rows}

    def iter_vectors(self, identity: EmbedderIdentity, *, batch: int = 1000) -> Iterator[list[tuple[str, bytes]]]:
        after = ""
        while True:
            page = self._vector_page(identity, after, batch)
            if not page:
                return
            yield page
            after = page[-1][0]

    @sqlite_method("reading vectors")
    def _vector_page(self, identity: EmbedderIdentity, after: str, batch: int) -> list[tuple[str, bytes]]:
        assert self._conn is not None
        embedder = _embedder_id(self._conn, identity)
        if embedder is None:
            return []
        rows = self._conn.execute(
            "SELECT hash, vector FROM vectors WHERE embedder = ? AND hash > ? ORDER BY hash LIMIT ?",
            (embedder, after, batch),
        )
        return [(digest, bytes(data)) for digest, data in rows]

    @sqlite_method("counting vectors")
    def vector_counts(self) -> dict[EmbedderIdentity, int]:
        assert self._conn is not None
        rows = self._conn.execute(
            "SELECT e.provider, e.model, e.dimensions, count(*) FROM vectors v JOIN embedders e ON e.id = v.embedder "
            "GROUP BY v.embedder"
        )
        return {EmbedderIdentity(p, m, d): n for p, m, d, n in rows}

    @sqlite_method("deleting vectors")
    def delete_vectors(self, identity: EmbedderIdentity) -> int:
        with self._write_transaction() as conn:
            embedder = _embedder_id(conn, identity)
            if embedder is None:
                return 0
            return int(conn.execute("DELETE FROM vectors WHERE embedder = ?", (embedder,)).rowcount)
