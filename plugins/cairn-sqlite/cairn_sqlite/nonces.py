"""The nonces facet on SQLite: idempotency keys, one row each, claimed under the write lock.

A claim reads the key's row and inserts (or replaces a lapsed one) inside
one ``BEGIN IMMEDIATE``, so of many processes claiming one key exactly one
gets it.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from cairn.errors import ConflictError
from cairn.model.governance import NonceRecord, check_nonce_key
from cairn.storage import NonceStore
from cairn_sqlite.connection import SqliteConnection, json_text, sqlite_method
from cairn_sqlite.governance import checked

__all__ = ["SqliteNonces"]


class SqliteNonces(SqliteConnection, NonceStore):
    """``NonceStore`` over the ``nonces`` table: a claim is one insert-or-replace-if-lapsed under the write lock."""

    @sqlite_method("claiming an idempotency key")
    def claim_nonce(self, record: NonceRecord) -> NonceRecord | None:
        checked(record, NonceRecord, "claim_nonce")
        with self._write_transaction() as conn:
            row = conn.execute("SELECT record, expires_at FROM nonces WHERE key = ?", (record.key,)).fetchone()
            if row is not None and row[1] > record.claimed_at:
                return NonceRecord.from_record(json.loads(row[0]))
            conn.execute(
                "INSERT OR REPLACE INTO nonces (key, owner, state, expires_at, record) VALUES (?, ?, ?, ?, ?)",
                (record.key, record.owner, record.state, record.expires_at, json_text(record.to_record())),
            )
            return None

    @sqlite_method("recording an idempotent result")
    def complete_nonce(self, key: str, owner: str, result: Any, *, done_at: str, expires_at: str) -> NonceRecord:
        check_nonce_key(key)
        with self._write_transaction() as conn:
            row = conn.execute("SELECT record FROM nonces WHERE key = ?", (key,)).fetchone()
            current = NonceRecord.from_record(json.loads(row[0])) if row else None
            if current is None or current.state != "pending" or current.owner != owner:
                raise ConflictError(
                    f"idempotency key {key!r}", f"pending for {owner}", None if current is None else current.state
                )
            done = attrs.evolve(current, state="done", result=result, done_at=done_at, expires_at=expires_at)
            conn.execute(
                "UPDATE nonces SET state = 'done', expires_at = ?, record = ? WHERE key = ?",
                (expires_at, json_text(done.to_record()), key),
            )
            return done

    @sqlite_method("releasing an idempotency key")
    def release_nonce(self, key: str, owner: str) -> bool:
        with self._write_transaction() as conn:
            gone = conn.execute("DELETE FROM nonces WHERE key = ? AND owner = ? AND state = 'pending'", (key, owner))
            return gone.rowcount > 0

    @sqlite_method("reading an idempotency key")
    def get_nonce(self, key: str) -> NonceRecord | None:
        assert self._conn is not None
        row = self._conn.execute("SELECT record FROM nonces WHERE key = ?", (key,)).fetchone()
        return None if row is None else NonceRecord.from_record(json.loads(row[0]))

    @sqlite_method("listing idempotency keys")
    def nonce_records(self) -> list[NonceRecord]:
        assert self._conn is not None
        rows = self._conn.execute("SELECT record FROM nonces").fetchall()
        return sorted((NonceRecord.from_record(json.loads(r[0])) for r in rows), key=lambda r: r.key)

    @sqlite_method("pruning idempotency keys")
    def prune_nonces(self, before: str) -> int:
        with self._write_transaction() as conn:
            return int(conn.execute("DELETE FROM nonces WHERE expires_at <= ?", (before,)).rowcount)
