"""The vectors facet on PostgreSQL: one row per (embedder, text hash), the vector as float32 ``bytea``.

Embedders get a small integer id in ``embedders`` the first time they store
a vector, so the wide key is not repeated in every row; two processes
storing an embedder's first vectors at once both end up with its one id
(``INSERT ... ON CONFLICT DO NOTHING`` waits for the other's commit, and the
next statement sees it). ``put_vectors`` writes a whole batch as one
``INSERT ... SELECT FROM unnest(...)`` in one transaction: one round trip
and one commit, however many vectors.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import psycopg

from cairn.errors import ValidationError
from cairn.model.embedding import EmbedderIdentity, check_vector_bytes
from cairn.storage import VectorStore
from cairn_postgres.connection import PostgresConnection, distinct, pg_method

__all__ = ["PostgresVectors"]

_FIND = "SELECT id FROM embedders WHERE provider = %s AND model = %s AND dimensions = %s"
_PUT = (
    "INSERT INTO vectors (embedder, hash, vector) SELECT %s, h, v FROM unnest(%s::text[], %s::bytea[]) AS t (h, v) "
    "ON CONFLICT (embedder, hash) DO NOTHING"
)


def _key(identity: EmbedderIdentity) -> tuple[str, str, int] | None:
    """The identity as embedders columns; None when it cannot be stored (NUL: PostgreSQL text holds none)."""
    if "\x00" in identity.provider or "\x00" in identity.model:
        return None
    return (identity.provider, identity.model, identity.dimensions)


def _embedder_id(conn: psycopg.Connection[Any], identity: EmbedderIdentity) -> int | None:
    key = _key(identity)
    row = None if key is None else conn.execute(_FIND, key).fetchone()
    return None if row is None else int(row[0])


class PostgresVectors(PostgresConnection, VectorStore):
    """``VectorStore`` over the ``embedders`` and ``vectors`` tables."""

    @pg_method("storing vectors")
    def put_vectors(self, identity: EmbedderIdentity, vectors: Mapping[str, bytes]) -> int:
        checked = check_vector_bytes(identity, vectors)
        if not checked:
            return 0
        key = _key(identity)
        if key is None:
            raise ValidationError(f"embedder {identity} holds a NUL character", what="put_vectors")
        hashes = sorted(checked)  # one order for every writer: overlapping batches never deadlock

        def run(conn: psycopg.Connection[Any]) -> int:
            conn.execute(
                "INSERT INTO embedders (provider, model, dimensions) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", key
            )
            embedder = _embedder_id(conn, identity)
            assert embedder is not None, "the embedder was stored by this transaction or a committed one"
            return conn.execute(_PUT, (embedder, hashes, [checked[h] for h in hashes])).rowcount

        return self._write(run)

    @pg_method("reading vectors")
    def get_vectors(self, identity: EmbedderIdentity, hashes: Iterable[str]) -> dict[str, bytes]:
        wanted = distinct(hashes, "get_vectors")
        if not wanted:
            return {}

        def run(conn: psycopg.Connection[Any]) -> list[tuple[str, bytes]]:
            embedder = _embedder_id(conn, identity)
            if embedder is None:
                return []
            sql = "SELECT hash, vector FROM vectors WHERE embedder = %s AND hash = ANY(%s)"
            return conn.execute(sql, (embedder, wanted)).fetchall()

        return {digest: bytes(data) for digest, data in self._read(run)}

    @pg_method("reading vectors")
    def stored_vectors(self, identity: EmbedderIdentity, hashes: Iterable[str]) -> set[str]:
        wanted = distinct(hashes, "stored_vectors")
        if not wanted:
            return set()

        def run(conn: psycopg.Connection[Any]) -> list[tuple[str]]:
            embedder = _embedder_id(conn, identity)
            if embedder is None:
                return []
            sql = "SELECT hash FROM vectors WHERE embedder = %s AND hash = ANY(%s)"
            return conn.execute(sql, (embedder, wanted)).fetchall()

        return {digest for (digest,) in self._read(run)}

    def iter_vectors(self, identity: EmbedderIdentity, *, batch: int = 1000) -> Iterator[list[tuple[str, bytes]]]:
        after = ""
        while True:
            page = self._vector_page(identity, after, batch)
            if not page:
                return
            yield page
            after = page[-1][0]

    @pg_method("reading vectors")
    def _vector_page(self, identity: EmbedderIdentity, after: str, batch: int) -> list[tuple[str, bytes]]:
        def run(conn: psycopg.Connection[Any]) -> list[tuple[str, bytes]]:
            embedder = _embedder_id(conn, identity)
            if embedder is None:
                return []
            sql = "SELECT hash, vector FROM vectors WHERE embedder = %s AND hash > %s ORDER BY hash LIMIT %s"
            return conn.execute(sql, (embedder, after, max(int(batch), 1))).fetchall()

        return [(digest, bytes(data)) for digest, data in self._read(run)]

    @pg_method("counting vectors")
    def vector_counts(self) -> dict[EmbedderIdentity, int]:
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT e.provider, e.model, e.dimensions, count(*) FROM vectors AS v "
                "JOIN embedders AS e ON e.id = v.embedder GROUP BY e.id, e.provider, e.model, e.dimensions"
            ).fetchall()
        )
        return {EmbedderIdentity(p, m, d): int(n) for p, m, d, n in rows}

    @pg_method("deleting vectors")
    def delete_vectors(self, identity: EmbedderIdentity) -> int:
        def run(conn: psycopg.Connection[Any]) -> int:
            embedder = _embedder_id(conn, identity)
            if embedder is None:
                return 0
            return int(conn.execute("DELETE FROM vectors WHERE embedder = %s", (embedder,)).rowcount)

        return self._write(run)
