"""Opening a throw-away store per test directory: what the conformance suites' ``store_opener`` needs.

The suites open stores by directory, from this process and from spawned
ones. ``open_in_directory`` maps a directory to a schema of its own (named
from the directory's path) in the database ``CAIRN_PG_TEST_DSN`` names, so
every process opening the same directory meets the same store. The test
session creates that database and drops it at the end
(``cairn_postgres.testing.scratch_database``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from cairn_postgres.config import PostgresConfig

if TYPE_CHECKING:
    from cairn_postgres.store import PostgresStore

__all__ = ["SERVER_DSN", "TEST_DSN_ENV", "open_in_directory", "scratch_database", "server_problem", "with_database"]

#: The variable holding the DSN of the database tests create schemas in.
TEST_DSN_ENV = "CAIRN_PG_TEST_DSN"
#: The server tests use unless CAIRN_PG_SERVER names another (trust authentication, user postgres).
SERVER_DSN = os.environ.get("CAIRN_PG_SERVER", "postgresql://postgres@127.0.0.1:5432/postgres")


def directory_schema(directory: Path) -> str:
    return "t_" + hashlib.sha256(str(Path(directory).resolve()).encode()).hexdigest()[:24]


def open_in_directory(directory: Path) -> PostgresStore:
    """The store of ``directory``: its own schema in the database ``CAIRN_PG_TEST_DSN`` names."""
    from cairn_postgres.store import PostgresStore

    return PostgresStore(PostgresConfig(dsn=os.environ[TEST_DSN_ENV], schema=directory_schema(directory), pool_size=2))


def with_database(dsn: str, database: str) -> str:
    """``dsn`` (a postgresql:// URL) pointing at ``database`` instead."""
    return urlsplit(dsn)._replace(path="/" + database).geturl()


def server_problem(dsn: str = SERVER_DSN) -> str | None:
    """Why the test server cannot be used, or None."""
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"no PostgreSQL server at {dsn}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}"


@contextlib.contextmanager
def scratch_database(server: str = SERVER_DSN, prefix: str = "cairn_test") -> Iterator[str]:
    """Create a database of its own on ``server``; yield its DSN; drop it (and its connections) afterwards."""
    import psycopg

    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield with_database(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
