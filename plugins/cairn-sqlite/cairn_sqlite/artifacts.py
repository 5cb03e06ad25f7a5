"""The artifact-metadata facet on SQLite: artifact records, inline artifact bytes, snapshot records.

Each record is one row keyed by its id (the SHA-256 of the record) whose
``record`` column holds it as canonical JSON, with the columns its look-ups
filter and sort on beside it. Inline bytes are one row per hash in
``artifact_inline``, written in the transaction that writes their records.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from cairn.errors import IntegrityError, ValidationError
from cairn.model import sha256_hex
from cairn.model.artifacts import ArtifactRecord, SnapshotRecord
from cairn.storage import ArtifactMetaStore
from cairn_sqlite.connection import SqliteConnection, distinct, insert, json_text, sql_limit, sqlite_method

__all__ = ["SqliteArtifactMeta"]

_PUT_RECORD = "INSERT INTO artifact_records (id, hash, created, record) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
_PUT_INLINE = "INSERT INTO artifact_inline (hash, size, data) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
_PUT_SNAPSHOT = "INSERT INTO snapshot_records (id, tree, created, record) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
_KEYS = "(SELECT value FROM json_each(?))"


def _checked(records: Sequence[object], kind: type, method: str) -> list:
    out = list(records)
    for record in out:
        if not isinstance(record, kind):
            raise ValidationError(f"expected {kind.__name__} values, got {type(record).__name__}", what=method)
    return out


class SqliteArtifactMeta(SqliteConnection, ArtifactMetaStore):
    """``ArtifactMetaStore`` over the ``artifact_records``, ``artifact_inline`` and ``snapshot_records`` tables."""

    @sqlite_method("recording artifacts")
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
        with self._write_transaction() as conn:
            insert(conn, _PUT_RECORD, rows)
            insert(conn, _PUT_INLINE, blobs)

    @sqlite_method("reading artifact records")
    def artifact_records(self, *, hash: str | None = None, limit: int | None = None) -> list[ArtifactRecord]:
        assert self._conn is not None
        if hash is None:
            rows = self._conn.execute(
                "SELECT record FROM artifact_records ORDER BY created DESC, id DESC LIMIT ?", (sql_limit(limit),)
            )
        else:
            rows = self._conn.execute(
                "SELECT record FROM artifact_records WHERE hash = ? ORDER BY created DESC, id DESC LIMIT ?",
                (hash, sql_limit(limit)),
            )
        return [ArtifactRecord.from_record(json.loads(r[0])) for r in rows]

    @sqlite_method("reading inline artifacts")
    def get_inline(self, hashes: Iterable[str]) -> dict[str, bytes]:
        wanted = distinct(hashes, "get_inline")
        if not wanted:
            return {}
        assert self._conn is not None
        rows = self._conn.execute(
            f"SELECT hash, data FROM artifact_inline WHERE hash IN {_KEYS}", (json.dumps(wanted),)
        )
        return {digest: bytes(data) for digest, data in rows}

    @sqlite_method("listing inline artifacts")
    def inline_sizes(self) -> dict[str, int]:
        assert self._conn is not None
        return dict(self._conn.execute("SELECT hash, size FROM artifact_inline ORDER BY hash").fetchall())

    @sqlite_method("recording snapshots")
    def add_snapshot_records(self, records: Sequence[SnapshotRecord]) -> None:
        rows = [
            (r.id, r.tree, r.created, json_text(r.to_record()))
            for r in _checked(records, SnapshotRecord, "add_snapshot_records")
        ]
        if not rows:
            return
        with self._write_transaction() as conn:
            insert(conn, _PUT_SNAPSHOT, rows)

    @sqlite_method("reading snapshot records")
    def snapshot_records(self, *, tree: str | None = None, limit: int | None = None) -> list[SnapshotRecord]:
        assert self._conn is not None
        if tree is None:
            rows = self._conn.execute(
                "SELECT record FROM snapshot_records ORDER BY created DESC, id DESC LIMIT ?", (sql_limit(limit),)
            )
        else:
            rows = self._conn.execute(
                "SELECT record FROM snapshot_records WHERE tree = ? ORDER BY created DESC, id DESC LIMIT ?",
                (tree, sql_limit(limit)),
            )
        return [SnapshotRecord.from_record(json.loads(r[0])) for r in rows]

    @sqlite_method("deleting artifacts")
    def delete_artifacts(self, hashes: Iterable[str]) -> int:
        doomed = distinct(hashes, "delete_artifacts")
        if not doomed:
            return 0
        keys = (json.dumps(doomed),)
        with self._write_transaction() as conn:
            removed = conn.execute(f"DELETE FROM artifact_records WHERE hash IN {_KEYS}", keys).rowcount
            removed += conn.execute(f"DELETE FROM artifact_inline WHERE hash IN {_KEYS}", keys).rowcount
            removed += conn.execute(f"DELETE FROM snapshot_records WHERE tree IN {_KEYS}", keys).rowcount
        return int(removed)
