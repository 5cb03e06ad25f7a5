"""The meter: one ``provider:call`` event and one spend record per attempt, and the spend ceilings.

Spend records live in the store's ledger facet (``cairn.storage.RunStore``).
A store without it (one that keeps only context) records no spend, and a
spend ceiling cannot be enforced on it: a call with a ceiling set is refused
with ``MissingFacetError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from cairn.config import ProvidersSettings
from cairn.errors import MissingFacetError
from cairn.events import EventBus
from cairn.events import bus as default_bus
from cairn.model.ledger import SpendRecord
from cairn.providers._errors import ProviderMisconfiguredError, SpendCeilingError, _TaxonomyError
from cairn.providers._usage import Price, Usage

if TYPE_CHECKING:  # pragma: no cover
    from cairn.gate import Gate
    from cairn.storage import RunStore

__all__ = ["CALL_EVENT", "Meter"]

#: The name of the event published for every provider call attempt.
CALL_EVENT = "provider:call"


def _day_start(moment: str) -> str:
    return moment[:10] + "T00:00:00.000000Z"


class Meter:
    """Records every provider call attempt and enforces the spend ceilings of ``[providers]``.

    Each attempt publishes ``provider:call`` on the bus and appends a
    ``SpendRecord`` to the store's ledger facet (when it has one): provider,
    model, outcome, tokens, cost and run. Calls the kernel refused before
    reaching the provider (capabilities, ceilings) are recorded with ``calls=0``.

    The daily ceiling counts the spend records of today in the ledger; the
    per-run ceiling those of ``run_id``, or, with no run id, everything this
    meter recorded (one command, one process). With no store at all, both
    count what this meter recorded. A store without the ledger facet keeps no
    spend history, so with a ceiling set every call is refused with
    ``MissingFacetError``; with none, calls go through unrecorded in the store.
    """

    def __init__(
        self,
        store: object | None = None,
        *,
        settings: ProvidersSettings | None = None,
        bus: EventBus | None = None,
        run_id: str | None = None,
        now: Callable[[], str] | None = None,
        gate: Gate | None = None,
    ) -> None:
        from cairn.model import now as _now

        self.store = store
        #: Where spend records go and are counted: the store's ledger facet, None when it has none.
        self.ledger: RunStore | None = None
        if store is not None:
            from cairn.storage import RunStore  # here: a caller with a store has imported cairn.storage already

            self.ledger = store if isinstance(store, RunStore) else None
        self.settings = settings or ProvidersSettings()
        self.bus = bus or default_bus
        self.run_id = run_id
        self.now = now or _now
        self.session_spend = 0.0
        #: Spend records held back by ``aggregated()``, one per (provider, model, outcome); None when not held.
        self._held: dict[tuple[str, str, str], SpendRecord] | None = None
        #: The policy gate every call asks before it is sent (``cairn.gate``); None lets every call through.
        self.gate = gate

    @contextlib.contextmanager
    def aggregated(self) -> Iterator[None]:
        """Hold spend records in the block and write one per (provider, model, outcome) when it ends.

        For bulk work (``cairn memory index`` makes thousands of embedding
        calls): the ledger gets one record summing calls, tokens and cost
        instead of one write per call. ``flush()`` writes what is held so
        far (a checkpoint); ceilings count held spend too.
        """
        if self._held is not None:  # nested: the outer block writes
            yield
            return
        self._held = {}
        try:
            yield
        finally:
            self.flush()
            self._held = None

    def flush(self) -> None:
        """Write the spend records ``aggregated()`` holds (one write), and hold nothing."""
        if not self._held:
            return
        held, self._held = list(self._held.values()), {}
        if self.ledger is not None:
            self.ledger.add_spend(held)

    def _held_cost(self, run_only: bool) -> float:
        if not self._held:
            return 0.0
        return sum(
            r.cost for r in self._held.values() if r.cost is not None and (not run_only or r.run_id == self.run_id)
        )

    @property
    def has_ceiling(self) -> bool:
        return self.settings.max_spend_per_day is not None or self.settings.max_spend_per_run is not None

    def spent_today(self) -> float:
        if self.store is None:
            return self.session_spend
        records = self._history().spend(since=_day_start(self.now()))
        return sum(r.cost for r in records if r.cost is not None) + self._held_cost(False)

    def spent_in_run(self) -> float:
        if self.store is None or self.run_id is None:
            return self.session_spend
        spent = sum(r.cost for r in self._history().spend(run_id=self.run_id) if r.cost is not None)
        return spent + self._held_cost(True)

    def _history(self) -> RunStore:
        """The ledger holding the spend history, or ``MissingFacetError`` naming the ceilings that need it."""
        if self.ledger is not None:
            return self.ledger
        from cairn.storage import RunStore, backend_name

        ceilings = " and ".join(
            name for name in ("max_spend_per_day", "max_spend_per_run") if getattr(self.settings, name) is not None
        )
        error = MissingFacetError(
            backend_name(self.store),
            RunStore.facet,
            RunStore.holds,
            doing=f"[providers] {ceilings}" if ceilings else "counting spend",
        )
        if ceilings:
            error.hint = f"{error.hint}; or remove {ceilings} from [providers] to call without a ceiling"
        raise error

    def check(self, provider: str, model: str, price: Price | None, input_tokens: int | None) -> None:
        """Refuse the call when a ceiling is reached, counting what its input will cost at least.

        With a store that keeps no ledger, a ceiling cannot be counted: ``MissingFacetError``.
        """
        if not self.has_ceiling:
            return
        if self.store is not None:
            self._history()  # before the price: without spend history no ceiling can hold
        if price is None:
            raise ProviderMisconfiguredError(
                f"a spend ceiling is set but the price of {provider} model {model!r} is unknown, "
                "so its spend could not be counted",
                hint=f'add a price to the provider\'s table, e.g. [llm.{provider}.prices."{model}"] input = 0.15, '
                "output = 0.60 (per million tokens; 0 for a free local model)",
                retryable=False,
                provider=provider,
                model=model,
            )
        upcoming = price.cost(Usage(input_tokens=input_tokens or 0))
        for ceiling, limit, spent, scope in (
            ("max_spend_per_day", self.settings.max_spend_per_day, self.spent_today, "today (UTC)"),
            ("max_spend_per_run", self.settings.max_spend_per_run, self.spent_in_run, "in this run"),
        ):
            if limit is None:
                continue
            so_far = spent()
            if so_far + upcoming > limit or so_far >= limit:
                raise SpendCeilingError(
                    f"spend ceiling reached: {_money(so_far)} spent {scope}"
                    + (f" and this call's input costs {_money(upcoming)}" if upcoming else "")
                    + f", against [providers] {ceiling} = {limit:g}",
                    ceiling=ceiling,
                    limit=limit,
                    spent=so_far,
                    hint=(
                        "wait until 00:00 UTC or raise the ceiling in cairn.toml"
                        if ceiling == "max_spend_per_day"
                        else "start a new run or raise the ceiling in cairn.toml"
                    ),
                    provider=provider,
                    model=model,
                )

    def admit(
        self,
        provider: str,
        model: str,
        price: Price | None,
        input_tokens: int,
        output_tokens: int,
        texts: Sequence[str],
        operation: str,
    ) -> None:
        """Ask the policy gate about this call (estimated tokens and cost; a digest of the texts, never the
        texts); raises ``PolicyDeniedError`` or ``ApprovalRequiredError`` when it must not be sent now."""
        if self.gate is None:
            return
        from cairn.model import sha256_hex
        from cairn.policy import Action

        cost = price.cost(Usage(input_tokens=input_tokens, output_tokens=output_tokens)) if price else None
        digest = sha256_hex("\x00".join(texts).encode("utf-8", "surrogatepass"))
        self.gate.check(
            Action(
                "provider",
                provider,
                model=model,
                tokens=input_tokens + output_tokens,
                cost=cost,
                details={"operation": operation, "input_sha256": digest, "run_id": self.run_id},
            )
        )

    def record(
        self,
        *,
        operation: str,
        provider: str,
        model: str,
        outcome: str,
        sent: bool,
        attempt: int,
        latency_s: float,
        usage: Usage | None,
        cost: float | None,
        shape: Mapping[str, Any],
        error: _TaxonomyError | None = None,
        metadata: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        finish_reason: str | None = None,
    ) -> None:
        """Publish the ``provider:call`` event and append the spend record of one attempt."""
        if cost is not None:
            self.session_spend += cost
        ts = self.now()
        record = SpendRecord(
            ts=ts,
            provider=provider,
            model=model,
            outcome=outcome,
            calls=1 if sent else 0,
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
            cost=cost,
            run_id=self.run_id,
        )
        if self._held is not None:
            key = (provider, model, outcome)
            before = self._held.get(key)
            if before is not None:
                total = None if before.cost is None or cost is None else before.cost + cost
                record = attrs.evolve(
                    record,
                    calls=before.calls + record.calls,
                    input_tokens=before.input_tokens + record.input_tokens,
                    output_tokens=before.output_tokens + record.output_tokens,
                    cost=total,
                )
            self._held[key] = record
        elif self.ledger is not None:
            self.ledger.add_spend([record])
        payload: dict[str, Any] = {
            "operation": operation,
            "provider": provider,
            "model": model,
            "outcome": outcome,
            "sent": sent,
            "attempt": attempt,
            "latency_ms": round(latency_s * 1000, 3),
            "usage": usage.to_dict() if usage else None,
            "cost": cost,
            "run_id": self.run_id,
            "request_id": request_id,
            "finish_reason": finish_reason,
            **shape,
        }
        if error is not None:
            payload["error"] = error.facts()
        if metadata:
            payload["metadata"] = dict(metadata)
        self.bus.publish(CALL_EVENT, payload, ts=ts)


def _money(amount: float) -> str:
    # Six decimals: one call to a small model costs around a millionth of a dollar.
    return f"{amount:.6f}" if amount < 100 else f"{amount:.2f}"
