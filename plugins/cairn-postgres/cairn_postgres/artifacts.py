"""The artifact-metadata facet on PostgreSQL: artifact records, inline artifact bytes, snapshot records.

Each record is one row keyed by its id (the SHA-256 of the record) whose
``record`` column holds it as canonical JSON, with the columns its look-ups
filter and sort on beside it. Inline bytes are one row per hash in
``artifact_inline``, written in the transaction that writes their records.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg

from cairn.errors import IntegrityError, ValidationError
from cairn.model import sha256_hex
from cairn.model.artifacts import ArtifactRecord, SnapshotRecord
from cairn.storage import ArtifactMetaStore
from cairn_postgres.connection import PostgresConnection, distinct, json_text, pg_method, sql_limit

__all__ = ["PostgresArtifactMeta"]

_PUT_RECORD = "INSERT INTO artifact_records (id, hash, created, record) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"
_PUT_INLINE = "INSERT INTO artifact_inline (hash, size, data) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
_PUT_SNAPSHOT = (
    "INSERT INTO snapshot_records (id, tree, created, record) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"
)


def _checked(records: Sequence[object], kind: type, method: str) -> list[Any]:
    out = list(records)
    for record in out:
        if not isinstance(record, kind):
            raise ValidationError(f"expected {kind.__name__} values, got {type(record).__name__}", what=method)
    return out


class PostgresArtifactMeta(PostgresConnection, ArtifactMetaStore):
    """``ArtifactMetaStore`` over the ``artifact_records``, ``artifact_inline`` and ``snapshot_records`` tables."""

    @pg_method("recording artifacts")
    def add_artifact_records(
        self, records: Sequence[ArtifactRecord], *, inline: Mapping[str, bytes] | None = None
    ) -> None:
        rows = [
            (r.id, r.hash, r.created, json_text(r.to_record()))
            for r in _checked(records, ArtifactRecord, "add_artifact_records")
        ]
        blobs = []
        for digest, data in (inline or {}).items():
            data = bytes(data)
            if sha256_hex(data) != digest:
                raise IntegrityError(
                    f"inline artifact {str(digest)[:12]}: its bytes hash to {sha256_hex(data)[:12]}",
                    hint="inline bytes are named by their SHA-256",
                )
            blobs.append((digest, len(data), data))
        if not rows and not blobs:
            return

        def run(conn: psycopg.Connection[Any]) -> None:
            cursor = conn.cursor()
            if rows:
                cursor.executemany(_PUT_RECORD, rows)
            if blobs:
                cursor.executemany(_PUT_INLINE, blobs)

        self._write(run)

    def _records(self, table: str, key: str, value: str | None, limit: int | None) -> list[str]:
        clause = f" WHERE {key} = %s" if value is not None else ""
        params = ([value] if value is not None else []) + [sql_limit(limit)]
        sql = f"SELECT record FROM {table}{clause} ORDER BY created DESC, id DESC LIMIT %s"
        return [r[0] for r in self._read(lambda conn: conn.execute(sql, params).fetchall())]

    @pg_method("reading artifact records")
    def artifact_records(self, *, hash: str | None = None, limit: int | None = None) -> list[ArtifactRecord]:
        if hash is not None and "\x00" in hash:
            return []
        return [
            ArtifactRecord.from_record(json.loads(r)) for r in self._records("artifact_records", "hash", hash, limit)
        ]

    @pg_method("reading inline artifacts")
    def get_inline(self, hashes: Iterable[str]) -> dict[str, bytes]:
        wanted = distinct(hashes, "get_inline")
        if not wanted:
            return {}
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT hash, data FROM artifact_inline WHERE hash = ANY(%s)", (wanted,)
            ).fetchall()
        )
        return {digest: bytes(data) for digest, data in rows}

    @pg_method("listing inline artifacts")
    def inline_sizes(self) -> dict[str, int]:
        return dict(
            self._read(lambda conn: conn.execute("SELECT hash, size FROM artifact_inline ORDER BY hash").fetchall())
        )

    @pg_method("recording snapshots")
    def add_snapshot_records(self, records: Sequence[SnapshotRecord]) -> None:
        rows = [
            (r.id, r.tree, r.created, json_text(r.to_record()))
            for r in _checked(records, SnapshotRecord, "add_snapshot_records")
        ]
        if not rows:
            return

        def run(conn: psycopg.Connection[Any]) -> None:
            conn.cursor().executemany(_PUT_SNAPSHOT, rows)

        self._write(run)

    @pg_method("reading snapshot records")
    def snapshot_records(self, *, tree: str | None = None, limit: int | None = None) -> list[SnapshotRecord]:
        if tree is not None and "\x00" in tree:
            return []
        return [
            SnapshotRecord.from_record(json.loads(r)) for r in self._records("snapshot_records", "tree", tree, limit)
        ]

    @pg_method("deleting artifacts")
    def delete_artifacts(self, hashes: Iterable[str]) -> int:
        doomed = distinct(hashes, "delete_artifacts")
        if not doomed:
            return 0

        def run(conn: psycopg.Connection[Any]) -> int:
            removed = conn.execute("DELETE FROM artifact_records WHERE hash = ANY(%s)", (doomed,)).rowcount
            removed += conn.execute("DELETE FROM artifact_inline WHERE hash = ANY(%s)", (doomed,)).rowcount
            removed += conn.execute("DELETE FROM snapshot_records WHERE tree = ANY(%s)", (doomed,)).rowcount
            return int(removed)

        return self._write(run)
