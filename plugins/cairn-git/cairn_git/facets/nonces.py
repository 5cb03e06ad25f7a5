"""The nonces facet on the ledger branch: idempotency keys and their results.

Layout (``s``: the first two hex digits of the key's SHA-256)::

    ledger/nonces/<s>/<sha256 of key>.json    one idempotency key and its result

A claim is a ledger commit whose plan looks at the key's file as it is:
when a live record holds the key, nothing is written and that record is
returned; otherwise the pending record is written, and the commit published
by compare-and-swap of the branch (planned again on the new tip when
another writer moved it first). So of many claimants exactly one wins.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from cairn.errors import ConflictError
from cairn.model import sha256_hex
from cairn.model.governance import NonceRecord, check_nonce_key
from cairn.storage import NonceStore
from cairn_git._base import locked, writing
from cairn_git._git import BLOB_MODE
from cairn_git._ledger_base import LedgerChange
from cairn_git._records import LedgerRecords, checked, record_bytes

__all__ = ["NONCES_DIR", "GitNonces"]

NONCES_DIR = "ledger/nonces"


class GitNonces(LedgerRecords, NonceStore):
    """``NonceStore`` on the ledger branch: a key's file is named by the SHA-256 of the key."""

    def _nonce_path(self, key: str) -> str:
        digest = sha256_hex(check_nonce_key(key).encode("utf-8"))
        return f"{NONCES_DIR}/{digest[:2]}/{digest}.json"

    def _nonce(self, root: str | None, key: str) -> NonceRecord | None:
        record = self._record_at(root, self._nonce_path(key))
        return None if record is None else NonceRecord.from_record(record)

    @writing
    def claim_nonce(self, record: NonceRecord) -> NonceRecord | None:
        checked(record, NonceRecord, "claim_nonce")
        blob = self._writer.blob(record_bytes(record.to_record()))

        def plan(tip: str | None, root: str | None, attempt: int) -> LedgerChange:
            current = self._nonce(root, record.key)
            if current is not None and current.expires_at > record.claimed_at:
                return LedgerChange({}, "", result=current)
            return LedgerChange({self._nonce_path(record.key): (BLOB_MODE, blob)}, "idempotency key claimed")

        return self._update_ledger("claiming an idempotency key", plan)

    @writing
    def complete_nonce(self, key: str, owner: str, result: Any, *, done_at: str, expires_at: str) -> NonceRecord:
        path = self._nonce_path(key)

        def plan(tip: str | None, root: str | None, attempt: int) -> LedgerChange:
            current = self._nonce(root, key)
            if current is None or current.state != "pending" or current.owner != owner:
                raise ConflictError(
                    f"idempotency key {key!r}", f"pending for {owner}", None if current is None else current.state
                )
            done = attrs.evolve(current, state="done", result=result, done_at=done_at, expires_at=expires_at)
            blob = self._writer.blob(record_bytes(done.to_record()))
            return LedgerChange({path: (BLOB_MODE, blob)}, "idempotency key done", result=done)

        return self._update_ledger("recording an idempotent result", plan)

    @writing
    def release_nonce(self, key: str, owner: str) -> bool:
        path = self._nonce_path(key)

        def plan(tip: str | None, root: str | None, attempt: int) -> LedgerChange | None:
            current = self._nonce(root, key)
            if current is None or current.state != "pending" or current.owner != owner:
                return LedgerChange({}, "", result=False)
            return LedgerChange({path: None}, "idempotency key released", result=True)

        return bool(self._update_ledger("releasing an idempotency key", plan))

    @locked
    def get_nonce(self, key: str) -> NonceRecord | None:
        _, root = self._read_ledger()
        return self._nonce(root, key)

    @locked
    def nonce_records(self) -> list[NonceRecord]:
        _, root = self._read_ledger()
        files = list(self._trees.walk(root, NONCES_DIR))
        parsed = self._parsed([oid for _, oid in files], lambda data: NonceRecord.from_record(json.loads(data)))
        return sorted(parsed.values(), key=lambda r: r.key)

    @writing
    def prune_nonces(self, before: str) -> int:
        def plan(tip: str | None, root: str | None, attempt: int) -> LedgerChange:
            files = list(self._trees.walk(root, NONCES_DIR))
            parsed = self._parsed([oid for _, oid in files], lambda data: NonceRecord.from_record(json.loads(data)))
            doomed = [p for p, oid in files if oid in parsed and parsed[oid].expires_at <= before]
            edits: dict[str, tuple[str, str] | None] = {p: None for p in doomed}
            return LedgerChange(edits, f"idempotency keys: prune {len(doomed)}", result=len(doomed))

        return int(self._update_ledger("pruning idempotency keys", plan) or 0)
