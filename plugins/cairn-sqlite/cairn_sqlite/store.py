"""``SqliteStore``: cairn's embedded default storage backend, one SQLite file.

Design, in brief:

- The connection runs in autocommit mode; every write is one explicit
  ``BEGIN IMMEDIATE`` ... ``COMMIT``. Taking the write lock up front means two
  processes never deadlock upgrading a read lock, and a compare-and-swap of a
  ref reads and writes under the same lock.
- WAL journal, ``synchronous=FULL`` by default: a write returns once it is on
  disk, and readers never block the writer.
- Every batch read is one statement: the hashes travel as one JSON array
  through ``json_each(?)``, so there is no limit on SQL variables.
- The schema is created and migrated by numbered ``Migration`` steps recorded
  in the ``migrations`` table; later releases append steps to ``MIGRATIONS``.

The module imports ``sqlite_utils`` (slow to import), so the plugin module
imports it only inside the factory.
"""

from __future__ import annotations

import collections.abc
import contextlib
import functools
import json
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs
from sqlite_utils import Database

from cairn.errors import ConflictError, IntegrityError, NotFoundError, StorageError, ValidationError
from cairn.model import Annotation, Commit, Operation, Priority, Run, RunEvent, SpendRecord, now, sha256_hex
from cairn.model.chat import ChatMessage, Thread
from cairn.storage import GcReport, Problem, RefUpdate, Store, StoreStats, check_objects
from cairn_sqlite.config import MEMORY, SYNCHRONOUS_LEVELS, SqliteConfig, resolve_path

__all__ = [
    "MEMORY",
    "MIGRATIONS",
    "Migration",
    "SqliteStore",
    "open_in_directory",
    "resolve_path",
    "schema_version",
]

#: File name ``open_in_directory`` uses.
DEFAULT_FILE = "cairn.db"
#: UPSERT (``ON CONFLICT DO UPDATE``) needs 3.24; json_each is built in from 3.38 and common before.
MIN_SQLITE = (3, 24, 0)

_T = TypeVar("_T")


# -- schema and migrations ---------------------------------------------------------


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


#: Every schema step, oldest first; versions are 1, 2, 3 ... Append, never edit a released step.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "objects, refs, annotations and token counts", _schema_v1),
    Migration(2, "the run ledger: runs, events, spend", _schema_v2),
    Migration(3, "chat messages and threads", _schema_v3),
)


def schema_version() -> int:
    """The schema version this release of cairn-sqlite writes."""
    return MIGRATIONS[-1].version


def _check_migrations(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"cairn-sqlite migrations must be numbered 1, 2, 3 ...; got {versions}")


_check_migrations(MIGRATIONS)


# -- SQL on the hot paths ---------------------------------------------------------

_COLS = ", ".join(f'"{c}"' for c in COMMIT_COLUMNS)
_C_COLS = ", ".join(f'c."{c}"' for c in COMMIT_COLUMNS)
_INSERT_COMMIT = (
    f"INSERT OR IGNORE INTO commits ({_COLS}, parent_seq) "
    f"VALUES ({', '.join('?' * len(COMMIT_COLUMNS))}, (SELECT seq FROM commits WHERE hash = ?))"
)
_INSERT_BLOB = "INSERT OR IGNORE INTO blobs (hash, data) VALUES (?, ?)"
# Ref compare-and-swap: each statement changes one row exactly when the ref holds the expected value.
_CREATE_REF = "INSERT INTO refs (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
_MOVE_REF = "UPDATE refs SET value = ? WHERE name = ? AND value = ?"
_DELETE_REF = "DELETE FROM refs WHERE name = ? AND value = ?"
_GET_REF = "SELECT value FROM refs WHERE name = ?"
_KNOWN_COMMITS = "SELECT hash FROM commits WHERE hash IN (SELECT value FROM json_each(?))"
_KNOWN_BLOBS = "SELECT hash FROM blobs WHERE hash IN (SELECT value FROM json_each(?))"
_GET_BLOBS = "SELECT hash, data FROM blobs WHERE hash IN (SELECT value FROM json_each(?))"
_GET_COMMITS = f"SELECT {_COLS} FROM commits WHERE hash IN (SELECT value FROM json_each(?))"
_ANCESTORS = f"""
WITH RECURSIVE chain(n, seq) AS (
    SELECT 0, seq FROM commits WHERE hash = ?
    UNION ALL
    SELECT chain.n + 1, c.parent_seq FROM chain JOIN commits AS c ON c.seq = chain.seq
    WHERE c.parent_seq IS NOT NULL
    LIMIT ?
)
SELECT {_C_COLS} FROM chain JOIN commits AS c ON c.seq = chain.seq ORDER BY chain.n
"""
_CHILDREN = f"SELECT {_COLS} FROM commits WHERE parent = ? ORDER BY created_at, rowid"
_TARGETING = f"SELECT {_COLS} FROM commits WHERE target IN (SELECT value FROM json_each(?)) ORDER BY created_at, rowid"
_FIND = "SELECT hash FROM commits WHERE hash >= ? AND hash < ? ORDER BY hash LIMIT ?"
_LATEST_FOR = """
SELECT a.target, a.priority, a.reason, a.created_at
FROM json_each(?) AS t
JOIN annotations AS a ON a.seq = (
    SELECT b.seq FROM annotations AS b
    WHERE b.target = t.value{as_of}
    ORDER BY b.created_at DESC, b.seq DESC LIMIT 1
)
"""
_ANNOTATED = """
SELECT a.target, a.priority, a.reason, a.created_at
FROM (SELECT DISTINCT target FROM annotations WHERE priority = ?{as_of}) AS t
JOIN annotations AS a ON a.seq = (
    SELECT b.seq FROM annotations AS b
    WHERE b.target = t.target{as_of_b}
    ORDER BY b.created_at DESC, b.seq DESC LIMIT 1
)
WHERE a.priority = ?
ORDER BY a.target
"""
_HISTORY = "SELECT target, priority, reason, created_at FROM annotations WHERE target = ? ORDER BY created_at, seq"
_INSERT_ANNOTATION = (
    "INSERT OR IGNORE INTO annotations (id, target, priority, reason, created_at) VALUES (?, ?, ?, ?, ?)"
)
_GET_TOKENS = "SELECT hash, count FROM token_counts WHERE tokenizer = ? AND hash IN (SELECT value FROM json_each(?))"
_PUT_TOKENS = (
    "INSERT INTO token_counts (tokenizer, hash, count) VALUES (?, ?, ?) "
    "ON CONFLICT (tokenizer, hash) DO UPDATE SET count = excluded.count"
)

# gc: the live set follows parents and edit/delete targets from every ref
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
        JOIN commits AS n ON n.hash = c.parent OR n.hash = c.target
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

_HEX = re.compile(r"\A[0-9a-f]*\Z")


# -- errors --------------------------------------------------------------------------


def _storage_error(exc: sqlite3.Error, path: str, action: str, timeout_ms: int) -> StorageError:
    """Turn an sqlite3 exception into a typed cairn error that says where and what to do."""
    name = getattr(exc, "sqlite_errorname", "") or ""  # Python 3.11+
    text = str(exc)
    lowered = text.lower()
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in lowered:
        return StorageError(f"{path}: the store is closed", hint="open the store again; a closed store cannot be used")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in lowered or "busy" in lowered:
        return StorageError(
            f"{path}: the database is locked by another process (while {action}; busy timeout {timeout_ms} ms)",
            hint="retry; if it persists, find the process holding the lock, "
            "or raise busy_timeout_ms in [storage.sqlite]",
        )
    if name.startswith("SQLITE_FULL") or "disk is full" in lowered:
        return StorageError(
            f"{path}: the disk is full (while {action})",
            hint="free disk space and retry; the failed write was rolled back",
        )
    if name.startswith("SQLITE_NOTADB") or "not a database" in lowered:
        return StorageError(
            f"{path} is not an SQLite database (or it is encrypted or damaged)",
            hint="point path in [storage.sqlite] at a cairn database, or move this file away to start a new store",
        )
    if name.startswith("SQLITE_CORRUPT") or "malformed" in lowered:
        return StorageError(
            f"{path}: the database is corrupt ({text})",
            hint=f"restore it from a backup; `sqlite3 {path} .recover` may salvage what is left",
        )
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in lowered:
        return StorageError(
            f"{path}: cannot open the database file",
            hint="check that its directory exists and that you may read and write there",
        )
    if name.startswith("SQLITE_READONLY") or "readonly" in lowered:
        return StorageError(
            f"{path}: the database is read-only (while {action})",
            hint="check the permissions of the file, its directory and the -wal/-shm files beside it",
        )
    if name.startswith(("SQLITE_IOERR", "SQLITE_PROTOCOL")) or "disk i/o" in lowered:
        return StorageError(
            f"{path}: the operating system failed to read or write the database (while {action}): {text}",
            hint="check the disk and the file system; network file systems are not supported",
        )
    if isinstance(exc, sqlite3.IntegrityError):
        return IntegrityError(
            f"{path}: a database constraint refused {action}: {text}",
            hint="run `cairn check`; nothing of this write was stored",
        )
    return StorageError(f"{path}: SQLite failed while {action}: {text}", hint="run `cairn check`, then retry")


def _is_corruption(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc).lower()
    return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text


def _sqlite(action: str) -> Callable[[Callable[..., _T]], Callable[..., _T]]:
    """Serialize use of the connection, refuse a closed store, and type every sqlite3 error."""

    def decorate(method: Callable[..., _T]) -> Callable[..., _T]:
        @functools.wraps(method)
        def call(self: SqliteStore, *args: Any, **kwargs: Any) -> _T:
            with self._lock:
                if self._conn is None:
                    raise StorageError(
                        f"{self.path}: the store is closed",
                        hint="open the store again; a closed store cannot be used",
                    )
                try:
                    return method(self, *args, **kwargs)
                except sqlite3.Error as exc:
                    raise _storage_error(exc, self.path, action, self.busy_timeout_ms) from exc

        return call

    return decorate


# -- helpers ---------------------------------------------------------------------------


_CREATE_RUN = (
    "INSERT INTO runs (run_id, type, status, started_at, record) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_REPLACE_RUN = "UPDATE runs SET type = ?, status = ?, started_at = ?, record = ? WHERE run_id = ? AND status = ?"
_INSERT_EVENT = "INSERT INTO run_events (run_id, seq, ts, type, fields) VALUES (?, ?, ?, ?, ?)"


def _where(*conditions: tuple[str, str, Any]) -> tuple[str, list[Any]]:
    """`` WHERE a = ? AND b >= ?`` and its parameters, from (column, operator, value); None values are left out.

    Columns and operators come from this module, never from callers' strings.
    """
    clauses = [f"{column} {op} ?" for column, op, value in conditions if value is not None]
    params = [value for _, _, value in conditions if value is not None]
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


def _json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _run_row(run: Run) -> tuple[Any, ...]:
    return (run.run_id, run.type, run.status, run.started_at, _json_text(run.to_record()))


def _event_row(run_id: str, event: RunEvent) -> tuple[Any, ...]:
    if event.run_id != run_id:
        raise IntegrityError(f"event {event.seq} belongs to run {event.run_id}, not {run_id}")
    return (run_id, event.seq, event.ts, event.type, _json_text(event.fields))


_OPERATIONS = {op.value: op for op in Operation}


def _commit_from_row(row: Sequence[Any]) -> Commit:
    # Rows were validated on the way in, so the constructor is called directly
    # (no per-field checks): history reads are the materializer's hot path.
    return Commit(
        hash=row[0],
        parent=row[1],
        operation=_OPERATIONS[row[2]],
        content_hash=row[3],
        target=row[4],
        reply_to=row[5],
        message=row[6],
        metadata={} if row[7] == "{}" else json.loads(row[7]),
        created_at=row[8],
        content_type=row[9],
        token_count=row[10],
        cumulative_tokens=row[11],
        depth=row[12],
        skip=row[13],
        tokenizer=row[14],
    )


def _metadata_text(metadata: dict[str, Any]) -> str:
    """Canonical JSON text (the commit's hash covers it, so it is known to encode)."""
    if not metadata:
        return "{}"
    return json.dumps(metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _commit_row(commit: Commit) -> tuple[Any, ...]:
    return (
        commit.hash,
        commit.parent,
        commit.operation.value,
        commit.content_hash,
        commit.target,
        commit.reply_to,
        commit.message,
        _metadata_text(commit.metadata),
        commit.created_at,
        commit.content_type,
        commit.token_count,
        commit.cumulative_tokens,
        commit.depth,
        commit.skip,
        commit.tokenizer,
        commit.parent,  # looked up for parent_seq
    )


def _count_rows(tokenizer: str, counts: Mapping[str, int]) -> list[tuple[str, str, int]]:
    if not isinstance(tokenizer, str) or not tokenizer:
        raise ValidationError("a tokenizer name must be a non-empty string", what="token counts", given=tokenizer)
    rows = []
    for digest, count in counts.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValidationError(
                f"{tokenizer}: the count for {str(digest)[:12]} must be a whole number >= 0, got {count!r}",
                what="token counts",
            )
        rows.append((tokenizer, digest, count))
    return rows


def _insert(conn: sqlite3.Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    # execute() skips executemany's per-call setup: most writes carry one row of each kind.
    if len(rows) == 1:
        conn.execute(sql, rows[0])
    elif rows:
        conn.executemany(sql, rows)


def _swap(conn: sqlite3.Connection, update: RefUpdate) -> None:
    """Compare-and-swap one ref with a single conditional statement; ``ConflictError`` if it matched nothing."""
    name, new, expected = update.name, update.new, update.expected
    if expected is None and new is None:
        changed = 0 if conn.execute(_GET_REF, (name,)).fetchone() else 1  # "delete if absent": a check only
    elif expected is None:
        changed = conn.execute(_CREATE_REF, (name, new)).rowcount
    elif new is None:
        changed = conn.execute(_DELETE_REF, (name, expected)).rowcount
    else:
        changed = conn.execute(_MOVE_REF, (new, name, expected)).rowcount
    if changed != 1:
        row = conn.execute(_GET_REF, (name,)).fetchone()
        raise ConflictError(name, expected, row[0] if row else None)


def _known(conn: sqlite3.Connection, table: str, hashes: set[str]) -> set[str]:
    """Which of ``hashes`` are stored in ``table`` (blobs or commits), in one statement."""
    if not hashes:
        return set()
    if len(hashes) == 1:
        (digest,) = hashes
        found = conn.execute(f"SELECT hash FROM {table} WHERE hash = ?", (digest,)).fetchone()
        return {digest} if found else set()
    sql = _KNOWN_COMMITS if table == "commits" else _KNOWN_BLOBS
    return {h for (h,) in conn.execute(sql, (json.dumps(sorted(hashes)),))}


def _annotation_from_row(row: Sequence[Any]) -> Annotation:
    return Annotation(target=row[0], priority=Priority(row[1]), reason=row[2], created_at=row[3])


def _keys(values: Iterable[str], what: str) -> list[str]:
    """Distinct strings in first-seen order; reads ``values`` once, so generators are fine."""
    out = list(dict.fromkeys(values))
    for value in out:
        if not isinstance(value, str):
            raise ValidationError(f"expected strings, got {type(value).__name__} {value!r:.60}", what=what)
    return out


def _limit(limit: int | None) -> int:
    if limit is None:
        return -1  # SQLite: no limit
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValidationError(f"limit must be a whole number or None, got {limit!r}")
    return max(limit, 0)


def _upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None: no bound)."""
    chars = list(prefix)
    while chars and chars[-1] == "\U0010ffff":
        chars.pop()
    if not chars:
        return None
    code = ord(chars[-1]) + 1
    if 0xD800 <= code <= 0xDFFF:  # no surrogates in UTF-8 text
        code = 0xE000
    chars[-1] = chr(code)
    return "".join(chars)


def _topological(commits: list[Commit]) -> list[Commit]:
    """The batch with each commit after its parent and target (foreign keys are checked per statement)."""
    if len(commits) == 1 and isinstance(commits[0], Commit):
        return commits
    by_hash: dict[str, Commit] = {}
    for commit in commits:
        if not isinstance(commit, Commit):
            raise ValidationError(f"expected a cairn.model.Commit, got {type(commit).__name__}", what="write")
        by_hash.setdefault(commit.hash, commit)
    # Usually (an import, a branch) the batch is already in order: check in one pass.
    seen: set[str] = set()
    for commit in commits:
        if (commit.parent in by_hash and commit.parent not in seen) or (
            commit.target in by_hash and commit.target not in seen
        ):
            break
        seen.add(commit.hash)
    else:
        return list(by_hash.values())
    done: set[str] = set()
    ordered: list[Commit] = []
    for start in by_hash.values():
        if start.hash in done:
            continue
        stack = [start]
        visiting = {start.hash}
        while stack:
            top = stack[-1]
            pending = [
                by_hash[d]
                for d in (top.parent, top.target)
                if d is not None and d in by_hash and d not in done and d not in visiting
            ]
            if pending:
                stack.append(pending[0])
                visiting.add(pending[0].hash)
                continue
            stack.pop()
            visiting.discard(top.hash)
            if top.hash not in done:
                done.add(top.hash)
                ordered.append(top)
    return ordered


class _StreamedBlobs(collections.abc.Mapping):  # type: ignore[type-arg]
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

    def items(self) -> collections.abc.ItemsView:  # type: ignore[type-arg]
        return _StreamedItems(self)


class _StreamedItems(collections.abc.ItemsView):  # type: ignore[type-arg]
    """One query for all (hash, bytes) pairs instead of one query per blob."""

    _mapping: _StreamedBlobs

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        for digest, data in self._mapping._conn.execute("SELECT hash, data FROM blobs"):
            yield digest, bytes(data)


# -- the store --------------------------------------------------------------------------


class SqliteStore(Store):
    """A ``cairn.storage.Store`` in one SQLite file (see the module docstring).

    Safe to share between threads (calls are serialized) and between
    processes (SQLite's locking; every write takes the lock up front).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = 30000,
        synchronous: str = "full",
    ) -> None:
        """Open (creating and migrating as needed) the database at ``path``; ``":memory:"`` for a throw-away store.

        Raises ``StorageError`` when the file is not a cairn database, was
        written by a newer cairn-sqlite, or cannot be opened.
        """
        if synchronous not in SYNCHRONOUS_LEVELS:
            raise ValidationError(
                f"must be one of {', '.join(SYNCHRONOUS_LEVELS)}; got {synchronous!r}",
                what="sqlite",
                field="synchronous",
            )
        if isinstance(busy_timeout_ms, bool) or not isinstance(busy_timeout_ms, int) or busy_timeout_ms < 0:
            raise ValidationError(
                f"must be a whole number of milliseconds, 0 or more; got {busy_timeout_ms!r}",
                what="sqlite",
                field="busy_timeout_ms",
            )
        self.path = MEMORY if str(path) == MEMORY else str(Path(path))
        self.busy_timeout_ms = busy_timeout_ms
        self.synchronous = synchronous
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._foreign_keys = True
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StorageError(
                f"SQLite {sqlite3.sqlite_version} is too old for cairn-sqlite (needs {'.'.join(map(str, MIN_SQLITE))})",
                hint="use a Python built with a newer SQLite",
            )
        try:
            # isolation_level=None: autocommit; this class issues BEGIN IMMEDIATE / COMMIT itself.
            conn = sqlite3.connect(
                self.path,
                timeout=busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise _storage_error(exc, self.path, "opening the database", busy_timeout_ms) from exc
        try:
            self._configure(conn)
            self.db = Database(conn, recursive_triggers=False, execute_plugins=False)
            self._conn = conn
            # Read before writing anything: a file that is not a database, is
            # someone else's database or is from a newer release stays untouched.
            self._refuse(self._read_version())
            self._journal(conn)
            self._migrate()
        except sqlite3.Error as exc:
            self._conn = None
            conn.close()
            raise _storage_error(exc, self.path, "opening the database", busy_timeout_ms) from exc
        except BaseException:
            self._conn = None
            conn.close()
            raise

    @classmethod
    def from_config(cls, config: SqliteConfig, *, data_dir: Path) -> SqliteStore:
        """Open the store ``[storage.sqlite]`` describes, relative paths under ``data_dir`` (created)."""
        path = resolve_path(config.path, data_dir)
        if path != MEMORY:
            try:
                # SQLite would open a device or a directory and write its journal beside it (in /dev ...).
                if Path(path).exists() and not Path(path).is_file():
                    raise StorageError(
                        f"{path} is not a regular file; SQLite needs one it can read and write",
                        hint="point [storage.sqlite] path at a database file, or at a name to create one",
                    )
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(
                    f"{path}: cannot create the directory {Path(path).parent}: {exc.strerror}",
                    hint="check the path in [storage.sqlite] and the permissions of its parent directories",
                ) from exc
        return cls(path, busy_timeout_ms=config.busy_timeout_ms, synchronous=config.synchronous)

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"<SqliteStore {self.path} ({state})>"

    # -- opening ---------------------------------------------------------------------

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys = ON")  # per connection, and only outside a transaction
        row = conn.execute("PRAGMA foreign_keys").fetchone()
        # A SQLite built without foreign keys: write() then checks links itself before inserting.
        self._foreign_keys = bool(row and row[0])

    def _journal(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if self.path != MEMORY and str(mode).lower() != "wal":
            raise StorageError(
                f"{self.path}: SQLite cannot use write-ahead logging here (journal mode stays {mode!r})",
                hint="keep the database on a local file system; network file systems are not supported",
            )
        conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")

    def _read_version(self) -> int | None:
        """The recorded schema version; None when there is no ``migrations`` table yet."""
        assert self._conn is not None
        if not self.db.table("migrations").exists():
            return None
        row = self._conn.execute("SELECT max(version) FROM migrations").fetchone()
        return int(row[0] or 0)

    def _refuse(self, version: int | None) -> None:
        latest = schema_version()
        if version is None:
            others = [t for t in self.db.table_names() if not t.startswith("sqlite_")]
            if others:
                raise StorageError(
                    f"{self.path} is an SQLite database but not a cairn store (it holds {', '.join(sorted(others)[:5])})",
                    hint="point path in [storage.sqlite] at a new file or an existing cairn database",
                )
        elif version > latest:
            raise StorageError(
                f"{self.path} has schema version {version}, written by a newer cairn-sqlite; "
                f"this one knows versions up to {latest}",
                hint="upgrade cairn-sqlite (pip install -U cairn-sqlite)",
            )

    def _migrate(self) -> None:
        conn = self._conn
        assert conn is not None
        version = self._read_version()
        self._refuse(version)
        if version == schema_version():
            return  # the common case: no write lock taken on open
        with self._write_transaction():
            # Another process may have migrated while we waited for the lock.
            version = self._read_version()
            self._refuse(version)
            if version is None:
                self.db.table("migrations").create(
                    {"version": int, "name": str, "applied_at": str},
                    pk="version",
                    not_null={"name", "applied_at"},
                )
                version = 0
            for migration in MIGRATIONS[version:]:
                migration.apply(self.db)
                conn.execute(
                    "INSERT INTO migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, now()),
                )

    # -- transactions ------------------------------------------------------------------

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE``: take the write lock now, so no other writer can slip in between read and write."""
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            self._rollback(conn)
            raise

    @contextlib.contextmanager
    def _read_transaction(self) -> Iterator[sqlite3.Connection]:
        """One snapshot for a method that needs several statements."""
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            self._rollback(conn)

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # keep the error that got us here
                conn.execute("ROLLBACK")

    # -- objects -------------------------------------------------------------------------

    @_sqlite("writing")
    def write(
        self,
        *,
        blobs: Mapping[str, bytes] | None = None,
        commits: Sequence[Commit] = (),
        refs: Sequence[RefUpdate] = (),
        token_counts: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        """Store blobs and commits, apply ref updates and cache token counts in one transaction (see ``Store.write``).

        Blobs are verified against their hashes first (a mismatch raises
        ``IntegrityError`` and nothing is written). Commit hashes are trusted:
        ``Commit.new`` computes them and ``import`` verifies them, and
        recomputing each one here would cost more than the insert;
        ``check()`` verifies every stored commit.
        """
        blob_rows = self._checked_blobs(blobs or {})
        ordered = _topological(list(commits))
        updates = self._checked_refs(refs)
        count_rows = [
            row for tokenizer, counts in (token_counts or {}).items() for row in _count_rows(tokenizer, counts)
        ]
        if not (blob_rows or ordered or updates or count_rows):
            return
        batch_blobs = {digest for digest, _ in blob_rows}
        with self._write_transaction() as conn:
            for update in updates:
                _swap(conn, update)
            if ordered and not self._foreign_keys:
                self._check_links(conn, ordered, batch_blobs)
            _insert(conn, _INSERT_BLOB, blob_rows)
            try:
                # Batch order puts parents and targets first, so the foreign keys
                # catch exactly the links that are neither stored nor in the batch.
                _insert(conn, _INSERT_COMMIT, [_commit_row(c) for c in ordered])
            except sqlite3.IntegrityError:
                self._check_links(conn, ordered, batch_blobs)  # names the missing object
                raise
            _insert(conn, _PUT_TOKENS, count_rows)

    @staticmethod
    def _checked_blobs(blobs: Mapping[str, bytes]) -> list[tuple[str, bytes]]:
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

    @staticmethod
    def _checked_refs(refs: Sequence[RefUpdate]) -> list[RefUpdate]:
        updates = list(refs)
        seen: set[str] = set()
        for update in updates:
            if not isinstance(update, RefUpdate):
                raise ValidationError(f"expected a cairn.storage.RefUpdate, got {type(update).__name__}", what="write")
            if not isinstance(update.name, str) or not update.name:
                raise ValidationError("a ref name must be a non-empty string", what="write", given=update.name)
            if update.new is not None and (not isinstance(update.new, str) or not update.new):
                raise ValidationError(
                    f"ref {update.name}: the new value must be a non-empty string or None",
                    what="write",
                    given=update.new,
                )
            if update.name in seen:
                raise ValidationError(
                    f"ref {update.name} is updated twice in one write",
                    what="write",
                    hint="give each ref one update per write",
                )
            seen.add(update.name)
        return updates

    @staticmethod
    def _check_links(conn: sqlite3.Connection, ordered: list[Commit], batch_blobs: set[str]) -> None:
        batch = {c.hash for c in ordered}
        need_commits = {h for c in ordered for h in (c.parent, c.target) if h is not None and h not in batch}
        need_blobs = {
            c.content_hash for c in ordered if c.content_hash is not None and c.content_hash not in batch_blobs
        }
        stored_commits = _known(conn, "commits", need_commits)
        stored_blobs = _known(conn, "blobs", need_blobs)
        known_commits = batch | stored_commits
        known_blobs = batch_blobs | stored_blobs
        for commit in ordered:
            for what, digest, known in (
                ("parent", commit.parent, known_commits),
                ("target", commit.target, known_commits),
                ("content blob", commit.content_hash, known_blobs),
            ):
                if digest is not None and digest not in known:
                    error = IntegrityError(
                        f"commit {commit.short}: its {what} {digest[:12]} is neither stored nor in this write",
                        hint=f"write the {what} first or in the same batch; nothing was written",
                    )
                    error.commit = commit.hash  # type: ignore[attr-defined]
                    error.missing = digest  # type: ignore[attr-defined]
                    raise error

    @_sqlite("reading blobs")
    def get_blobs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """The stored bytes of each known hash; unknown hashes are left out. One statement."""
        keys = _keys(hashes, "get_blobs")
        if not keys:
            return {}
        assert self._conn is not None
        return {h: bytes(d) for h, d in self._conn.execute(_GET_BLOBS, (json.dumps(keys),))}

    @_sqlite("reading commits")
    def get_commits(self, hashes: Iterable[str]) -> dict[str, Commit]:
        """Each known commit by hash; unknown hashes are left out. One statement."""
        keys = _keys(hashes, "get_commits")
        if not keys:
            return {}
        assert self._conn is not None
        rows = self._conn.execute(_GET_COMMITS, (json.dumps(keys),))
        return {row[0]: _commit_from_row(row) for row in rows}

    @_sqlite("reading ancestors")
    def ancestors(self, start: str, *, limit: int | None = None) -> list[Commit]:
        """``start`` and its ancestors, newest first, at most ``limit``; empty if ``start`` is unknown. One statement."""
        n = _limit(limit)
        if n == 0:
            return []
        assert self._conn is not None
        return [_commit_from_row(r) for r in self._conn.execute(_ANCESTORS, (start, n))]

    @_sqlite("reading children")
    def children(self, commit: str) -> list[Commit]:
        """Commits whose parent is ``commit``, oldest first."""
        assert self._conn is not None
        return [_commit_from_row(r) for r in self._conn.execute(_CHILDREN, (commit,))]

    def _by_time(
        self, content_type: str | None, since: str | None, until: str | None, limit: int | None
    ) -> list[Commit]:
        where: list[str] = []
        params: list[Any] = []
        if content_type is not None:
            where.append("content_type = ?")
            params.append(content_type)
        if since is not None:
            where.append("created_at >= ?")
            params.append(since)
        if until is not None:
            where.append("created_at <= ?")
            params.append(until)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        # rowid breaks ties in insertion order and is part of every index, so no sort is needed.
        sql = f"SELECT {_COLS} FROM commits{clause} ORDER BY created_at DESC, rowid DESC LIMIT ?"
        assert self._conn is not None
        return [_commit_from_row(r) for r in self._conn.execute(sql, (*params, _limit(limit)))]

    @_sqlite("reading commits by type")
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

    @_sqlite("reading commits by time")
    def commits_by_time(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[Commit]:
        """Commits with ``since <= created_at <= until``, newest first."""
        return self._by_time(None, since, until, limit)

    @_sqlite("reading edits and deletes")
    def commits_targeting(self, targets: Iterable[str]) -> list[Commit]:
        """Edits and deletes whose target is one of ``targets``, oldest first. One statement."""
        keys = _keys(targets, "commits_targeting")
        if not keys:
            return []
        assert self._conn is not None
        return [_commit_from_row(r) for r in self._conn.execute(_TARGETING, (json.dumps(keys),))]

    @_sqlite("finding commits")
    def find_commits(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Hashes starting with ``prefix`` (hex, any case), in hash order; empty for a non-hex prefix."""
        prefix = prefix.lower()
        n = _limit(limit)
        if not _HEX.match(prefix) or n == 0:
            return []
        assert self._conn is not None
        # Every hex digit sorts below "g", so [prefix, prefix + "g") is exactly the prefix's range.
        return [h for (h,) in self._conn.execute(_FIND, (prefix, prefix + "g", n))]

    # -- refs ----------------------------------------------------------------------------

    @_sqlite("reading a ref")
    def get_ref(self, name: str) -> str | None:
        """The value of ``name``, or None."""
        assert self._conn is not None
        row = self._conn.execute(_GET_REF, (name,)).fetchone()
        return row[0] if row else None

    @_sqlite("listing refs")
    def list_refs(self, prefix: str = "") -> dict[str, str]:
        """Every ref whose name starts with ``prefix``, sorted by name (a literal prefix: no wildcards)."""
        assert self._conn is not None
        upper = _upper_bound(prefix)
        if upper is None:
            rows = self._conn.execute("SELECT name, value FROM refs WHERE name >= ? ORDER BY name", (prefix,))
        else:
            rows = self._conn.execute(
                "SELECT name, value FROM refs WHERE name >= ? AND name < ? ORDER BY name", (prefix, upper)
            )
        return dict(rows.fetchall())

    # -- annotations ---------------------------------------------------------------------

    @_sqlite("adding annotations")
    def add_annotations(self, annotations: Sequence[Annotation]) -> None:
        """Append annotations, idempotent by id; all or nothing.

        ``IntegrityError`` (nothing written) when a target is not a stored commit.
        """
        items = list(annotations)
        for item in items:
            if not isinstance(item, Annotation):
                raise ValidationError(
                    f"expected a cairn.model.Annotation, got {type(item).__name__}", what="add_annotations"
                )
        if not items:
            return
        targets = _keys((a.target for a in items), "add_annotations")
        rows = [(a.id, a.target, a.priority.value, a.reason, a.created_at) for a in items]
        with self._write_transaction() as conn:
            known = {h for (h,) in conn.execute(_KNOWN_COMMITS, (json.dumps(targets),))}
            missing = [t for t in targets if t not in known]
            if missing:
                error = IntegrityError(
                    f"cannot annotate commit {missing[0][:12]}: it is not stored",
                    hint="annotate stored commits only; nothing was written",
                )
                error.missing = missing[0]  # type: ignore[attr-defined]
                raise error
            conn.executemany(_INSERT_ANNOTATION, rows)

    @_sqlite("reading annotations")
    def latest_annotations(self, targets: Iterable[str], *, as_of: str | None = None) -> dict[str, Annotation]:
        """For each target, its latest annotation with ``created_at <= as_of``; one statement."""
        keys = _keys(targets, "latest_annotations")
        if not keys:
            return {}
        assert self._conn is not None
        if as_of is None:
            rows = self._conn.execute(_LATEST_FOR.format(as_of=""), (json.dumps(keys),))
        else:
            rows = self._conn.execute(_LATEST_FOR.format(as_of=" AND b.created_at <= ?"), (json.dumps(keys), as_of))
        return {row[0]: _annotation_from_row(row) for row in rows}

    @_sqlite("reading annotations")
    def annotation_history(self, target: str) -> list[Annotation]:
        """Every annotation of ``target``, oldest first (ties in the order they were added)."""
        assert self._conn is not None
        return [_annotation_from_row(r) for r in self._conn.execute(_HISTORY, (target,))]

    @_sqlite("reading annotations")
    def annotated(self, priority: Priority, *, as_of: str | None = None) -> dict[str, Annotation]:
        """Every target whose latest annotation as of ``as_of`` has ``priority``, by target."""
        value = Priority(priority).value
        assert self._conn is not None
        if as_of is None:
            sql = _ANNOTATED.format(as_of="", as_of_b="")
            params: tuple[Any, ...] = (value, value)
        else:
            sql = _ANNOTATED.format(as_of=" AND created_at <= ?", as_of_b=" AND b.created_at <= ?")
            params = (value, as_of, as_of, value)
        return {row[0]: _annotation_from_row(row) for row in self._conn.execute(sql, params)}

    # -- token counts ----------------------------------------------------------------------

    @_sqlite("reading token counts")
    def get_token_counts(self, tokenizer: str, hashes: Iterable[str]) -> dict[str, int]:
        """Cached counts for ``tokenizer``; misses left out. One statement."""
        keys = _keys(hashes, "get_token_counts")
        if not keys:
            return {}
        assert self._conn is not None
        return dict(self._conn.execute(_GET_TOKENS, (tokenizer, json.dumps(keys))).fetchall())

    @_sqlite("writing token counts")
    def put_token_counts(self, tokenizer: str, counts: Mapping[str, int]) -> None:
        """Cache counts for ``tokenizer``, replacing earlier ones for the same hash."""
        rows = _count_rows(tokenizer, counts)
        if not rows:
            return
        with self._write_transaction() as conn:
            conn.executemany(_PUT_TOKENS, rows)

    # -- the run ledger -----------------------------------------------------------------------

    @_sqlite("recording a run")
    def put_run(self, run: Run, events: Sequence[RunEvent] = (), *, expected_status: str | None = None) -> None:
        """Create (or, with ``expected_status``, replace) a run and append events, in one transaction."""
        self._put_runs([(run, events)], expected_status)

    @_sqlite("recording runs")
    def put_runs(self, runs: Sequence[tuple[Run, Sequence[RunEvent]]]) -> None:
        """Create many runs with their events in one transaction."""
        self._put_runs(runs, None)

    def _put_runs(self, runs: Sequence[tuple[Run, Sequence[RunEvent]]], expected: str | None) -> None:
        rows = [(_run_row(run), [_event_row(run.run_id, e) for e in events]) for run, events in runs]
        with self._write_transaction() as conn:
            for (run, _), (row, event_rows) in zip(runs, rows, strict=True):
                if expected is None:
                    done = conn.execute(_CREATE_RUN, row).rowcount
                else:
                    done = conn.execute(_REPLACE_RUN, (*row[1:], row[0], expected)).rowcount
                if done != 1:
                    actual = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run.run_id,)).fetchone()
                    raise ConflictError(f"run {run.run_id}", expected, actual[0] if actual else None)
                self._insert_events(conn, run.run_id, event_rows)

    @staticmethod
    def _insert_events(conn: sqlite3.Connection, run_id: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            conn.executemany(_INSERT_EVENT, rows)
        except sqlite3.IntegrityError:
            raise ConflictError(
                f"run {run_id} events",
                None,
                "taken",
                hint="an event with that seq is stored; read the last seq and retry",
            ) from None

    @_sqlite("appending events")
    def append_events(self, run_id: str, events: Sequence[RunEvent]) -> None:
        rows = [_event_row(run_id, e) for e in events]
        with self._write_transaction() as conn:
            found = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if found is None:
                raise NotFoundError("run", run_id)
            if found[0] != "open":
                raise ConflictError(
                    f"run {run_id}", "open", found[0], hint="the run is closed; events can no longer be added"
                )
            self._insert_events(conn, run_id, rows)

    @_sqlite("reading a run")
    def get_run(self, run_id: str) -> Run | None:
        assert self._conn is not None
        row = self._conn.execute("SELECT record FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return Run.from_record(json.loads(row[0])) if row else None

    @_sqlite("listing runs")
    def list_runs(
        self,
        *,
        type: str | None = None,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        where, params = _where(
            ("type", "=", type), ("status", "=", status), ("started_at", ">=", since), ("started_at", "<=", until)
        )
        assert self._conn is not None
        rows = self._conn.execute(
            f"SELECT record FROM runs{where} ORDER BY started_at DESC, run_id DESC LIMIT ?", (*params, _limit(limit))
        )
        return [Run.from_record(json.loads(r[0])) for r in rows]

    @_sqlite("reading events")
    def run_events(self, run_id: str, *, after_seq: int | None = None) -> list[RunEvent]:
        assert self._conn is not None
        rows = self._conn.execute(
            "SELECT seq, ts, type, fields FROM run_events WHERE run_id = ? AND seq > ? ORDER BY seq",
            (run_id, -1 if after_seq is None else after_seq),
        )
        return [RunEvent(run_id, seq, ts, kind, json.loads(fields)) for seq, ts, kind, fields in rows]

    @_sqlite("deleting runs")
    def delete_runs(self, run_ids: Iterable[str]) -> int:
        keys = json.dumps(sorted(set(run_ids)))
        with self._write_transaction() as conn:
            conn.execute("DELETE FROM run_events WHERE run_id IN (SELECT value FROM json_each(?))", (keys,))
            return conn.execute("DELETE FROM runs WHERE run_id IN (SELECT value FROM json_each(?))", (keys,)).rowcount

    @_sqlite("recording spend")
    def add_spend(self, records: Sequence[SpendRecord]) -> None:
        rows = [(r.ts, r.run_id, _json_text(r.to_record())) for r in records]
        if not rows:
            return
        with self._write_transaction() as conn:
            conn.executemany("INSERT INTO spend (ts, run_id, record) VALUES (?, ?, ?)", rows)

    @_sqlite("reading spend")
    def spend(
        self, *, since: str | None = None, until: str | None = None, run_id: str | None = None
    ) -> list[SpendRecord]:
        where, params = _where(("ts", ">=", since), ("ts", "<=", until), ("run_id", "=", run_id))
        assert self._conn is not None
        rows = self._conn.execute(f"SELECT record FROM spend{where} ORDER BY ts, seq", params)
        return [SpendRecord.from_record(json.loads(r[0])) for r in rows]

    # -- chat --------------------------------------------------------------------------------

    @_sqlite("storing a message")
    def add_chat_message(self, message: ChatMessage) -> None:
        row = (
            message.id,
            message.ts,
            message.run_id,
            message.thread_id,
            int(message.publish),
            _json_text(message.to_record()),
        )
        with self._write_transaction() as conn:
            if (
                conn.execute(
                    "INSERT INTO chat_messages (id, ts, run_id, thread_id, publish, record) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    row,
                ).rowcount
                != 1
            ):
                raise ConflictError(f"message {message.id}", None, "stored")

    @_sqlite("reading messages")
    def chat_messages(
        self,
        *,
        run_id: str | None = None,
        thread_id: str | None = None,
        limit: int | None = None,
        published: bool | None = None,
    ) -> list[ChatMessage]:
        where, params = _where(
            ("run_id", "=", run_id),
            ("thread_id", "=", thread_id),
            ("publish", "=", None if published is None else int(published)),
        )
        assert self._conn is not None
        rows = self._conn.execute(
            f"SELECT record FROM chat_messages{where} ORDER BY ts DESC, id DESC LIMIT ?", (*params, _limit(limit))
        )
        return [ChatMessage.from_record(json.loads(r[0])) for r in rows]

    @_sqlite("creating a thread")
    def put_thread(self, thread: Thread) -> None:
        with self._write_transaction() as conn:
            if (
                conn.execute(
                    "INSERT INTO threads (thread_id, created_at, record) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    (thread.thread_id, thread.created_at, _json_text(thread.to_record())),
                ).rowcount
                != 1
            ):
                raise ConflictError(f"thread {thread.thread_id}", None, "exists")

    @_sqlite("reading a thread")
    def get_thread(self, thread_id: str) -> Thread | None:
        assert self._conn is not None
        row = self._conn.execute("SELECT record FROM threads WHERE thread_id = ?", (thread_id,)).fetchone()
        return Thread.from_record(json.loads(row[0])) if row else None

    @_sqlite("listing threads")
    def list_threads(self) -> list[Thread]:
        assert self._conn is not None
        rows = self._conn.execute("SELECT record FROM threads ORDER BY created_at DESC, thread_id DESC")
        return [Thread.from_record(json.loads(r[0])) for r in rows]

    # -- maintenance -----------------------------------------------------------------------

    @_sqlite("reading statistics")
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

    @_sqlite("collecting garbage")
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

    @_sqlite("checking the database")
    def check(self) -> list[Problem]:
        """Every problem found: SQLite's own integrity and foreign-key checks, hashes, links, derived fields, refs.

        A database too damaged to read is reported as a problem, not raised.
        """
        problems: list[Problem] = []
        try:
            self._check(problems)
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
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
            commits = [_commit_from_row(row) for row in conn.execute(f"SELECT {_COLS} FROM commits")]
            refs = dict(conn.execute("SELECT name, value FROM refs ORDER BY name").fetchall())
            problems.extend(check_objects(self, commits, _StreamedBlobs(conn), refs))

    def close(self) -> None:
        """Close the connection (idempotent). The store is unusable afterwards."""
        with self._lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                conn.close()


def open_in_directory(directory: str | os.PathLike[str]) -> SqliteStore:
    """Open ``<directory>/cairn.db`` with the default settings: the conformance suite's ``store_opener``."""
    return SqliteStore(Path(directory) / DEFAULT_FILE)
