"""The documents facet on SQLite: a ``documents`` table and its FTS5 index for lexical search.

``search_text`` turns the query into FTS5 syntax itself: each word the
kernel's ``query_words`` finds becomes a quoted string, joined by ``OR``, so
nothing a user types is read as an FTS5 operator. Scores are FTS5's
``bm25()`` negated (FTS5 ranks lower as better; the contract says higher).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from cairn.model.embedding import Document, check_collection
from cairn.storage import DocumentStore, checked_documents, query_words
from cairn.vector_index import check_k
from cairn_sqlite.connection import SqliteConnection, distinct, json_text, sql_limit, sqlite_method

__all__ = ["SqliteDocuments"]

_COLUMNS = "d.collection, d.id, d.text, d.created, d.branch, d.metadata"
_ORDER = "ORDER BY d.created DESC, d.collection, d.id"
_PUT = (
    "INSERT INTO documents (collection, id, text_hash, created, branch, metadata, text) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (collection, id) DO UPDATE SET text_hash = excluded.text_hash, created = excluded.created, "
    "branch = excluded.branch, metadata = excluded.metadata, text = excluded.text"
)


def _document(row: Sequence[Any]) -> Document:
    collection, id, text, created, branch, metadata = row[:6]
    return Document(collection, id, text, created, branch, json.loads(metadata))


def _filters(collections: Sequence[str] | None, branch: str | None, since: str | None) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if collections is not None:
        clauses.append("d.collection IN (SELECT value FROM json_each(?))")
        params.append(json.dumps([check_collection(c) for c in collections]))
    if branch is not None:
        clauses.append("d.branch = ?")
        params.append(branch)
    if since is not None:
        clauses.append("d.created >= ?")
        params.append(since)
    return clauses, params


def _where(clauses: list[str]) -> str:
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


class SqliteDocuments(SqliteConnection, DocumentStore):
    """``DocumentStore`` over ``documents`` and ``documents_fts``."""

    @sqlite_method("storing documents")
    def put_documents(self, documents: Sequence[Document]) -> None:
        rows = []
        for doc in checked_documents(documents):
            rows.append(
                (
                    doc.collection,
                    doc.id,
                    doc.text_hash,
                    doc.created,
                    doc.branch,
                    json_text(dict(doc.metadata)),
                    doc.text,
                )
            )
        if not rows:
            return
        with self._write_transaction() as conn:
            conn.executemany(_PUT, rows)

    @sqlite_method("reading documents")
    def get_documents(self, collection: str, ids: Iterable[str]) -> dict[str, Document]:
        assert self._conn is not None
        wanted = distinct(ids, "get_documents")
        if not wanted:
            return {}
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM documents d WHERE d.collection = ? AND d.id IN (SELECT value FROM json_each(?))",
            (collection, json.dumps(wanted)),
        )
        return {row[1]: _document(row) for row in rows}

    @sqlite_method("listing documents")
    def documents(
        self,
        collections: Sequence[str] | None = None,
        *,
        branch: str | None = None,
        since: str | None = None,
        limit: int | None = None,
    ) -> list[Document]:
        assert self._conn is not None
        clauses, params = _filters(collections, branch, since)
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM documents d{_where(clauses)} {_ORDER} LIMIT ?", (*params, sql_limit(limit))
        )
        return [_document(row) for row in rows]

    @sqlite_method("reading documents")
    def documents_by_hash(
        self,
        hashes: Iterable[str],
        collections: Sequence[str] | None = None,
        *,
        branch: str | None = None,
        since: str | None = None,
    ) -> list[Document]:
        assert self._conn is not None
        wanted = distinct(hashes, "documents_by_hash")
        if not wanted:
            return []
        clauses, params = _filters(collections, branch, since)
        clauses.insert(0, "d.text_hash IN (SELECT value FROM json_each(?))")
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM documents d{_where(clauses)} {_ORDER}", (json.dumps(wanted), *params)
        )
        return [_document(row) for row in rows]

    @sqlite_method("reading documents")
    def texts(self, hashes: Iterable[str]) -> dict[str, str]:
        assert self._conn is not None
        wanted = distinct(hashes, "texts")
        if not wanted:
            return {}
        rows = self._conn.execute(
            "SELECT text_hash, text FROM documents WHERE text_hash IN (SELECT value FROM json_each(?))",
            (json.dumps(wanted),),
        )
        return dict(rows.fetchall())

    @sqlite_method("reading documents")
    def text_hashes(
        self, collections: Sequence[str] | None = None, *, branch: str | None = None, since: str | None = None
    ) -> set[str]:
        assert self._conn is not None
        clauses, params = _filters(collections, branch, since)
        return {h for (h,) in self._conn.execute(f"SELECT d.text_hash FROM documents d{_where(clauses)}", params)}

    @sqlite_method("listing collections")
    def collections(self) -> dict[str, int]:
        assert self._conn is not None
        rows = self._conn.execute("SELECT collection, count(*) FROM documents GROUP BY collection ORDER BY collection")
        return {name: int(n) for name, n in rows}

    @sqlite_method("deleting documents")
    def delete_documents(self, collection: str, ids: Iterable[str] | None = None) -> int:
        with self._write_transaction() as conn:
            if ids is None:
                cursor = conn.execute("DELETE FROM documents WHERE collection = ?", (collection,))
            else:
                cursor = conn.execute(
                    "DELETE FROM documents WHERE collection = ? AND id IN (SELECT value FROM json_each(?))",
                    (collection, json.dumps(distinct(ids, "delete_documents"))),
                )
            return int(cursor.rowcount)

    @sqlite_method("searching documents")
    def search_text(
        self,
        query: str,
        *,
        k: int,
        collections: Sequence[str] | None = None,
        branch: str | None = None,
        since: str | None = None,
    ) -> list[tuple[Document, float]]:
        assert self._conn is not None
        words = query_words(query)
        k = check_k(k)
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        clauses, params = _filters(collections, branch, since)
        clauses.insert(0, "documents_fts MATCH ?")
        rows = self._conn.execute(
            f"SELECT {_COLUMNS}, bm25(documents_fts) AS rank FROM documents_fts "
            f"JOIN documents d ON d.rowid = documents_fts.rowid{_where(clauses)} "
            "ORDER BY rank, d.collection, d.id LIMIT ?",
            (match, *params, k),
        )
        return [(_document(row), -float(row[6])) for row in rows]
