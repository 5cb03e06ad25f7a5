"""The nonces facet: idempotency keys, claimed by compare-and-swap insert, with the recorded result.

``claim_nonce`` inserts a pending record unless a live one holds the key,
in one atomic step, so of many processes (or machines sharing a store)
claiming one key exactly one wins. The winner acts, then records the result
(``complete_nonce``) or gives the key back (``release_nonce``); everyone
else reads the record. A record lapses at its ``expires_at``: a pending
claim whose owner died, or a result kept for the configured time.
"""

from __future__ import annotations

import abc
from typing import Any

from cairn.model.governance import NonceRecord
from cairn.storage._facet import Facet

__all__ = ["NonceStore"]


class NonceStore(Facet, abc.ABC):
    """Idempotency keys and their results."""

    facet = "nonces"
    holds = "idempotency keys"

    @abc.abstractmethod
    def claim_nonce(self, record: NonceRecord) -> NonceRecord | None:
        """Store ``record`` (pending) unless a record of its key is live at ``record.claimed_at``; returns
        None when stored (the caller owns the key), else the live record, unchanged."""

    @abc.abstractmethod
    def complete_nonce(self, key: str, owner: str, result: Any, *, done_at: str, expires_at: str) -> NonceRecord:
        """Record the result of the pending claim ``owner`` holds on ``key``; ``ConflictError`` (nothing
        changed) when the key is not pending under ``owner``. Returns the record as stored."""

    @abc.abstractmethod
    def release_nonce(self, key: str, owner: str) -> bool:
        """Forget the pending claim ``owner`` holds on ``key`` (the action failed); False when there was none."""

    @abc.abstractmethod
    def get_nonce(self, key: str) -> NonceRecord | None:
        """The record of ``key``, live or lapsed, or None."""

    @abc.abstractmethod
    def nonce_records(self) -> list[NonceRecord]:
        """Every record, live or lapsed, in key order (code points): what ``cairn store copy`` moves."""

    @abc.abstractmethod
    def prune_nonces(self, before: str) -> int:
        """Forget every record that lapsed before ``before``; returns how many."""
