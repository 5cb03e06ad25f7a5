"""The artifact-metadata facet: artifact and snapshot records, and inline bytes, on the ledger branch.

Layout (``s``: the first two hex digits of the hash)::

    ledger/artifacts/<s>/<hash>/<record id>.json   one artifact record, canonical JSON
    ledger/artifacts/<s>/<hash>/data               the bytes of a small (inline) artifact
    ledger/snapshots/<s>/<tree>/<record id>.json   one snapshot record

Every path is named by content (a hash, a record's own SHA-256), so two
machines that record the same thing write the same file, and the ledger
branch merges on ``cairn ledger pull`` without conflicts; deleting an
artifact (gc) removes its directory, and a merge keeps records one side
added meanwhile. Writes are one ledger commit each, published by
compare-and-swap like every other ledger change.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cairn.errors import IntegrityError, ValidationError
from cairn.model import canonical_json, is_hash, sha256_hex
from cairn.model.artifacts import ArtifactRecord, SnapshotRecord
from cairn.storage import ArtifactMetaStore
from cairn_git._base import checked_keys, checked_limit, locked, writing
from cairn_git._git import BLOB_MODE, TREE_MODE
from cairn_git._ledger_base import LedgerBase, LedgerChange

__all__ = ["ARTIFACTS_DIR", "INLINE", "SNAPSHOTS_DIR", "GitArtifactMeta"]

ARTIFACTS_DIR = "ledger/artifacts"
SNAPSHOTS_DIR = "ledger/snapshots"
INLINE = "data"


def _directory(top: str, digest: str) -> str:
    return f"{top}/{digest[:2]}/{digest}"  # digest is checked (is_hash) before it gets here


def _record_bytes(record: ArtifactRecord | SnapshotRecord) -> bytes:
    return canonical_json(record.to_record(), check_keys=False) + b"\n"


def _checked(records: Sequence[Any], kind: type, method: str) -> list[Any]:
    out = list(records)
    for record in out:
        if not isinstance(record, kind):
            raise ValidationError(f"expected {kind.__name__} values, got {type(record).__name__}", what=method)
    return out


def _newest_first(records: Iterable[Any], limit: int | None) -> list[Any]:
    ordered = sorted(records, key=lambda r: (r.created, r.id), reverse=True)
    return ordered if limit is None else ordered[:limit]


class GitArtifactMeta(LedgerBase, ArtifactMetaStore):
    """``ArtifactMetaStore`` on the ledger branch (see the module docstring)."""

    # -- writing ------------------------------------------------------------------------------------

    @writing
    def add_artifact_records(
        self, records: Sequence[ArtifactRecord], *, inline: Mapping[str, bytes] | None = None
    ) -> None:
        """Records and inline bytes in one ledger commit; bytes that do not match their hash write nothing."""
        records = _checked(records, ArtifactRecord, "add_artifact_records")
        blobs: dict[str, bytes] = {}
        for digest, data in (inline or {}).items():
            data = bytes(data)
            if not is_hash(digest) or sha256_hex(data) != digest:
                raise IntegrityError(
                    f"inline artifact {str(digest)[:12]}: its bytes hash to {sha256_hex(data)[:12]}",
                    hint="inline bytes are named by their SHA-256",
                )
            blobs[digest] = data
        files = {f"{_directory(ARTIFACTS_DIR, r.hash)}/{r.id}.json": _record_bytes(r) for r in records}
        files.update({f"{_directory(ARTIFACTS_DIR, h)}/{INLINE}": data for h, data in blobs.items()})
        self._add_files(files, f"artifacts: {len(records)} record(s)", "recording artifacts")

    @writing
    def add_snapshot_records(self, records: Sequence[SnapshotRecord]) -> None:
        records = _checked(records, SnapshotRecord, "add_snapshot_records")
        files = {f"{_directory(SNAPSHOTS_DIR, r.tree)}/{r.id}.json": _record_bytes(r) for r in records}
        self._add_files(files, f"snapshots: {len(records)} record(s)", "recording snapshots")

    def _add_files(self, files: Mapping[str, bytes], message: str, what: str) -> None:
        if not files:
            return
        oids = {path: self._writer.blob(data) for path, data in files.items()}

        def plan(tip: str | None, root: str | None, attempt: int) -> LedgerChange | None:
            # What is there already stays as it is: the same path always holds the same bytes.
            edits = {p: (BLOB_MODE, oid) for p, oid in oids.items() if self._trees.lookup(root, p) is None}
            return LedgerChange(edits, message) if edits else None

        self._update_ledger(what, plan)

    @writing
    def delete_artifacts(self, hashes: Iterable[str]) -> int:
        """Remove the hashes' directories under ``ledger/artifacts`` and ``ledger/snapshots`` in one commit."""
        doomed = [h for h in checked_keys(hashes, "delete_artifacts") if is_hash(h)]  # others cannot be stored
        directories = [_directory(top, h) for h in doomed for top in (ARTIFACTS_DIR, SNAPSHOTS_DIR)]
        if not directories:
            return 0

        def plan(tip: str | None, root: str | None, attempt: int) -> LedgerChange | None:
            present = {d: self._files_in(root, d) for d in directories}
            present = {d: n for d, n in present.items() if n}
            if not present:
                return None
            edits: dict[str, tuple[str, str] | None] = {d: None for d in present}
            return LedgerChange(edits, f"gc: forget {len(doomed)} artifact(s)", result=sum(present.values()))

        return int(self._update_ledger("deleting artifacts", plan) or 0)

    def _files_in(self, root: str | None, directory: str) -> int:
        entry = self._trees.lookup(root, directory)
        if entry is None or entry[0] != TREE_MODE:
            return 0
        return sum(1 for mode, _ in self._trees.get(entry[1]).values() if mode != TREE_MODE)

    # -- reading -------------------------------------------------------------------------------------

    def _records_under(self, root: str | None, path: str, parse: Any) -> list[Any]:
        files = [oid for p, oid in self._trees.walk(root, path) if p.endswith(".json")]
        return list(self._parsed(files, lambda data: parse(json.loads(data))).values())

    @locked
    def artifact_records(self, *, hash: str | None = None, limit: int | None = None) -> list[ArtifactRecord]:
        n = checked_limit(limit)
        _, root = self._read_ledger()
        if hash is None:
            path = ARTIFACTS_DIR
        elif is_hash(hash):
            path = _directory(ARTIFACTS_DIR, hash)
        else:
            return []
        return _newest_first(self._records_under(root, path, ArtifactRecord.from_record), n)

    @locked
    def snapshot_records(self, *, tree: str | None = None, limit: int | None = None) -> list[SnapshotRecord]:
        n = checked_limit(limit)
        _, root = self._read_ledger()
        if tree is None:
            path = SNAPSHOTS_DIR
        elif is_hash(tree):
            path = _directory(SNAPSHOTS_DIR, tree)
        else:
            return []
        return _newest_first(self._records_under(root, path, SnapshotRecord.from_record), n)

    @locked
    def get_inline(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """The inline bytes of each hash, read at the ledger's current tree in one round trip, verified."""
        wanted = [h for h in checked_keys(hashes, "get_inline") if is_hash(h)]
        _, root = self._read_ledger()
        if root is None or not wanted:
            return {}
        found = self._cat.read([f"{root}:{_directory(ARTIFACTS_DIR, h)}/{INLINE}" for h in wanted])
        out = {}
        for digest, item in zip(wanted, found, strict=True):
            if item is None or item[1] != "blob":
                continue
            if sha256_hex(item[2]) != digest:
                raise IntegrityError(
                    f"inline artifact {digest} on {self.ledger_ref} is corrupt: its bytes hash to "
                    f"{sha256_hex(item[2])}",
                    hint="it was changed behind cairn's back; put the original file again to repair it",
                )
            out[digest] = item[2]
        return out

    @locked
    def inline_sizes(self) -> dict[str, int]:
        _, root = self._read_ledger()
        files = [(p, oid) for p, oid in self._trees.walk(root, ARTIFACTS_DIR) if p.endswith(f"/{INLINE}")]
        sizes = self._cat.info([oid for _, oid in files])
        out = {}
        for (path, _), info in zip(files, sizes, strict=True):
            digest = path.split("/")[-2]
            if info is not None and is_hash(digest):
                out[digest] = info[2]
        return dict(sorted(out.items()))
