"""The vectors and documents facets on git: a rebuildable SQLite cache beside the repository.

Vectors and the documents cairn gathers (context, runs, chat, facts and
episodes) are derived from what the repository holds, so they are kept
outside git objects, in ``<git dir>/cairn/memory-cache.db`` (stdlib
``sqlite3``, WAL, FTS5 for lexical search): never pushed, never pulled,
never in the way of a clone. Deleting the file loses nothing that
``cairn memory index`` cannot rebuild, except user collections
(``cairn memory add``), which live only in this cache on the git backend
(export them with ``cairn memory search --json`` or keep their source files).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from cairn.errors import StorageError, ValidationError
from cairn.model.embedding import Document, EmbedderIdentity, check_collection, check_vector_bytes
from cairn.storage import DocumentStore, VectorStore, checked_documents, query_words
from cairn.vector_index import check_k
from cairn_git._base import GitBase

__all__ = ["CACHE_FILE", "GitMemoryCache"]

#: The cache's path inside the git directory.
CACHE_FILE = "cairn/memory-cache.db"

#: Seconds to keep trying while another process holds the cache file's lock.
_OPEN_PATIENCE = 30.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS embedders (id INTEGER PRIMARY KEY, provider TEXT NOT NULL, model TEXT NOT NULL, "
    "dimensions INTEGER NOT NULL, UNIQUE (provider, model, dimensions))",
    "CREATE TABLE IF NOT EXISTS vectors (embedder INTEGER NOT NULL, hash TEXT NOT NULL, vector BLOB NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS vectors_key ON vectors (embedder, hash)",
    "CREATE TABLE IF NOT EXISTS documents (rowid INTEGER PRIMARY KEY, collection TEXT NOT NULL, id TEXT NOT NULL, "
    "text_hash TEXT NOT NULL, created TEXT NOT NULL, branch TEXT, metadata TEXT NOT NULL, text TEXT NOT NULL, "
    "UNIQUE (collection, id))",
    "CREATE INDEX IF NOT EXISTS documents_hash ON documents (text_hash)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS documents_fts USING fts5(text, content='documents', content_rowid='rowid')",
    "CREATE TRIGGER IF NOT EXISTS documents_fts_insert AFTER INSERT ON documents BEGIN "
    "INSERT INTO documents_fts (rowid, text) VALUES (new.rowid, new.text); END",
    "CREATE TRIGGER IF NOT EXISTS documents_fts_delete AFTER DELETE ON documents BEGIN "
    "INSERT INTO documents_fts (documents_fts, rowid, text) VALUES ('delete', old.rowid, old.text); END",
    "CREATE TRIGGER IF NOT EXISTS documents_fts_update AFTER UPDATE OF text ON documents BEGIN "
    "INSERT INTO documents_fts (documents_fts, rowid, text) VALUES ('delete', old.rowid, old.text); "
    "INSERT INTO documents_fts (rowid, text) VALUES (new.rowid, new.text); END",
)
_COLUMNS = "d.collection, d.id, d.text, d.created, d.branch, d.metadata"
_ORDER = "ORDER BY d.created DESC, d.collection, d.id"
_KEYS = "(SELECT value FROM json_each(?))"
#: A batch of vectors in one statement (one blob cut by ``substr`` at each hash's position in a JSON
#: array), as cairn-sqlite stores them: one call into SQLite, not one per row.
_PUT_VECTORS = (
    "INSERT INTO vectors (embedder, hash, vector) SELECT ?1, j.value, substr(?2, j.key * ?4 + 1, ?4) "
    "FROM json_each(?3) AS j WHERE true ON CONFLICT DO NOTHING"
)
_VECTORS_PER_STATEMENT = 4096


def _document(row: Sequence[Any]) -> Document:
    return Document(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]))


def _filters(collections: Sequence[str] | None, branch: str | None, since: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if collections is not None:
        clauses.append(f"d.collection IN {_KEYS}")
        params.append(json.dumps([check_collection(c) for c in collections]))
    if branch is not None:
        clauses.append("d.branch = ?")
        params.append(branch)
    if since is not None:
        clauses.append("d.created >= ?")
        params.append(since)
    return " AND ".join(clauses), params


def _where(*parts: str) -> str:
    kept = [p for p in parts if p]
    return f" WHERE {' AND '.join(kept)}" if kept else ""


def _strings(values: Iterable[str], what: str) -> list[str]:
    out = list(dict.fromkeys(values))
    if any(not isinstance(v, str) for v in out):
        raise ValidationError("expected strings", what=what)
    return out


def _open_cache(path: Any) -> sqlite3.Connection:
    """Open (creating if needed) the cache in WAL mode with its schema.

    Switching a new file to WAL takes an exclusive lock without calling the
    busy handler, so processes opening the same new cache at once can get
    "database is locked" there: retry for up to ``_OPEN_PATIENCE`` seconds.
    """
    deadline = time.monotonic() + _OPEN_PATIENCE
    delay = 0.005
    while True:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=_OPEN_PATIENCE)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("COMMIT")
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            busy = "locked" in str(exc) or "busy" in str(exc)
            if not busy or time.monotonic() > deadline:
                raise
        except BaseException:
            conn.close()
            raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


class GitMemoryCache(GitBase, VectorStore, DocumentStore):
    """``VectorStore`` and ``DocumentStore`` in a local SQLite cache file in the git directory."""

    def _init_facet(self) -> None:
        super()._init_facet()
        self._memory_conn: sqlite3.Connection | None = None
        self._memory_lock = threading.RLock()

    def _cache(self) -> sqlite3.Connection:
        if self._closed:
            raise StorageError(f"{self.git_dir}: the store is closed", hint="open the store again")
        if self._memory_conn is None:
            path = self.git_dir / CACHE_FILE
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = _open_cache(path)
            except (OSError, sqlite3.Error) as exc:
                raise StorageError(
                    f"{path}: cannot open the memory cache: {exc}",
                    hint=f"it is rebuildable: delete {path} and run `cairn memory index`",
                ) from exc
            self._memory_conn = conn
        return self._memory_conn

    def _cache_run(self, action: str, work: Any) -> Any:
        with self._memory_lock:
            conn = self._cache()
            try:
                return work(conn)
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StorageError(
                    f"{self.git_dir / CACHE_FILE}: SQLite failed while {action}: {exc}",
                    hint="retry; the cache is rebuildable with `cairn memory reindex`",
                ) from exc

    def _cache_write(self, action: str, work: Any) -> Any:
        def transaction(conn: sqlite3.Connection) -> Any:
            conn.execute("BEGIN IMMEDIATE")
            result = work(conn)
            conn.execute("COMMIT")
            return result

        return self._cache_run(action, transaction)

    def close(self) -> None:
        with self._memory_lock:
            if self._memory_conn is not None:
                self._memory_conn.close()
                self._memory_conn = None
        super().close()

    # -- vectors ---------------------------------------------------------------------------------------

    @staticmethod
    def _embedder(conn: sqlite3.Connection, identity: EmbedderIdentity, create: bool = False) -> int | None:
        key = (identity.provider, identity.model, identity.dimensions)
        row = conn.execute(
            "SELECT id FROM embedders WHERE provider = ? AND model = ? AND dimensions = ?", key
        ).fetchone()
        if row is None and create:
            return conn.execute("INSERT INTO embedders (provider, model, dimensions) VALUES (?, ?, ?)", key).lastrowid
        return None if row is None else int(row[0])

    def put_vectors(self, identity: EmbedderIdentity, vectors: Mapping[str, bytes]) -> int:
        checked = check_vector_bytes(identity, vectors)
        if not checked:
            return 0
        width = 4 * identity.dimensions

        def work(conn: sqlite3.Connection) -> int:
            embedder = self._embedder(conn, identity, create=True)
            before = conn.total_changes
            digests = list(checked)
            for start in range(0, len(digests), _VECTORS_PER_STATEMENT):
                part = digests[start : start + _VECTORS_PER_STATEMENT]
                conn.execute(_PUT_VECTORS, (embedder, b"".join(checked[h] for h in part), json.dumps(part), width))
            return conn.total_changes - before

        return int(self._cache_write("storing vectors", work))

    def _select_vectors(self, identity: EmbedderIdentity, hashes: Iterable[str], columns: str) -> list[Any]:
        wanted = _strings(hashes, "vectors")

        def work(conn: sqlite3.Connection) -> list[Any]:
            embedder = self._embedder(conn, identity)
            if embedder is None or not wanted:
                return []
            return conn.execute(
                f"SELECT {columns} FROM vectors WHERE embedder = ? AND hash IN {_KEYS}", (embedder, json.dumps(wanted))
            ).fetchall()

        return list(self._cache_run("reading vectors", work))

    def get_vectors(self, identity: EmbedderIdentity, hashes: Iterable[str]) -> dict[str, bytes]:
        return {h: bytes(v) for h, v in self._select_vectors(identity, hashes, "hash, vector")}

    def stored_vectors(self, identity: EmbedderIdentity, hashes: Iterable[str]) -> set[str]:
        return {h for (h,) in self._select_vectors(identity, hashes, "hash")}

    def iter_vectors(self, identity: EmbedderIdentity, *, batch: int = 1000) -> Iterator[list[tuple[str, bytes]]]:
        after = ""
        while True:

            def work(conn: sqlite3.Connection, after: str = after) -> list[tuple[str, bytes]]:
                embedder = self._embedder(conn, identity)
                if embedder is None:
                    return []
                rows = conn.execute(
                    "SELECT hash, vector FROM vectors WHERE embedder = ? AND hash > ? ORDER BY hash LIMIT ?",
                    (embedder, after, batch),
                )
                return [(h, bytes(v)) for h, v in rows]

            page = self._cache_run("reading vectors", work)
            if not page:
                return
            yield page
            after = page[-1][0]

    def vector_counts(self) -> dict[EmbedderIdentity, int]:
        rows = self._cache_run(
            "counting vectors",
            lambda conn: conn.execute(
                "SELECT e.provider, e.model, e.dimensions, count(*) FROM vectors v "
                "JOIN embedders e ON e.id = v.embedder GROUP BY v.embedder"
            ).fetchall(),
        )
        return {EmbedderIdentity(p, m, d): n for p, m, d, n in rows}

    def delete_vectors(self, identity: EmbedderIdentity) -> int:
        def work(conn: sqlite3.Connection) -> int:
            embedder = self._embedder(conn, identity)
            return (
                0 if embedder is None else conn.execute("DELETE FROM vectors WHERE embedder = ?", (embedder,)).rowcount
            )

        return int(self._cache_write("deleting vectors", work))

    # -- documents -------------------------------------------------------------------------------------

    def put_documents(self, documents: Sequence[Document]) -> None:
        rows = []
        for doc in checked_documents(documents):
            meta = json.dumps(dict(doc.metadata), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            rows.append((doc.collection, doc.id, doc.text_hash, doc.created, doc.branch, meta, doc.text))
        if rows:
            self._cache_write(
                "storing documents",
                lambda conn: conn.executemany(
                    "INSERT INTO documents (collection, id, text_hash, created, branch, metadata, text) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (collection, id) DO UPDATE SET "
                    "text_hash = excluded.text_hash, created = excluded.created, branch = excluded.branch, "
                    "metadata = excluded.metadata, text = excluded.text",
                    rows,
                ),
            )

    def _cache_select(self, action: str, sql: str, params: Sequence[Any]) -> list[Any]:
        return list(self._cache_run(action, lambda conn: conn.execute(sql, params).fetchall()))

    def get_documents(self, collection: str, ids: Iterable[str]) -> dict[str, Document]:
        wanted = _strings(ids, "get_documents")
        if not wanted:
            return {}
        rows = self._cache_select(
            "reading documents",
            f"SELECT {_COLUMNS} FROM documents d WHERE d.collection = ? AND d.id IN {_KEYS}",
            (collection, json.dumps(wanted)),
        )
        return {row[1]: _document(row) for row in rows}

    def documents(
        self,
        collections: Sequence[str] | None = None,
        *,
        branch: str | None = None,
        since: str | None = None,
        limit: int | None = None,
    ) -> list[Document]:
        clause, params = _filters(collections, branch, since)
        sql = f"SELECT {_COLUMNS} FROM documents d{_where(clause)} {_ORDER} LIMIT ?"
        return [
            _document(r)
            for r in self._cache_select("listing documents", sql, (*params, -1 if limit is None else limit))
        ]

    def documents_by_hash(
        self,
        hashes: Iterable[str],
        collections: Sequence[str] | None = None,
        *,
        branch: str | None = None,
        since: str | None = None,
    ) -> list[Document]:
        wanted = _strings(hashes, "documents_by_hash")
        if not wanted:
            return []
        clause, params = _filters(collections, branch, since)
        sql = f"SELECT {_COLUMNS} FROM documents d{_where(f'd.text_hash IN {_KEYS}', clause)} {_ORDER}"
        return [_document(r) for r in self._cache_select("reading documents", sql, (json.dumps(wanted), *params))]

    def texts(self, hashes: Iterable[str]) -> dict[str, str]:
        wanted = _strings(hashes, "texts")
        if not wanted:
            return {}
        sql = f"SELECT text_hash, text FROM documents WHERE text_hash IN {_KEYS}"
        return dict(self._cache_select("reading documents", sql, (json.dumps(wanted),)))

    def text_hashes(
        self, collections: Sequence[str] | None = None, *, branch: str | None = None, since: str | None = None
    ) -> set[str]:
        clause, params = _filters(collections, branch, since)
        return {
            h
            for (h,) in self._cache_select(
                "reading documents", f"SELECT d.text_hash FROM documents d{_where(clause)}", params
            )
        }

    def collections(self) -> dict[str, int]:
        rows = self._cache_select(
            "listing collections",
            "SELECT collection, count(*) FROM documents GROUP BY collection ORDER BY collection",
            (),
        )
        return {name: int(n) for name, n in rows}

    def delete_documents(self, collection: str, ids: Iterable[str] | None = None) -> int:
        params: tuple[str, ...]
        if ids is None:
            sql, params = "DELETE FROM documents WHERE collection = ?", (collection,)
        else:
            sql, params = (
                f"DELETE FROM documents WHERE collection = ? AND id IN {_KEYS}",
                (
                    collection,
                    json.dumps(_strings(ids, "delete_documents")),
                ),
            )
        return int(self._cache_write("deleting documents", lambda conn: conn.execute(sql, params).rowcount))

    def search_text(
        self,
        query: str,
        *,
        k: int,
        collections: Sequence[str] | None = None,
        branch: str | None = None,
        since: str | None = None,
    ) -> list[tuple[Document, float]]:
        words = query_words(query)
        k = check_k(k)
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        clause, params = _filters(collections, branch, since)
        sql = (
            f"SELECT {_COLUMNS}, bm25(documents_fts) AS rank FROM documents_fts "
            f"JOIN documents d ON d.rowid = documents_fts.rowid{_where('documents_fts MATCH ?', clause)} "
            "ORDER BY rank, d.collection, d.id LIMIT ?"
        )
        rows = self._cache_select("searching documents", sql, (match, *params, k))
        return [(_document(r), -float(r[6])) for r in rows]
