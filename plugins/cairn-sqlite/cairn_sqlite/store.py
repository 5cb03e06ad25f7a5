"""``SqliteStore``: cairn's embedded default storage backend, one SQLite file.

The store is composed of one mixin per storage facet, each in its own
module, all built on one shared connection:

=============================== ============================================
module                          holds
=============================== ============================================
``cairn_sqlite.connection``     opening, the lock, transactions, typed errors
``cairn_sqlite.schema``         the tables and the numbered migrations
``cairn_sqlite.objects``        blobs, commits, and ``write`` (objects, refs
                                and token counts in one transaction)
``cairn_sqlite.refs``           refs by compare-and-swap
``cairn_sqlite.annotations``    priority annotations
``cairn_sqlite.token_counts``   the token-count cache
``cairn_sqlite.ledger``         runs, events and spend
``cairn_sqlite.chat``           chat messages and threads
``cairn_sqlite.artifacts``      artifact and snapshot records, inline bytes
``cairn_sqlite.vectors``        embeddings by embedder and text hash
``cairn_sqlite.documents``      searchable documents and their FTS5 index
``cairn_sqlite.governance``     directives and their history, approvals
``cairn_sqlite.nonces``         idempotency keys and their results
``cairn_sqlite.maintenance``    stats, gc and check
=============================== ============================================

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

The modules import ``sqlite_utils`` (slow to import), so the plugin module
imports this one only inside the factory.
"""

from __future__ import annotations

import os
from pathlib import Path

from cairn.errors import StorageError
from cairn.storage import Store
from cairn_sqlite.annotations import SqliteAnnotations
from cairn_sqlite.artifacts import SqliteArtifactMeta
from cairn_sqlite.chat import SqliteChat
from cairn_sqlite.config import MEMORY, SqliteConfig, resolve_path
from cairn_sqlite.connection import MIN_SQLITE
from cairn_sqlite.documents import SqliteDocuments
from cairn_sqlite.governance import SqliteGovernance
from cairn_sqlite.ledger import SqliteLedger
from cairn_sqlite.maintenance import SqliteMaintenance
from cairn_sqlite.nonces import SqliteNonces
from cairn_sqlite.objects import SqliteObjects
from cairn_sqlite.refs import SqliteRefs
from cairn_sqlite.schema import COMMIT_COLUMNS, MIGRATIONS, Migration, schema_version
from cairn_sqlite.token_counts import SqliteTokenCounts
from cairn_sqlite.vectors import SqliteVectors

__all__ = [
    "COMMIT_COLUMNS",
    "DEFAULT_FILE",
    "MEMORY",
    "MIGRATIONS",
    "MIN_SQLITE",
    "Migration",
    "SqliteStore",
    "open_in_directory",
    "resolve_path",
    "schema_version",
]

#: File name ``open_in_directory`` uses.
DEFAULT_FILE = "cairn.db"


class SqliteStore(
    SqliteObjects,
    SqliteRefs,
    SqliteAnnotations,
    SqliteTokenCounts,
    SqliteLedger,
    SqliteChat,
    SqliteMaintenance,
    SqliteArtifactMeta,
    SqliteVectors,
    SqliteDocuments,
    SqliteGovernance,
    SqliteNonces,
    Store,
):
    """A ``cairn.storage.Store`` in one SQLite file: every facet but sync (see the module docstring).

    Safe to share between threads (calls are serialized) and between
    processes (SQLite's locking; every write takes the lock up front).
    ``SqliteStore(path, busy_timeout_ms=..., synchronous=...)`` opens
    (creating and migrating as needed) the file, or ``":memory:"``.
    """

    name = "sqlite"

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


def open_in_directory(directory: str | os.PathLike[str]) -> SqliteStore:
    """Open ``<directory>/cairn.db`` with the default settings: the conformance suite's ``store_opener``."""
    return SqliteStore(Path(directory) / DEFAULT_FILE)
