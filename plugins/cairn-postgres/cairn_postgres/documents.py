"""The documents facet on PostgreSQL: a ``documents`` table with a ``tsvector`` of each text's words.

The full-text index follows the contract's word rules exactly, not a text
search configuration's: cairn splits a text into words itself (``\\w+``,
case-folded, as ``query_words`` splits a query) and stores them as a
``tsvector`` literal of quoted lexemes, each with one position per
occurrence (so ``cardinality(positions)`` is the term frequency, up to
PostgreSQL's 256), with the word count in ``length``. ``search_text``
builds a ``tsquery`` of the query's words, each quoted and joined by ``|``:
nothing a user types is read as a tsquery operator. The GIN index finds the
documents holding any word; the score is BM25 (k1 = 1.2, b = 0.75, the
idf of Lucene, always positive) from the documents' frequencies and
lengths, computed in the same statement. Higher is better.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from cairn.errors import ValidationError
from cairn.model.embedding import Document, check_collection
from cairn.storage import DocumentStore, checked_documents, query_words
from cairn.vector_index import check_k
from cairn_postgres.connection import PostgresConnection, distinct, json_text, pg_method, sql_limit

__all__ = ["PostgresDocuments", "index_words"]

_WORD = re.compile(r"\w+", re.UNICODE)  # the word rule of cairn.storage.query_words
#: PostgreSQL refuses a lexeme longer than this many bytes; such a "word" (a blob) is not indexed.
_MAX_LEXEME = 2046
#: ... and a tsvector whose lexemes total this many bytes or more.
_MAX_LEXEMES_BYTES = (1 << 20) - 1
#: Positions a tsvector keeps per lexeme: the largest term frequency BM25 sees.
_MAX_POSITIONS = 256

_COLUMNS = "d.collection, d.id, d.text, d.created, d.branch, d.metadata"
_ORDER = "ORDER BY d.created DESC, d.collection, d.id"
_PUT = (
    "INSERT INTO documents (collection, id, text_hash, created, branch, metadata, text, length, words) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::tsvector) "
    "ON CONFLICT (collection, id) DO UPDATE SET text_hash = excluded.text_hash, created = excluded.created, "
    "branch = excluded.branch, metadata = excluded.metadata, text = excluded.text, length = excluded.length, "
    "words = excluded.words"
)
# BM25 over the matching documents; n and avgdl are of the whole table (as FTS5's bm25() counts them).
_SEARCH = """
WITH q AS (SELECT w, ('''' || w || '''')::tsquery AS tq FROM unnest(%s::text[]) AS w),
corpus AS (SELECT count(*)::float8 AS n, greatest(coalesce(avg(length), 0), 1)::float8 AS avgdl FROM documents),
idf AS (
    SELECT q.w, ln(1 + (c.n - x.df + 0.5) / (x.df + 0.5)) AS idf
    FROM q CROSS JOIN corpus AS c
    CROSS JOIN LATERAL (SELECT count(*)::float8 AS df FROM documents WHERE words @@ q.tq) AS x
)
SELECT {columns}, s.score FROM documents AS d CROSS JOIN corpus AS c
CROSS JOIN LATERAL (
    SELECT sum(i.idf * cardinality(u.positions) * 2.2
               / (cardinality(u.positions) + 1.2 * (0.25 + 0.75 * d.length / c.avgdl))) AS score
    FROM unnest(d.words) AS u JOIN idf AS i ON i.w = u.lexeme
) AS s
WHERE d.words @@ %s::tsquery{filters}
ORDER BY s.score DESC, d.collection, d.id LIMIT %s
"""


def _quoted(word: str) -> str:
    """A lexeme as a quoted tsvector/tsquery literal: quotes and backslashes doubled, nothing else read."""
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


def index_words(text: str, shown: str) -> tuple[int, str]:
    """The word count of ``text`` and its ``tsvector`` literal; ``ValidationError`` when the distinct words
    are too many for one PostgreSQL tsvector."""
    counts = Counter(w.casefold() for w in _WORD.findall(text))
    kept = {w: n for w, n in counts.items() if len(w.encode()) <= _MAX_LEXEME}
    if sum(len(w.encode()) for w in kept) >= _MAX_LEXEMES_BYTES:
        raise ValidationError(
            f"document {shown}: its distinct words total over {_MAX_LEXEMES_BYTES} bytes, more than a "
            "PostgreSQL full-text index holds",
            what="document",
            hint="split it into passages",
        )
    literal = " ".join(
        f"{_quoted(w)}:{','.join(str(p) for p in range(1, min(n, _MAX_POSITIONS) + 1))}" for w, n in kept.items()
    )
    return sum(counts.values()), literal


def _document(row: Sequence[Any]) -> Document:
    collection, id, text, created, branch, metadata = row[:6]
    return Document(collection, id, bytes(text).decode(), created, branch, json.loads(metadata))


def _filters(collections: Sequence[str] | None, branch: str | None, since: str | None) -> tuple[str, list[Any]]:
    """`` AND ...`` conditions for the filters (empty when none) and their parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    if collections is not None:
        clauses.append("d.collection = ANY(%s)")
        params.append([check_collection(c) for c in collections])
    if branch is not None:
        clauses.append("d.branch = %s")
        params.append(branch)
    if since is not None:
        clauses.append("d.created >= %s")
        params.append(since)
    return "".join(f" AND {c}" for c in clauses), params


def _no_nul(*values: str | None) -> bool:
    return all(v is None or "\x00" not in v for v in values)


class PostgresDocuments(PostgresConnection, DocumentStore):
    """``DocumentStore`` over the ``documents`` table and its GIN index of words."""

    @pg_method("storing documents")
    def put_documents(self, documents: Sequence[Document]) -> None:
        rows = []
        for doc in checked_documents(documents):
            length, words = index_words(doc.text, f"{doc.collection}/{doc.id}")
            meta = json_text(dict(doc.metadata))
            rows.append(
                (doc.collection, doc.id, doc.text_hash, doc.created, doc.branch, meta, doc.text.encode(), length, words)
            )
        if not rows:
            return
        rows.sort(key=lambda row: (row[0], row[1]))  # one order for every writer: batches never deadlock

        def run(conn: psycopg.Connection[Any]) -> None:
            conn.cursor().executemany(_PUT, rows)

        self._write(run)

    @pg_method("reading documents")
    def get_documents(self, collection: str, ids: Iterable[str]) -> dict[str, Document]:
        wanted = distinct(ids, "get_documents")
        if not wanted or not _no_nul(collection):
            return {}
        sql = f"SELECT {_COLUMNS} FROM documents AS d WHERE d.collection = %s AND d.id = ANY(%s)"
        rows = self._read(lambda conn: conn.execute(sql, (collection, wanted)).fetchall())
        return {row[1]: _document(row) for row in rows}

    @pg_method("listing documents")
    def documents(
        self,
        collections: Sequence[str] | None = None,
        *,
        branch: str | None = None,
        since: str | None = None,
        limit: int | None = None,
    ) -> list[Document]:
        if not _no_nul(branch, since):
            return []
        clause, params = _filters(collections, branch, since)
        sql = f"SELECT {_COLUMNS} FROM documents AS d WHERE true{clause} {_ORDER} LIMIT %s"
        rows = self._read(lambda conn: conn.execute(sql, (*params, sql_limit(limit))).fetchall())
        return [_document(row) for row in rows]

    @pg_method("reading documents")
    def documents_by_hash(
        self,
        hashes: Iterable[str],
        collections: Sequence[str] | None = None,
        *,
        branch: str | None = None,
        since: str | None = None,
    ) -> list[Document]:
        wanted = distinct(hashes, "documents_by_hash")
        if not wanted or not _no_nul(branch, since):
            return []
        clause, params = _filters(collections, branch, since)
        sql = f"SELECT {_COLUMNS} FROM documents AS d WHERE d.text_hash = ANY(%s){clause} {_ORDER}"
        rows = self._read(lambda conn: conn.execute(sql, (wanted, *params)).fetchall())
        return [_document(row) for row in rows]

    @pg_method("reading documents")
    def texts(self, hashes: Iterable[str]) -> dict[str, str]:
        wanted = distinct(hashes, "texts")
        if not wanted:
            return {}
        sql = "SELECT DISTINCT ON (text_hash) text_hash, text FROM documents WHERE text_hash = ANY(%s)"
        rows = self._read(lambda conn: conn.execute(sql, (wanted,)).fetchall())
        return {digest: bytes(text).decode() for digest, text in rows}

    @pg_method("reading documents")
    def text_hashes(
        self, collections: Sequence[str] | None = None, *, branch: str | None = None, since: str | None = None
    ) -> set[str]:
        if not _no_nul(branch, since):
            return set()
        clause, params = _filters(collections, branch, since)
        sql = f"SELECT DISTINCT d.text_hash FROM documents AS d WHERE true{clause}"
        return {h for (h,) in self._read(lambda conn: conn.execute(sql, params).fetchall())}

    @pg_method("listing collections")
    def collections(self) -> dict[str, int]:
        sql = "SELECT collection, count(*) FROM documents GROUP BY collection ORDER BY collection"
        return {name: int(n) for name, n in self._read(lambda conn: conn.execute(sql).fetchall())}

    @pg_method("deleting documents")
    def delete_documents(self, collection: str, ids: Iterable[str] | None = None) -> int:
        wanted = None if ids is None else distinct(ids, "delete_documents")
        if not _no_nul(collection) or wanted == []:
            return 0

        def run(conn: psycopg.Connection[Any]) -> int:
            if wanted is None:
                cursor = conn.execute("DELETE FROM documents WHERE collection = %s", (collection,))
            else:
                cursor = conn.execute(
                    "DELETE FROM documents WHERE collection = %s AND id = ANY(%s)", (collection, wanted)
                )
            return int(cursor.rowcount)

        return self._write(run)

    @pg_method("searching documents")
    def search_text(
        self,
        query: str,
        *,
        k: int,
        collections: Sequence[str] | None = None,
        branch: str | None = None,
        since: str | None = None,
    ) -> list[tuple[Document, float]]:
        words = [w for w in query_words(query) if len(w.encode()) <= _MAX_LEXEME]
        k = check_k(k)
        clause, params = _filters(collections, branch, since)
        if not words or not _no_nul(branch, since):
            return []  # a word too long to index is held by no document
        tsquery = " | ".join(_quoted(w) for w in words)
        sql = _SEARCH.format(columns=_COLUMNS, filters=clause)
        rows = self._read(lambda conn: conn.execute(sql, (words, tsquery, *params, k)).fetchall())
        return [(_document(row), float(row[6])) for row in rows]
