"""The tables of a cairn schema, the numbered migrations that make them, and applying them safely.

Every text column the contracts sort or compare on is ``COLLATE "C"``: code
point order, the order Python's ``sorted`` and the other backends give,
whatever the database's locale. A commit's links (parent, target, content
blob) are foreign keys checked when its transaction commits, so a batch may
list children before parents. Commit messages are UTF-8 ``bytea`` because
PostgreSQL text cannot hold NUL, which a message may; records (runs, chat,
artifacts) are canonical JSON text, where NUL is escaped.

Migrations are recorded in ``<schema>.migrations`` and applied in one
transaction holding an advisory lock keyed by the schema's name: ten
processes opening an empty database at once take turns, the first creates
the schema and the rest find it current. Later releases append steps to
``MIGRATIONS`` and never edit a released one; a schema at a version newer
than this release knows is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import attrs
import psycopg

from cairn.errors import StorageError
from cairn.model import now
from cairn_postgres.run_rows import RUN_COLUMNS, run_row

__all__ = ["MIGRATIONS", "Migration", "advisory_key", "prepare", "read_version", "schema_version"]

_T = 'text COLLATE "C"'


@attrs.frozen
class Migration:
    """One schema step: its statements, then ``then(conn)`` if set, run inside the migrating transaction;
    then ``version`` is recorded."""

    version: int
    name: str
    statements: tuple[str, ...]
    then: Callable[[psycopg.Connection[Any]], None] | None = None


_V1 = (
    f"CREATE TABLE blobs (hash {_T} PRIMARY KEY, data bytea NOT NULL)",
    f"""CREATE TABLE commits (
        hash {_T} PRIMARY KEY,
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        parent {_T} REFERENCES commits (hash) DEFERRABLE INITIALLY DEFERRED,
        operation {_T} NOT NULL,
        content_hash {_T} REFERENCES blobs (hash) DEFERRABLE INITIALLY DEFERRED,
        target {_T} REFERENCES commits (hash) DEFERRABLE INITIALLY DEFERRED,
        reply_to {_T},
        message bytea NOT NULL,
        metadata text NOT NULL,
        created_at {_T} NOT NULL,
        content_type {_T},
        token_count bigint NOT NULL,
        cumulative_tokens bigint NOT NULL,
        depth bigint NOT NULL,
        skip {_T},
        tokenizer {_T}
    )""",
    "CREATE INDEX commits_parent ON commits (parent, created_at, seq)",
    "CREATE INDEX commits_type_time ON commits (content_type, created_at, seq)",
    "CREATE INDEX commits_time ON commits (created_at, seq)",
    "CREATE INDEX commits_target ON commits (target, created_at, seq)",
    "CREATE INDEX commits_content ON commits (content_hash)",
    f"CREATE TABLE refs (name {_T} PRIMARY KEY, value {_T} NOT NULL)",
    f"""CREATE TABLE annotations (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id {_T} NOT NULL UNIQUE,
        target {_T} NOT NULL REFERENCES commits (hash),
        priority {_T} NOT NULL,
        reason text NOT NULL,
        created_at {_T} NOT NULL
    )""",
    "CREATE INDEX annotations_target_time ON annotations (target, created_at, seq)",
    "CREATE INDEX annotations_priority ON annotations (priority, target)",
    f"""CREATE TABLE token_counts (
        tokenizer {_T} NOT NULL, hash {_T} NOT NULL, count bigint NOT NULL, PRIMARY KEY (tokenizer, hash)
    )""",
    "CREATE INDEX token_counts_hash ON token_counts (hash)",
    # `cairn watch`: every ref created or moved is announced to listeners on other machines.
    """CREATE FUNCTION notify_ref() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('cairn_ref', json_build_object(
            'schema', TG_TABLE_SCHEMA, 'ref', NEW.name,
            'old', CASE WHEN TG_OP = 'UPDATE' THEN OLD.value END, 'new', NEW.value)::text);
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER refs_notify AFTER INSERT OR UPDATE ON refs FOR EACH ROW EXECUTE FUNCTION notify_ref()",
)

_V2 = (
    f"""CREATE TABLE runs (
        run_id {_T} PRIMARY KEY, type {_T} NOT NULL, status {_T} NOT NULL,
        started_at {_T} NOT NULL, record text NOT NULL
    )""",
    "CREATE INDEX runs_time ON runs (started_at, run_id)",
    "CREATE INDEX runs_type_time ON runs (type, started_at, run_id)",
    "CREATE INDEX runs_status_time ON runs (status, started_at, run_id)",
    f"""CREATE TABLE run_events (
        run_id {_T} NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        seq bigint NOT NULL, ts {_T} NOT NULL, type {_T} NOT NULL, fields text NOT NULL,
        PRIMARY KEY (run_id, seq)
    )""",
    f"""CREATE TABLE spend (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ts {_T} NOT NULL, run_id {_T}, record text NOT NULL
    )""",
    "CREATE INDEX spend_time ON spend (ts, seq)",
    "CREATE INDEX spend_run ON spend (run_id, ts, seq)",
    """CREATE FUNCTION notify_run() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('cairn_run', json_build_object(
            'schema', TG_TABLE_SCHEMA, 'run_id', NEW.run_id, 'status', NEW.status)::text);
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER runs_notify AFTER INSERT OR UPDATE ON runs FOR EACH ROW EXECUTE FUNCTION notify_run()",
)

_V3 = (
    f"""CREATE TABLE chat_messages (
        id {_T} PRIMARY KEY, ts {_T} NOT NULL, run_id {_T}, thread_id {_T},
        publish boolean NOT NULL, record text NOT NULL
    )""",
    "CREATE INDEX chat_run_time ON chat_messages (run_id, ts, id)",
    "CREATE INDEX chat_thread_time ON chat_messages (thread_id, ts, id)",
    "CREATE INDEX chat_time ON chat_messages (ts, id)",
    f"CREATE TABLE threads (thread_id {_T} PRIMARY KEY, created_at {_T} NOT NULL, record text NOT NULL)",
)

_V4 = (
    f"CREATE TABLE artifact_records (id {_T} PRIMARY KEY, hash {_T} NOT NULL, created {_T} NOT NULL, record text NOT NULL)",
    "CREATE INDEX artifact_records_time ON artifact_records (created, id)",
    "CREATE INDEX artifact_records_hash ON artifact_records (hash, created, id)",
    f"CREATE TABLE artifact_inline (hash {_T} PRIMARY KEY, size bigint NOT NULL, data bytea NOT NULL)",
    f"CREATE TABLE snapshot_records (id {_T} PRIMARY KEY, tree {_T} NOT NULL, created {_T} NOT NULL, record text NOT NULL)",
    "CREATE INDEX snapshot_records_time ON snapshot_records (created, id)",
    "CREATE INDEX snapshot_records_tree ON snapshot_records (tree, created, id)",
)

# Merge commits: a merge's second parent (hashed, checked like ``parent``) and each commit's nearest
# merge (derived). Both are NULL on every commit written before, which reads back as it was.
_V5 = (
    f"ALTER TABLE commits ADD COLUMN merge_parent {_T} REFERENCES commits (hash) DEFERRABLE INITIALLY DEFERRED",
    f"ALTER TABLE commits ADD COLUMN last_merge {_T}",
    "CREATE INDEX commits_merge_parent ON commits (merge_parent) WHERE merge_parent IS NOT NULL",
)

# Idempotency keys: one row each, the record as canonical JSON beside the columns a claim compares.
_V6 = (
    f"""CREATE TABLE nonces (
        key {_T} PRIMARY KEY, owner {_T} NOT NULL, state {_T} NOT NULL, expires_at {_T} NOT NULL, record text NOT NULL
    )""",
    "CREATE INDEX nonces_expiry ON nonces (expires_at)",
)

# Governance: directives (content once, status moved by compare-and-swap, history), approvals.
_V7 = (
    f"""CREATE TABLE directives (
        id {_T} PRIMARY KEY, created_at {_T} NOT NULL, status {_T} NOT NULL, record text NOT NULL
    )""",
    "CREATE INDEX directives_time ON directives (created_at, id)",
    "CREATE INDEX directives_status ON directives (status, created_at, id)",
    f"""CREATE TABLE directive_events (
        directive_id {_T} NOT NULL REFERENCES directives (id), seq bigint NOT NULL, record text NOT NULL,
        PRIMARY KEY (directive_id, seq)
    )""",
    f"""CREATE TABLE approvals (
        id {_T} PRIMARY KEY, created_at {_T} NOT NULL, status {_T} NOT NULL, action_hash {_T} NOT NULL,
        record text NOT NULL
    )""",
    "CREATE INDEX approvals_time ON approvals (created_at, id)",
    "CREATE INDEX approvals_action ON approvals (action_hash, created_at, id)",
    "CREATE INDEX approvals_status ON approvals (status, created_at, id)",
)

# Embeddings: embedders get a small id the first time they store a vector; a vector is float32 bytes.
_V8 = (
    f"""CREATE TABLE embedders (
        id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, provider {_T} NOT NULL, model {_T} NOT NULL,
        dimensions integer NOT NULL, UNIQUE (provider, model, dimensions)
    )""",
    f"""CREATE TABLE vectors (
        embedder integer NOT NULL REFERENCES embedders (id), hash {_T} NOT NULL, vector bytea NOT NULL,
        PRIMARY KEY (embedder, hash)
    )""",
)

# Searchable documents. The text is UTF-8 ``bytea`` (a document may hold NUL); ``words`` is its
# full-text index, built by cairn from the text's words (``cairn_postgres.documents``), with ``length``
# (how many words) beside it for BM25.
_V9 = (
    f"""CREATE TABLE documents (
        collection {_T} NOT NULL, id {_T} NOT NULL, text_hash {_T} NOT NULL, created {_T} NOT NULL,
        branch {_T}, metadata text NOT NULL, text bytea NOT NULL, length integer NOT NULL, words tsvector NOT NULL,
        PRIMARY KEY (collection, id)
    )""",
    "CREATE INDEX documents_hash ON documents (text_hash)",
    "CREATE INDEX documents_time ON documents (created, collection, id)",
    "CREATE INDEX documents_words ON documents USING gin (words)",
)

# Runs keep each field in a column of its own (free text, the JSON objects and list as canonical JSON), so
# listing thousands builds them from typed columns without parsing a whole record per run. Existing
# rows are split from their records; the record column goes.
_V10 = (
    "ALTER TABLE runs ADD COLUMN subtype text, ADD COLUMN run_user text, ADD COLUMN code_ref text, "
    "ADD COLUMN ended_at text, ADD COLUMN duration_ms bigint, ADD COLUMN environment text NOT NULL DEFAULT '{}', "
    "ADD COLUMN modules_affected text NOT NULL DEFAULT '[]', ADD COLUMN summary text NOT NULL DEFAULT '"
    "', "
    "ADD COLUMN metadata text NOT NULL DEFAULT '{}'",
)


def _split_run_records(conn: psycopg.Connection[Any]) -> None:
    """Fill the new run columns from each run's record, then drop the record (migration 10).

    In Python, not SQL: PostgreSQL's JSON functions refuse a record whose text holds an escaped NUL.
    """
    rows = [run_row(json.loads(record)) for (record,) in conn.execute("SELECT record FROM runs")]
    if rows:
        names = RUN_COLUMNS[1:]
        conn.cursor().executemany(
            f"UPDATE runs SET ({', '.join(names)}) = ({', '.join(['%s'] * len(names))}) WHERE run_id = %s",
            [(*row[1:], row[0]) for row in rows],
        )
    conn.execute("ALTER TABLE runs DROP COLUMN record")


#: Every schema step, oldest first; versions are 1, 2, 3 ... Append, never edit a released step.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "objects, refs, annotations and token counts", _V1),
    Migration(2, "the run ledger: runs, events, spend", _V2),
    Migration(3, "chat messages and threads", _V3),
    Migration(4, "artifact and snapshot records, inline artifact bytes", _V4),
    Migration(5, "merge commits: second parent and nearest merge", _V5),
    Migration(6, "idempotency keys", _V6),
    Migration(7, "directives, their history, and approvals", _V7),
    Migration(8, "embedders and their vectors", _V8),
    Migration(9, "searchable documents and their full-text index", _V9),
    Migration(10, "runs keep their fields in columns", _V10, _split_run_records),
)
assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1)), "migrations are numbered 1, 2, 3 ..."


def schema_version() -> int:
    """The schema version this release of cairn-postgres writes."""
    return MIGRATIONS[-1].version


def advisory_key(schema: str) -> int:
    """The advisory-lock key of a schema's migrations: a signed 64-bit number from its name."""
    digest = hashlib.sha256(f"cairn-postgres migrate {schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def read_version(conn: psycopg.Connection[Any], schema: str) -> int | None:
    """The recorded schema version; None when the schema has no ``migrations`` table yet."""
    # A plain query of the catalog, not to_regclass(): that reads the backend's catalog cache,
    # which may not yet know a table another process created while this one waited for the lock.
    row = conn.execute(
        "SELECT 1 FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = 'migrations'",
        (schema,),
    ).fetchone()
    if row is None:
        return None
    found = conn.execute(f"SELECT max(version) FROM {schema}.migrations").fetchone()
    return int(found[0] or 0) if found else 0


def _refuse_newer(version: int | None, shown: str) -> None:
    if version is not None and version > schema_version():
        raise StorageError(
            f"{shown} has schema version {version}, written by a newer cairn-postgres; "
            f"this one knows versions up to {schema_version()}",
            hint="upgrade cairn-postgres (pip install -U cairn-postgres) on this machine",
        )


def prepare(conn: psycopg.Connection[Any], schema: str, shown: str, *, migrate: bool = True) -> int:
    """Bring ``schema`` up to date (``migrate``) or check it is; returns the version it holds.

    ``conn`` is in autocommit mode. The common case, a current schema, takes
    no lock. Otherwise the missing steps run in one transaction under the
    schema's advisory lock; the version is read again once the lock is held,
    since another process may have migrated while this one waited.
    """
    version = read_version(conn, schema)
    _refuse_newer(version, shown)
    if version == schema_version():
        return version
    if not migrate:
        raise StorageError(
            f"{shown} is at schema version {version or 0}; this cairn-postgres needs {schema_version()}",
            hint="run `cairn store migrate` (or set auto_migrate = true in [storage.postgres])",
        )
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key(schema),))
        version = read_version(conn, schema)
        _refuse_newer(version, shown)
        if version == schema_version():
            return version
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        conn.execute(f"SET LOCAL search_path = {schema}")
        if version is None:
            conn.execute(
                "CREATE TABLE migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at text NOT NULL)"
            )
            version = 0
        for migration in MIGRATIONS[version:]:
            for statement in migration.statements:
                conn.execute(statement)
            if migration.then is not None:
                migration.then(conn)
            conn.execute(
                "INSERT INTO migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                (migration.version, migration.name, now()),
            )
    return schema_version()
