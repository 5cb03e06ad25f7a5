"""The governance facet's conformance suite: directives, their compare-and-swap history, approvals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cairn.errors import ConflictError, NotFoundError
from cairn.model import sha256_hex
from cairn.model.governance import Approval, Directive, DirectiveEvent
from cairn.testing.storage._support import FacetSuite, StoreOpener, at, run_workers

__all__ = ["GovernanceConformance", "make_approval", "make_directive"]


def make_directive(n: int, intent: str = "summarize the logs", **fields: Any) -> Directive:
    """A directive created at ``at(n)``."""
    return Directive(intent=f"{intent} #{n}", created_by="ann", created_at=at(n), **fields)


def event(directive: Directive, kind: str = "transition", **fields: Any) -> DirectiveEvent:
    return DirectiveEvent(directive.id, -1, at(1000), kind, "ann", **fields)


def make_approval(n: int, *, status: str = "pending", action: str = "provider") -> Approval:
    """A pending approval made at ``at(n)`` that expires an hour later."""
    return Approval(
        id=f"apr_{sha256_hex(str(n).encode())[:16]}",
        action_hash=sha256_hex(f"{action} {n}".encode()),
        action={"kind": action, "n": n},
        rule="ask-first",
        reason="costly calls need a person",
        policy_version=3,
        created_at=at(n),
        expires_at=at(n + 3600),
        status=status,
    )


def _start_worker(
    opener: StoreOpener, directory: str, directive_id: str, worker: int, barrier: Any, results: Any
) -> None:
    won = False
    try:
        store: Any = opener(Path(directory))
        try:
            barrier.wait(timeout=120)
            start = DirectiveEvent(
                directive_id, -1, at(2000 + worker), "transition", f"worker {worker}", "approved", "running"
            )
            try:
                store.transition_directive(directive_id, "approved", "running", start)
                won = True
            except ConflictError:
                pass
        finally:
            store.close()
        results.put((worker, won, None))
    except BaseException as exc:  # report, never hang the parent
        barrier.abort()
        results.put((worker, won, f"{type(exc).__name__}: {exc}"))


class GovernanceConformance(FacetSuite):
    """The ``governance`` facet's contract as tests: directives stored once, statuses moved only by
    compare-and-swap with their history in the same write, approvals replaced by compare-and-swap."""

    facet = "governance"

    def _created(self, store: Any, n: int = 1, **fields: Any) -> Directive:
        directive = make_directive(n, **fields)
        store.add_directive(
            directive, DirectiveEvent(directive.id, 0, directive.created_at, "created", "ann", None, "draft")
        )
        return directive

    def test_directive_round_trips_as_draft(self, store: Any) -> None:
        directive = self._created(
            store, scope={"tools": ["grep"], "providers": ["openai"]}, budget={"tokens": 1000, "cost": 0.5}
        )
        assert store.get_directive(directive.id) == (directive, "draft")
        assert store.get_directive("dir_0000000000000000") is None
        (created,) = store.directive_events(directive.id)
        assert (created.seq, created.type, created.to_status) == (0, "created", "draft")

    def test_a_stored_directive_cannot_be_added_again(self, store: Any) -> None:
        directive = self._created(store)
        with pytest.raises(ConflictError):
            self._created(store)
        assert store.list_directives() == [(directive, "draft")]

    def test_transitions_are_compare_and_swap_with_history(self, store: Any) -> None:
        directive = self._created(store)
        moved = store.transition_directive(
            directive.id, "draft", "approved", event(directive, from_status="draft", to_status="approved")
        )
        assert moved.seq == 1
        with pytest.raises(ConflictError):
            store.transition_directive(
                directive.id, "draft", "rejected", event(directive, from_status="draft", to_status="rejected")
            )
        assert store.get_directive(directive.id) == (directive, "approved")
        assert [e.to_status for e in store.directive_events(directive.id)] == ["draft", "approved"]
        with pytest.raises(NotFoundError):
            store.transition_directive(
                "dir_0000000000000000", "draft", "approved", event(directive, from_status="draft", to_status="approved")
            )

    def test_run_links_append_to_history(self, store: Any) -> None:
        directive = self._created(store)
        linked = store.add_directive_event(
            directive.id, event(directive, "run", run_id="20260101T000000.000000Z_exec_ab12")
        )
        assert linked.seq == 1
        assert store.directive_events(directive.id)[-1].run_id == "20260101T000000.000000Z_exec_ab12"
        assert store.get_directive(directive.id) == (directive, "draft")
        with pytest.raises(NotFoundError):
            store.add_directive_event("dir_0000000000000000", event(directive, "run", run_id="x"))

    def test_list_newest_first_and_by_status(self, store: Any) -> None:
        first, second, third = (self._created(store, n) for n in (1, 2, 3))
        store.transition_directive(
            second.id, "draft", "approved", event(second, from_status="draft", to_status="approved")
        )
        assert [d.id for d, _ in store.list_directives()] == [third.id, second.id, first.id]
        assert store.list_directives(status="approved") == [(second, "approved")]
        assert [d.id for d, _ in store.list_directives(limit=1)] == [third.id]

    def test_approvals_round_trip_and_update_by_compare_and_swap(self, store: Any) -> None:
        older, newer = make_approval(1), make_approval(2)
        store.add_approval(older)
        store.add_approval(newer)
        with pytest.raises(ConflictError):
            store.add_approval(older)
        assert store.get_approval(older.id) == older
        assert store.list_approvals() == [newer, older]
        approved = Approval.from_record({**older.to_record(), "status": "approved", "decided_by": "bob"})
        store.update_approval(approved, expected="pending")
        with pytest.raises(ConflictError):
            store.update_approval(Approval.from_record({**older.to_record(), "status": "denied"}), expected="pending")
        assert store.get_approval(older.id) == approved
        assert store.list_approvals(status="pending") == [newer]
        assert store.list_approvals(action_hash=older.action_hash) == [approved]
        with pytest.raises(NotFoundError):
            store.update_approval(make_approval(9), expected="pending")

    def test_reopened_store_keeps_everything(self, store_opener: StoreOpener, store_dir: Path) -> None:
        self._needs_persistence()
        with store_opener(store_dir) as store:
            directive = self._created(store)
            store.transition_directive(
                directive.id, "draft", "approved", event(directive, from_status="draft", to_status="approved")
            )
            store.add_approval(make_approval(1))
        with store_opener(store_dir) as store:
            assert store.get_directive(directive.id) == (directive, "approved")
            assert len(store.directive_events(directive.id)) == 2
            assert store.get_approval(make_approval(1).id) == make_approval(1)

    def test_four_processes_racing_to_start_a_directive_start_it_once(
        self, store_opener: StoreOpener, store_dir: Path
    ) -> None:
        self._needs_persistence()
        with store_opener(store_dir) as store:
            directive = self._created(store)
            store.transition_directive(
                directive.id, "draft", "approved", event(directive, from_status="draft", to_status="approved")
            )
        outcomes = run_workers(
            _start_worker,
            lambda i, barrier, results: (store_opener, str(store_dir), directive.id, i, barrier, results),
            4,
        )
        assert sorted(won for _, won, _ in outcomes) == [False, False, False, True]
        with store_opener(store_dir) as store:
            assert store.get_directive(directive.id) == (directive, "running")
            assert [e.to_status for e in store.directive_events(directive.id)] == ["draft", "approved", "running"]
