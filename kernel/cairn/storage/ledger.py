"""The ledger facet: runs, their ordered events, and spend records."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence

from cairn.model.ledger import Run, RunEvent, SpendRecord
from cairn.storage._facet import Facet

__all__ = ["RunStore"]


class RunStore(Facet, abc.ABC):
    """Runs (created, appended to while open, closed by compare-and-swap on their status), events, spend."""

    facet = "ledger"
    holds = "the run ledger (runs, events and spend)"

    @abc.abstractmethod
    def put_run(self, run: Run, events: Sequence[RunEvent] = (), *, expected_status: str | None = None) -> None:
        """Write a run and, in the same transaction, append ``events`` to it.

        ``expected_status=None`` creates the run: ``ConflictError`` if its id
        exists. Otherwise the stored run must have that status (``"open"``,
        to close it): ``ConflictError`` carrying the actual status if not.
        An event whose (run, seq) is already stored raises ``ConflictError``.
        """

    @abc.abstractmethod
    def put_runs(self, runs: Sequence[tuple[Run, Sequence[RunEvent]]]) -> None:
        """Create many runs with their events in one write, all or nothing.

        Each run is created as by ``put_run(run, events)``: an existing id
        raises ``ConflictError`` and then none of the batch is written.
        """

    @abc.abstractmethod
    def append_events(self, run_id: str, events: Sequence[RunEvent]) -> None:
        """Append events to an open run: ``NotFoundError`` if there is no such run,
        ``ConflictError`` if it is closed or a (run, seq) is already stored."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> Run | None:
        """The run, or None."""

    @abc.abstractmethod
    def list_runs(
        self,
        *,
        type: str | None = None,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        """Runs with ``since <= started_at <= until``, newest first (ties: run id descending)."""

    @abc.abstractmethod
    def run_events(self, run_id: str, *, after_seq: int | None = None) -> list[RunEvent]:
        """A run's events in ``seq`` order (those after ``after_seq`` when given); one round trip."""

    @abc.abstractmethod
    def delete_runs(self, run_ids: Iterable[str]) -> int:
        """Delete runs and their events; returns how many runs were deleted."""

    @abc.abstractmethod
    def add_spend(self, records: Sequence[SpendRecord]) -> None:
        """Append spend records (provider call metadata and cost)."""

    @abc.abstractmethod
    def spend(
        self, *, since: str | None = None, until: str | None = None, run_id: str | None = None
    ) -> list[SpendRecord]:
        """Spend records with ``since <= ts <= until`` (and of ``run_id``), oldest first."""
