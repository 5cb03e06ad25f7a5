"""The schema of a cairn SQLite file and the numbered steps that create and migrate it.

The schema is created and migrated by numbered ``Migration`` steps recorded
in the ``migrations`` table; later releases append steps to ``MIGRATIONS``
and never edit a released one. ``migrate`` applies the missing steps in one
write transaction when a store is opened; a file that is not a cairn store,
or that a newer cairn-sqlite wrote, is refused before anything is written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import attrs

from cairn.errors import StorageError
from cairn.model import now

if TYPE_CHECKING:  # pragma: no cover
    from sqlite_utils import Database

__all__ = [
    "COMMIT_COLUMNS",
    "MIGRATIONS",
    "Migration",
    "migrate",
    "read_version",
    "refuse",
    "schema_version",
]


@attrs.frozen
class Migration:
    """One schema step: ``apply`` runs inside the migrating transaction, then ``version`` is recorded."""

    version: int
    name: str
    apply: Callable[[Database], None]


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


def _schema_v1(db: Database) -> None:
    """Objects, refs, annotations and the token-count cache, with an index for every query the contract makes."""
    db.table("blobs").create({"hash": str, "data": bytes}, pk="hash", not_null={"data"})
    db.table("commits").create(
        {
            # ``seq`` aliases the rowid (so VACUUM never renumbers it) and
            # ``parent_seq`` is the parent's: walking history follows integer
            # keys through the table itself, neighbours on the same pages,
            # instead of a hash index lookup per step.
            "seq": int,
            "hash": str,
            "parent": str,
            "parent_seq": int,
            "operation": str,
            "content_hash": str,
            "target": str,
            "reply_to": str,
            "message": str,
            "metadata": str,  # canonical JSON text
            "created_at": str,
            "content_type": str,
            "token_count": int,
            "cumulative_tokens": int,
            "depth": int,
            "skip": str,
            "tokenizer": str,  # who counted token_count
        },
        pk="seq",
        not_null={
            "hash",
            "operation",
            "message",
            "metadata",
            "created_at",
            "token_count",
            "cumulative_tokens",
            "depth",
        },
        foreign_keys=[
            ("parent", "commits", "hash"),
            ("content_hash", "blobs", "hash"),
            ("target", "commits", "hash"),
        ],
    )
    commits = db.table("commits")
    commits.create_index(["hash"], index_name="commits_hash", unique=True)
    # children (oldest first) and the foreign-key check when a parent is deleted
    commits.create_index(["parent", "created_at"], index_name="commits_parent")
    commits.create_index(["content_type", "created_at"], index_name="commits_type_time")
    commits.create_index(["created_at"], index_name="commits_time")
    commits.create_index(["target"], index_name="commits_target")
    # gc's "blobs no surviving commit uses" and the foreign-key check when a blob is deleted
    commits.create_index(["content_hash"], index_name="commits_content")

    db.table("refs").create({"name": str, "value": str}, pk="name", not_null={"value"})

    # ``seq`` is the rowid: a new row always gets a larger seq than every
    # surviving row, which is all (created_at, seq) ordering needs.
    db.table("annotations").create(
        {"seq": int, "id": str, "target": str, "priority": str, "reason": str, "created_at": str},
        pk="seq",
        not_null={"id", "target", "priority", "reason", "created_at"},
        foreign_keys=[("target", "commits", "hash")],
    )
    annotations = db.table("annotations")
    annotations.create_index(["id"], index_name="annotations_id", unique=True)
    annotations.create_index(["target", "created_at", "seq"], index_name="annotations_target_time")
    annotations.create_index(["priority", "target"], index_name="annotations_priority")

    db.table("token_counts").create(
        {"tokenizer": str, "hash": str, "count": int},
        pk=("tokenizer", "hash"),
        not_null={"count"},
    )


def _schema_v2(db: Database) -> None:
    """The run ledger: runs, their events, and spend records."""
    db.table("runs").create(
        {
            "run_id": str,
            "type": str,
            "status": str,
            "started_at": str,
            "record": str,  # the whole run as canonical JSON: one column to read back
        },
        pk="run_id",
        not_null={"type", "status", "started_at", "record"},
    )
    runs = db.table("runs")
    runs.create_index(["started_at", "run_id"], index_name="runs_time")
    runs.create_index(["type", "started_at"], index_name="runs_type_time")
    runs.create_index(["status", "started_at"], index_name="runs_status_time")
    db.table("run_events").create(
        {"run_id": str, "seq": int, "ts": str, "type": str, "fields": str},
        pk=("run_id", "seq"),
        not_null={"ts", "type", "fields"},
        foreign_keys=[("run_id", "runs", "run_id")],
    )
    db.table("spend").create(
        {"seq": int, "ts": str, "run_id": str, "record": str},
        pk="seq",
        not_null={"ts", "record"},
    )
    db.table("spend").create_index(["ts"], index_name="spend_time")
    db.table("spend").create_index(["run_id", "ts"], index_name="spend_run")


def _schema_v3(db: Database) -> None:
    """Chat: messages on runs and threads, and the threads themselves."""
    db.table("chat_messages").create(
        {"id": str, "ts": str, "run_id": str, "thread_id": str, "publish": int, "record": str},
        pk="id",
        not_null={"ts", "publish", "record"},
    )
    messages = db.table("chat_messages")
    messages.create_index(["run_id", "ts"], index_name="chat_run_time")
    messages.create_index(["thread_id", "ts"], index_name="chat_thread_time")
    messages.create_index(["ts"], index_name="chat_time")
    db.table("threads").create(
        {"thread_id": str, "created_at": str, "record": str},
        pk="thread_id",
        not_null={"created_at", "record"},
    )


def _schema_v4(db: Database) -> None:
    """Artifact metadata: artifact records, inline artifact bytes, snapshot records."""
    db.table("artifact_records").create(
        {"id": str, "hash": str, "created": str, "record": str},
        pk="id",
        not_null={"hash", "created", "record"},
    )
    records = db.table("artifact_records")
    records.create_index(["created", "id"], index_name="artifact_records_time")
    records.create_index(["hash", "created", "id"], index_name="artifact_records_hash")
    db.table("artifact_inline").create({"hash": str, "size": int, "data": bytes}, pk="hash", not_null={"size", "data"})
    db.table("snapshot_records").create(
        {"id": str, "tree": str, "created": str, "record": str},
        pk="id",
        not_null={"tree", "created", "record"},
    )
    snapshots = db.table("snapshot_records")
    snapshots.create_index(["created", "id"], index_name="snapshot_records_time")
    snapshots.create_index(["tree", "created", "id"], index_name="snapshot_records_tree")


def _schema_v5(db: Database) -> None:
    """Merge commits: a merge's second parent (hashed) and each commit's nearest merge (derived).

    Both are NULL on every commit written before: a history without merges
    reads back exactly as it was.
    """
    db.conn.execute("ALTER TABLE commits ADD COLUMN merge_parent TEXT REFERENCES commits(hash)")
    db.conn.execute("ALTER TABLE commits ADD COLUMN last_merge TEXT")
    # the foreign-key check when a merged-in parent is deleted (gc)
    db.conn.execute("CREATE INDEX commits_merge_parent ON commits (merge_parent) WHERE merge_parent IS NOT NULL")
    # a merge's "edits and deletes since the base" (changes_since) without reading the appends
    db.conn.execute("CREATE INDEX commits_changes ON commits (created_at) WHERE target IS NOT NULL")


def _schema_v6(db: Database) -> None:
    """Memory: embedders, vectors by (embedder, text hash), documents with an FTS5 index of their text.

    ``vectors`` is a rowid table (a 1.5 KB vector is too wide for a
    WITHOUT ROWID b-tree) with a unique index on its key. ``documents_fts``
    is an external-content FTS5 table over ``documents.text``, kept in step
    by triggers, so the text is stored once.
    """
    conn = db.conn
    conn.execute(
        "CREATE TABLE embedders (id INTEGER PRIMARY KEY, provider TEXT NOT NULL, model TEXT NOT NULL, "
        "dimensions INTEGER NOT NULL, UNIQUE (provider, model, dimensions))"
    )
    conn.execute(
        "CREATE TABLE vectors (embedder INTEGER NOT NULL REFERENCES embedders (id), hash TEXT NOT NULL, "
        "vector BLOB NOT NULL)"
    )
    conn.execute("CREATE UNIQUE INDEX vectors_key ON vectors (embedder, hash)")
    conn.execute(
        "CREATE TABLE documents (rowid INTEGER PRIMARY KEY, collection TEXT NOT NULL, id TEXT NOT NULL, "
        "text_hash TEXT NOT NULL, created TEXT NOT NULL, branch TEXT, metadata TEXT NOT NULL, text TEXT NOT NULL, "
        "UNIQUE (collection, id))"
    )
    conn.execute("CREATE INDEX documents_hash ON documents (text_hash)")
    conn.execute("CREATE INDEX documents_time ON documents (created, collection, id)")
    conn.execute("CREATE VIRTUAL TABLE documents_fts USING fts5(text, content='documents', content_rowid='rowid')")
    conn.execute(
        "CREATE TRIGGER documents_fts_insert AFTER INSERT ON documents BEGIN "
        "INSERT INTO documents_fts (rowid, text) VALUES (new.rowid, new.text); END"
    )
    conn.execute(
        "CREATE TRIGGER documents_fts_delete AFTER DELETE ON documents BEGIN "
        "INSERT INTO documents_fts (documents_fts, rowid, text) VALUES ('delete', old.rowid, old.text); END"
    )
    conn.execute(
        "CREATE TRIGGER documents_fts_update AFTER UPDATE OF text ON documents BEGIN "
        "INSERT INTO documents_fts (documents_fts, rowid, text) VALUES ('delete', old.rowid, old.text); "
        "INSERT INTO documents_fts (rowid, text) VALUES (new.rowid, new.text); END"
    )


def _schema_governance(db: Database) -> None:
    """Governance: directives (content, status, history), approvals, idempotency keys."""
    db.table("directives").create(
        {"id": str, "created_at": str, "status": str, "record": str},
        pk="id",
        not_null={"created_at", "status", "record"},
    )
    db.table("directives").create_index(["created_at", "id"], index_name="directives_time")
    db.table("directives").create_index(["status", "created_at"], index_name="directives_status")
    db.table("directive_events").create(
        {"directive_id": str, "seq": int, "record": str},
        pk=("directive_id", "seq"),
        not_null={"record"},
        foreign_keys=[("directive_id", "directives", "id")],
    )
    db.table("approvals").create(
        {"id": str, "created_at": str, "status": str, "action_hash": str, "record": str},
        pk="id",
        not_null={"created_at", "status", "action_hash", "record"},
    )
    db.table("approvals").create_index(["created_at", "id"], index_name="approvals_time")
    db.table("approvals").create_index(["action_hash", "created_at"], index_name="approvals_action")
    db.table("approvals").create_index(["status", "created_at"], index_name="approvals_status")
    db.table("nonces").create(
        {"key": str, "owner": str, "state": str, "expires_at": str, "record": str},
        pk="key",
        not_null={"owner", "state", "expires_at", "record"},
    )
    db.table("nonces").create_index(["expires_at"], index_name="nonces_expiry")


#: Every schema step, oldest first; versions are 1, 2, 3 ... Append, never edit a released step.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "objects, refs, annotations and token counts", _schema_v1),
    Migration(2, "the run ledger: runs, events, spend", _schema_v2),
    Migration(3, "chat messages and threads", _schema_v3),
    Migration(4, "artifact and snapshot records, inline artifact bytes", _schema_v4),
    Migration(5, "merge commits: second parent and nearest merge", _schema_v5),
    Migration(6, "memory: embedders, vectors, documents and their full-text index", _schema_v6),
    Migration(7, "directives, approvals and idempotency keys", _schema_governance),
)


def schema_version() -> int:
    """The schema version this release of cairn-sqlite writes."""
    return MIGRATIONS[-1].version


def _check_migrations(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    # 1, 2, 3 ... with no gap: a step is appended, never renumbered or skipped, once released.
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"cairn-sqlite migrations must be numbered 1, 2, 3 ... in order; got {versions}")


_check_migrations(MIGRATIONS)


# -- opening: which version a file holds, and bringing it up to date --------------------


def read_version(conn: sqlite3.Connection) -> int | None:
    """The recorded schema version; None when there is no ``migrations`` table yet."""
    if not _table_names(conn) & {"migrations"}:
        return None
    row = conn.execute("SELECT max(version) FROM migrations").fetchone()
    return int(row[0] or 0)


def _table_names(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def refuse(conn: sqlite3.Connection, path: str, version: int | None) -> None:
    """``StorageError`` when the file at ``path`` is someone else's database or a newer cairn-sqlite's."""
    latest = schema_version()
    if version is None:
        others = [t for t in _table_names(conn) if not t.startswith("sqlite_")]
        if others:
            raise StorageError(
                f"{path} is an SQLite database but not a cairn store (it holds {', '.join(sorted(others)[:5])})",
                hint="point path in [storage.sqlite] at a new file or an existing cairn database",
            )
    elif version > latest:
        raise StorageError(
            f"{path} has schema version {version}, written by a newer cairn-sqlite; "
            f"this one knows versions up to {latest}",
            hint="upgrade cairn-sqlite (pip install -U cairn-sqlite)",
        )


def migrate(
    conn: sqlite3.Connection,
    path: str,
    write_transaction: Callable[[], AbstractContextManager[sqlite3.Connection]],
) -> None:
    """Apply every step the file lacks, all in one ``write_transaction`` (the store's ``BEGIN IMMEDIATE``).

    sqlite_utils (slow to import: it pulls in numpy when installed) builds the
    tables, so it is imported only when a step is actually missing: opening
    an up-to-date store reads one row with the plain connection.
    """
    version = read_version(conn)
    refuse(conn, path, version)
    if version == schema_version():
        return  # the common case: no write lock taken on open
    from sqlite_utils import Database

    db = Database(conn, recursive_triggers=False, execute_plugins=False)
    with write_transaction() as conn:
        # Another process may have migrated while we waited for the lock.
        version = read_version(conn)
        refuse(conn, path, version)
        if version is None:
            db.table("migrations").create(
                {"version": int, "name": str, "applied_at": str},
                pk="version",
                not_null={"name", "applied_at"},
            )
            version = 0
        for migration in [m for m in MIGRATIONS if m.version > version]:
            migration.apply(db)
            conn.execute(
                "INSERT INTO migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, now()),
            )
