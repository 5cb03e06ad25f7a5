"""The nonces facet on PostgreSQL: idempotency keys, one row each, claimed by one upsert.

A claim is ``INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE`` the stored
record has lapsed: the server runs it atomically, so of many processes (or
machines) claiming one key exactly one inserts or replaces the row. A claim
that finds a live record has locked that row, so reading it in the same
transaction gives the record that won, not one a racing writer has since
replaced.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import psycopg

from cairn.errors import ConflictError, ValidationError
from cairn.model.governance import NonceRecord, check_nonce_key
from cairn.storage import NonceStore
from cairn_postgres.connection import PostgresConnection, json_text, pg_method

__all__ = ["PostgresNonces", "checked"]

_CLAIM = (
    "INSERT INTO nonces (key, owner, state, expires_at, record) VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, state = excluded.state, "
    "expires_at = excluded.expires_at, record = excluded.record WHERE nonces.expires_at <= %s RETURNING 1"
)


def checked(value: Any, kind: type, method: str) -> Any:
    """``value`` when it is a ``kind``; else ``ValidationError`` naming the method."""
    if not isinstance(value, kind):
        raise ValidationError(f"expected a {kind.__name__}, got {type(value).__name__}", what=method)
    return value


def _record(text: str) -> NonceRecord:
    return NonceRecord.from_record(json.loads(text))


class PostgresNonces(PostgresConnection, NonceStore):
    """``NonceStore`` over the ``nonces`` table: a claim is one insert-or-replace-if-lapsed upsert."""

    @pg_method("claiming an idempotency key")
    def claim_nonce(self, record: NonceRecord) -> NonceRecord | None:
        checked(record, NonceRecord, "claim_nonce")
        check_nonce_key(record.key)
        row = (record.key, record.owner, record.state, record.expires_at, json_text(record.to_record()))

        def run(conn: psycopg.Connection[Any]) -> NonceRecord | None:
            if conn.execute(_CLAIM, (*row, record.claimed_at)).fetchone() is not None:
                return None
            held = conn.execute("SELECT record FROM nonces WHERE key = %s", (record.key,)).fetchone()
            assert held is not None, "the upsert locked the live row"
            return _record(held[0])

        return self._write(run)

    @pg_method("recording an idempotent result")
    def complete_nonce(self, key: str, owner: str, result: Any, *, done_at: str, expires_at: str) -> NonceRecord:
        check_nonce_key(key)

        def run(conn: psycopg.Connection[Any]) -> NonceRecord:
            row = conn.execute("SELECT record FROM nonces WHERE key = %s FOR UPDATE", (key,)).fetchone()
            current = _record(row[0]) if row else None
            if current is None or current.state != "pending" or current.owner != owner:
                raise ConflictError(
                    f"idempotency key {key!r}", f"pending for {owner}", None if current is None else current.state
                )
            done = attrs.evolve(current, state="done", result=result, done_at=done_at, expires_at=expires_at)
            conn.execute(
                "UPDATE nonces SET state = 'done', expires_at = %s, record = %s WHERE key = %s",
                (expires_at, json_text(done.to_record()), key),
            )
            return done

        return self._write(run)

    @pg_method("releasing an idempotency key")
    def release_nonce(self, key: str, owner: str) -> bool:
        if "\x00" in key or "\x00" in owner:
            return False  # PostgreSQL text holds no NUL, so no such claim is stored

        def run(conn: psycopg.Connection[Any]) -> bool:
            gone = conn.execute("DELETE FROM nonces WHERE key = %s AND owner = %s AND state = 'pending'", (key, owner))
            return gone.rowcount > 0

        return self._write(run)

    @pg_method("reading an idempotency key")
    def get_nonce(self, key: str) -> NonceRecord | None:
        if "\x00" in key:
            return None
        row = self._read(lambda conn: conn.execute("SELECT record FROM nonces WHERE key = %s", (key,)).fetchone())
        return None if row is None else _record(row[0])

    @pg_method("listing idempotency keys")
    def nonce_records(self) -> list[NonceRecord]:
        rows = self._read(lambda conn: conn.execute("SELECT record FROM nonces ORDER BY key").fetchall())
        return [_record(r[0]) for r in rows]

    @pg_method("pruning idempotency keys")
    def prune_nonces(self, before: str) -> int:
        return self._write(
            lambda conn: int(conn.execute("DELETE FROM nonces WHERE expires_at <= %s", (before,)).rowcount)
        )
