"""The base every facet module builds on: the connection pool, its transactions, and typed errors.

``PostgresConnection`` connects once on its own to check the server and
migrate the schema (``cairn_postgres.schema``), then keeps a
``psycopg_pool.ConnectionPool`` whose connections run in autocommit mode
with ``search_path`` set to the project's schema. Facet mixins get:

- ``_write(fn)``: ``fn(conn)`` inside one transaction (``BEGIN`` ...
  ``COMMIT``), so every multi-row write is all or nothing and returns once
  the server has committed it (durable with the server's default
  ``synchronous_commit = on``).
- ``_read(fn)``: ``fn(conn)`` on a pooled connection, no transaction.

A connection the server dropped (a restart, ``pg_terminate_backend``) is
noticed on its next statement: a read is retried once on a fresh
connection, and so is a write cut before its ``COMMIT`` was sent (the
server rolled all of it back, so running it again stores it once). A write
cut while committing is never replayed: the error says it may or may not
have been stored.

Every public facet method is wrapped by ``pg_method(action)``: it refuses a
closed store and turns every psycopg error into a cairn error that names the
DSN (never its password) and says what to do.
"""

from __future__ import annotations

import functools
import os
import random
import time
from collections.abc import Callable, Iterable
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
import psycopg_pool
from psycopg import errors as pg_errors

from cairn.errors import IntegrityError, StorageError, ValidationError
from cairn.storage import Facet
from cairn_postgres import schema
from cairn_postgres.config import PostgresConfig, dsn_problem, schema_problem, shown_dsn

__all__ = ["PostgresConnection", "distinct", "json_text", "pg_error", "pg_method", "sql_limit", "where"]

#: How often a transaction the server rolled back (deadlock, serialization failure) is run again.
_ROLLBACK_RETRIES = 5

_S = TypeVar("_S", bound="PostgresConnection")
_P = ParamSpec("_P")
_T = TypeVar("_T")


# -- errors --------------------------------------------------------------------------


def pg_error(exc: BaseException, dsn: str, action: str, *, schema_name: str = "") -> StorageError:
    """Turn a psycopg exception into a typed cairn error that names the DSN (no password) and what to do."""
    where = shown_dsn(dsn) + (f" (schema {schema_name})" if schema_name else "")
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = str(exc).lower()
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return StorageError(
            f"{where}: no database connection became free or could be made in time (while {action})",
            hint="check that the server is up (pg_isready); raise pool_size in [storage.postgres] "
            "if many threads share one store",
        )
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        return StorageError(
            f"{where}: permission denied while {action}: {text}",
            hint=f"grant the user CREATE on the database (or USAGE and CREATE on schema {schema_name or 'cairn'}), "
            "or use a role that owns it",
        )
    if isinstance(exc, pg_errors.QueryCanceled):
        return StorageError(
            f"{where}: the server cancelled a statement (while {action}): {text}",
            hint="raise statement_timeout_ms in [storage.postgres], or find what holds the locks (pg_stat_activity)",
        )
    if isinstance(exc, (pg_errors.DiskFull, pg_errors.OutOfMemory)):
        return StorageError(
            f"{where}: the server ran out of space (while {action}): {text}", hint="free space and retry"
        )
    if isinstance(exc, pg_errors.IntegrityError):
        return IntegrityError(
            f"{where}: a database constraint refused {action}: {text}",
            hint="run `cairn fsck`; nothing of this write was stored",
        )
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return StorageError(
            f"{where}: the server refused the password (while {action})",
            hint="set the environment variable that [storage.postgres] password_env names to the right password",
        )
    if "does not exist" in lowered and "database" in lowered:
        return StorageError(
            f"{where}: {text}",
            hint="create it (createdb NAME, or CREATE DATABASE) or point dsn in [storage.postgres] at an existing one",
        )
    if isinstance(exc, psycopg.OperationalError):
        return StorageError(
            f"{where}: cannot reach PostgreSQL (while {action}): {text}",
            hint="check that the server runs and accepts connections (pg_isready), and dsn in [storage.postgres]",
        )
    return StorageError(f"{where}: PostgreSQL failed while {action}: {text}", hint="run `cairn fsck`, then retry")


def pg_method(action: str) -> Callable[[Callable[Concatenate[_S, _P], _T]], Callable[Concatenate[_S, _P], _T]]:
    """Refuse a closed store and type every psycopg error; ``action`` goes into the message."""

    def decorate(method: Callable[Concatenate[_S, _P], _T]) -> Callable[Concatenate[_S, _P], _T]:
        @functools.wraps(method)
        def call(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
            if self._pool is None:
                raise StorageError(
                    f"{self.shown}: the store is closed", hint="open the store again; a closed store cannot be used"
                )
            try:
                return method(self, *args, **kwargs)
            except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                raise pg_error(exc, self.dsn, action, schema_name=self.schema) from exc

        return call

    return decorate


# -- helpers the facets share ----------------------------------------------------------


def json_text(value: Any) -> str:
    """Canonical JSON text of a record (sorted keys, no spaces, UTF-8 kept; NUL escaped as JSON does)."""
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def distinct(values: Iterable[str], what: str) -> list[str]:
    """Distinct strings in first-seen order; reads ``values`` once, so generators are fine."""
    out = list(dict.fromkeys(values))
    for value in out:
        if not isinstance(value, str):
            raise ValidationError(f"expected strings, got {type(value).__name__} {value!r:.60}", what=what)
    return [v for v in out if "\x00" not in v]  # PostgreSQL text holds no NUL, so no such key is stored


def where(*conditions: tuple[str, str, Any]) -> tuple[str, list[Any]]:
    """`` WHERE a = %s AND b >= %s`` and its parameters, from (column, operator, value); None values are left out.

    Columns and operators come from this package, never from callers' strings.
    """
    clauses = [f"{column} {op} %s" for column, op, value in conditions if value is not None]
    params = [value for _, _, value in conditions if value is not None]
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


def sql_limit(value: int | None) -> int | None:
    """A ``LIMIT`` parameter: None (``LIMIT ALL``) for None, never negative."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"limit must be a whole number or None, got {value!r}")
    return max(value, 0)


# -- the base ------------------------------------------------------------------------------


class PostgresConnection(Facet):
    """One cairn schema in a PostgreSQL database: the pool, and the transactions the facet mixins use.

    Safe to share between threads (the pool hands each call its own
    connection) and between processes and machines (the server's locking;
    refs move by compare-and-swap).
    """

    _pool: psycopg_pool.ConnectionPool | None

    def __init__(self, config: PostgresConfig, *, migrate: bool | None = None) -> None:
        """Connect, check the schema version and (``migrate``) bring it up to date, then open the pool.

        Raises ``StorageError`` naming the DSN (without its password) when
        the server cannot be reached, refuses the login or the permissions,
        or holds a schema written by a newer cairn-postgres. ``migrate``
        defaults to the config's ``auto_migrate``.
        """
        for key, problem in (("dsn", dsn_problem(config.dsn)), ("schema", schema_problem(config.schema))):
            if problem:
                raise ValidationError(problem, what="storage.postgres", field=key)
        self.config = config
        self.dsn = config.dsn
        self.schema = config.schema
        self.shown = f"{shown_dsn(config.dsn)} (schema {config.schema})"
        self._pool = None
        self._kwargs = self._connect_kwargs(config)
        #: The schema version found on opening, before any migration (None: a new schema).
        self.found_version: int | None = None
        try:
            with psycopg.connect(self.dsn, **self._kwargs) as conn:
                self.found_version = schema.read_version(conn, self.schema)
                self.schema_version = schema.prepare(
                    conn, self.schema, self.shown, migrate=config.auto_migrate if migrate is None else migrate
                )
        except psycopg.Error as exc:
            raise pg_error(exc, self.dsn, "opening the store", schema_name=self.schema) from exc
        options = f"-c search_path={self.schema} -c statement_timeout={config.statement_timeout_ms}"
        self._pool = psycopg_pool.ConnectionPool(
            self.dsn,
            kwargs={**self._kwargs, "options": options},
            min_size=1,
            max_size=config.pool_size,
            timeout=max(config.connect_timeout_s, 1) * 3,
            open=True,
            name=f"cairn-{self.schema}",
        )

    def _connect_kwargs(self, config: PostgresConfig) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": config.connect_timeout_s,
            "application_name": "cairn",
        }
        if config.password_env:
            password = os.environ.get(config.password_env)
            if password is None:
                raise StorageError(
                    f"{self.shown}: the environment variable {config.password_env} (password_env) is not set",
                    hint=f"export {config.password_env}=... with the database password, "
                    "or set password_env = '' to use trust, peer or ~/.pgpass authentication",
                )
            kwargs["password"] = password
        return kwargs

    # -- transactions ------------------------------------------------------------------

    def _write(self, fn: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """``fn(conn)`` in one transaction.

        Run again on a fresh connection when the connection broke before
        ``COMMIT`` was sent (once: nothing of the transaction can have been
        stored), and when the server rolled the whole transaction back for a
        deadlock or a serialization failure (a few times). A connection lost
        while committing is never retried: the error says so.
        """
        assert self._pool is not None
        reconnected = False
        for attempt in range(_ROLLBACK_RETRIES + 1):
            with self._pool.connection() as conn:
                committing = False
                try:
                    with conn.transaction():
                        result = fn(conn)
                        committing = True
                    return result
                except pg_errors.TransactionRollback:
                    if attempt == _ROLLBACK_RETRIES:
                        raise
                    time.sleep(random.uniform(0.001, 0.01) * (attempt + 1))
                except psycopg.OperationalError as exc:
                    if committing and conn.broken:
                        raise StorageError(
                            f"{self.shown}: the connection was lost while committing; the write may or may not "
                            f"have been stored ({str(exc).strip()[:200]})",
                            hint="read the ref or run again: a write that was stored is skipped "
                            "(content addressing), a ref that moved shows as a conflict",
                        ) from exc
                    if reconnected or not conn.broken:
                        raise
                    reconnected = True
                    self._pool.check()  # the server dropped this one: drop every other dead idle one too
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, fn: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """``fn(conn)`` on a pooled connection; retried once on a fresh one if the server had dropped it."""
        assert self._pool is not None
        for attempt in (0, 1):
            with self._pool.connection() as conn:
                try:
                    return fn(conn)
                except psycopg.OperationalError:
                    if attempt or not conn.broken:
                        raise
                    self._pool.check()  # the server dropped this one: drop every other dead idle one too
        raise AssertionError("unreachable")  # pragma: no cover

    def _snapshot(self, fn: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """``fn(conn)`` in one read-only repeatable-read transaction: several statements, one view."""

        def run(conn: psycopg.Connection[Any]) -> _T:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            return fn(conn)

        return self._write(run)

    def listen_connection(self) -> psycopg.Connection[Any]:
        """A connection of its own, outside the pool (autocommit), for ``LISTEN``; the caller closes it."""
        return psycopg.connect(self.dsn, **self._kwargs)

    def close(self) -> None:
        """Close the pool (idempotent). The store is unusable afterwards."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
