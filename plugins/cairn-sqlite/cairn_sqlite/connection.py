"""The base every facet module builds on: one connection, its transactions, and typed errors.

``SqliteConnection`` opens the file (creating and migrating it through
``cairn_sqlite.schema``), owns the connection and its lock, and hands the
facet mixins two transactions:

- ``_write_transaction``: ``BEGIN IMMEDIATE`` ... ``COMMIT``. Taking the
  write lock up front means two processes never deadlock upgrading a read
  lock, and a compare-and-swap reads and writes under the same lock.
- ``_read_transaction``: one snapshot for a method that needs several
  statements.

Every public method of a facet is wrapped by ``sqlite_method(action)``: it
serializes use of the connection, refuses a closed store, and turns every
``sqlite3`` error into a cairn error that names the file and says what to
do (``storage_error``). The small SQL helpers the facets share (``distinct``,
``sql_limit``, ``where``, ``insert``, ``json_text``) live here too, called
directly: no layer sits between a facet method and its statement.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from cairn.errors import IntegrityError, StorageError, ValidationError
from cairn.storage import Facet
from cairn_sqlite import schema
from cairn_sqlite.config import MEMORY, SYNCHRONOUS_LEVELS

if TYPE_CHECKING:  # pragma: no cover
    from sqlite_utils import Database

__all__ = [
    "MEMORY",
    "MIN_SQLITE",
    "SqliteConnection",
    "insert",
    "is_corruption",
    "json_text",
    "distinct",
    "sql_limit",
    "sqlite_method",
    "storage_error",
    "where",
]

#: UPSERT (``ON CONFLICT DO UPDATE``) needs 3.24; json_each is built in from 3.38 and common before.
MIN_SQLITE = (3, 24, 0)
#: Page size of a new database file (SQLite's default is 4096); existing files keep theirs.
PAGE_SIZE = 8192

_S = TypeVar("_S", bound="SqliteConnection")
_P = ParamSpec("_P")
_T = TypeVar("_T")


# -- errors --------------------------------------------------------------------------


def storage_error(exc: sqlite3.Error, path: str, action: str, timeout_ms: int) -> StorageError:
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


def is_corruption(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says the file is damaged or not a database (``check`` reports these instead of raising)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc).lower()
    return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text


def sqlite_method(
    action: str,
) -> Callable[[Callable[Concatenate[_S, _P], _T]], Callable[Concatenate[_S, _P], _T]]:
    """Serialize use of the connection, refuse a closed store, and type every sqlite3 error.

    ``action`` (``"reading blobs"``) goes into the error message.
    """

    def decorate(method: Callable[Concatenate[_S, _P], _T]) -> Callable[Concatenate[_S, _P], _T]:
        @functools.wraps(method)
        def call(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
            with self._lock:
                if self._conn is None:
                    raise StorageError(
                        f"{self.path}: the store is closed",
                        hint="open the store again; a closed store cannot be used",
                    )
                try:
                    return method(self, *args, **kwargs)
                except sqlite3.Error as exc:
                    raise storage_error(exc, self.path, action, self.busy_timeout_ms) from exc

        return call

    return decorate


# -- helpers the facets share ----------------------------------------------------------


def where(*conditions: tuple[str, str, Any]) -> tuple[str, list[Any]]:
    """`` WHERE a = ? AND b >= ?`` and its parameters, from (column, operator, value); None values are left out.

    Columns and operators come from this package, never from callers' strings.
    """
    clauses = [f"{column} {op} ?" for column, op, value in conditions if value is not None]
    params = [value for _, _, value in conditions if value is not None]
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


def json_text(value: Any) -> str:
    """Canonical JSON text of a record (sorted keys, no spaces, UTF-8 kept)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def insert(conn: sqlite3.Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Run ``sql`` once per row."""
    # execute() skips executemany's per-call setup: most writes carry one row of each kind.
    if len(rows) == 1:
        conn.execute(sql, rows[0])
    elif rows:
        conn.executemany(sql, rows)


def distinct(values: Iterable[str], what: str) -> list[str]:
    """Distinct strings in first-seen order; reads ``values`` once, so generators are fine."""
    out = list(dict.fromkeys(values))
    for value in out:
        if not isinstance(value, str):
            raise ValidationError(f"expected strings, got {type(value).__name__} {value!r:.60}", what=what)
    return out


def sql_limit(value: int | None) -> int:
    """A ``LIMIT`` parameter: -1 (none) for None, never negative."""
    if value is None:
        return -1  # SQLite: no limit
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"limit must be a whole number or None, got {value!r}")
    return max(value, 0)


# -- the base ------------------------------------------------------------------------------


class SqliteConnection(Facet):
    """One open cairn SQLite file: the connection, its lock, and the transactions the facet mixins use.

    Safe to share between threads (calls are serialized) and between
    processes (SQLite's locking; every write takes the lock up front).
    """

    _conn: sqlite3.Connection | None

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
        self._conn = None
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
            raise storage_error(exc, self.path, "opening the database", busy_timeout_ms) from exc
        try:
            self._configure(conn)
            self._conn = conn
            # Read before writing anything: a file that is not a database, is
            # someone else's database or is from a newer release stays untouched.
            schema.refuse(conn, self.path, schema.read_version(conn))
            self._journal(conn)
            schema.migrate(conn, self.path, self._write_transaction)
        except sqlite3.Error as exc:
            self._conn = None
            conn.close()
            raise storage_error(exc, self.path, "opening the database", busy_timeout_ms) from exc
        except BaseException:
            self._conn = None
            conn.close()
            raise

    @property
    def db(self) -> Database:
        """The connection as a ``sqlite_utils.Database``, for inspecting the schema.

        Built on first use: the store itself runs plain SQL, so commands never pay
        for importing sqlite_utils (and the numpy it pulls in).
        """
        from sqlite_utils import Database

        if self._conn is None:
            raise StorageError(f"{self.path}: the store is closed", hint="open the store again")
        return Database(self._conn, recursive_triggers=False, execute_plugins=False)

    # -- opening ---------------------------------------------------------------------

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys = ON")  # per connection, and only outside a transaction
        row = conn.execute("PRAGMA foreign_keys").fetchone()
        # A SQLite built without foreign keys: write() then checks links itself before inserting.
        self._foreign_keys = bool(row and row[0])

    def _journal(self, conn: sqlite3.Connection) -> None:
        # 8 KiB pages for a new database (a no-op on an existing one): a 512-dimension vector row
        # (2.1 KB) takes a whole 4 KiB page by itself, but three share an 8 KiB one, so storing
        # vectors writes about half the bytes.
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if self.path != MEMORY and str(mode).lower() != "wal":
            raise StorageError(
                f"{self.path}: SQLite cannot use write-ahead logging here (journal mode stays {mode!r})",
                hint="keep the database on a local file system; network file systems are not supported",
            )
        conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")

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

    def close(self) -> None:
        """Close the connection (idempotent). The store is unusable afterwards."""
        with self._lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                conn.close()
