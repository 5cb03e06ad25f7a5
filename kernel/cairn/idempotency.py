"""Idempotency: an action done under a key is done once; a repeat returns the recorded result.

``Idempotency(store).run(key, action)`` claims ``key`` in the store's
``nonces`` facet (a compare-and-swap insert: of many processes or machines
sharing the store, one wins), runs ``action`` only if it won, and records
the result with the key. A second call with the key -- in this process or
any other -- gets the recorded result back (``Once.replayed``) without
acting. A failed action gives the key back, so a retry acts again. A key
whose owner died mid-action is free again after ``[policy] claim_ttl``;
recorded results lapse after ``[policy] idempotency_ttl``.

``fingerprint`` (an action's hash) ties a key to what it was used for:
reusing a key for a different action is a ``ValidationError`` and changes
nothing. Results must be JSON values: they are stored.
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
import socket
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import attrs

from cairn.errors import ConflictError, ValidationError
from cairn.events import EventBus
from cairn.events import bus as default_bus
from cairn.model import canonical_json, format_time, now, parse_time
from cairn.model.governance import NonceRecord, check_nonce_key
from cairn.storage import Facet, NonceStore, require

__all__ = ["IDEMPOTENCY_EVENT", "Idempotency", "Once"]

#: The bus event published when a key is acted on or replayed.
IDEMPOTENCY_EVENT = "idempotency:key"

T = TypeVar("T")


@attrs.frozen
class Once(Generic[T]):
    """An action's result, and whether it was recorded by an earlier call (``replayed``) instead of acted now."""

    result: T
    replayed: bool
    key: str


def _age(text: str | _dt.timedelta) -> _dt.timedelta:
    from cairn.ledger import parse_age

    return parse_age(text)


class Idempotency:
    """Run actions at most once per key, over a store with the ``nonces`` facet."""

    def __init__(
        self,
        store: Facet,
        *,
        ttl: str | _dt.timedelta = "7d",
        claim_ttl: str | _dt.timedelta = "1h",
        bus: EventBus | None = None,
        clock: Callable[[], str] = now,
    ) -> None:
        self.store = require(store, NonceStore, doing="idempotency keys")
        self.ttl = _age(ttl)
        self.claim_ttl = _age(claim_ttl)
        self.bus = bus or default_bus
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def _later(self, moment: str, age: _dt.timedelta) -> str:
        return format_time(parse_time(moment) + age)

    def run(self, key: str, action: Callable[[], T], *, fingerprint: str | None = None) -> Once[T]:
        """``action()``'s result, acting only when no earlier call recorded one under ``key``.

        ``ConflictError`` when another caller holds the key and has not
        finished (retry later); ``ValidationError`` when the key was used for
        a different ``fingerprint``. Neither acts nor changes anything.
        """
        check_nonce_key(key)
        moment = self.clock()
        claim = NonceRecord(key, self.owner, moment, self._later(moment, self.claim_ttl), fingerprint=fingerprint)
        held = self.store.claim_nonce(claim)
        if held is not None:
            if fingerprint is not None and held.fingerprint is not None and held.fingerprint != fingerprint:
                raise ValidationError(
                    f"idempotency key {key!r} was used for a different action (recorded {held.claimed_at})",
                    hint="use a new key for a new action; a key names one action",
                )
            if held.state == "done":
                self.bus.publish(IDEMPOTENCY_EVENT, {"key": key, "replayed": True, "fingerprint": fingerprint})
                return Once(held.result, True, key)
            raise ConflictError(
                f"idempotency key {key!r}",
                None,
                "pending",
                hint=f"another caller has been acting on it since {held.claimed_at}; retry once it is done "
                f"(a claim whose owner died lapses at {held.expires_at})",
            )
        try:
            result = action()
            canonical_json(result, check_keys=False)  # a result that cannot be stored is refused before recording
        except BaseException:
            self.store.release_nonce(key, self.owner)
            raise
        done = self.clock()
        self.store.complete_nonce(key, self.owner, result, done_at=done, expires_at=self._later(done, self.ttl))
        self.bus.publish(IDEMPOTENCY_EVENT, {"key": key, "replayed": False, "fingerprint": fingerprint})
        return Once(result, False, key)

    def get(self, key: str) -> Any:
        """The result recorded under ``key`` and still live, or None."""
        record = self.store.get_nonce(check_nonce_key(key))
        if record is None or record.state != "done" or record.expires_at <= self.clock():
            return None
        return record.result

    def prune(self) -> int:
        """Forget every key that lapsed."""
        return self.store.prune_nonces(self.clock())
