"""Approvals: actions the policy gate parked until a person approves or denies them.

A ``needs-approval`` decision parks the action as a pending ``Approval``
bound to the action's hash, and the caller gets ``ApprovalRequiredError``
naming it. ``cairn approve ID`` / ``cairn deny ID`` decide it (a
compare-and-swap from pending, so two people deciding at once cannot both
win); an approval not decided within ``[policy] approval_ttl`` expires and
can no longer be approved. When the same action (the same hash) is tried
again, an approved approval lets it through once: it is marked used by
another compare-and-swap, so one approval never lets two actions through.
"""

from __future__ import annotations

import datetime as _dt
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from cairn.errors import ConflictError, NotFoundError, ValidationError
from cairn.events import EventBus
from cairn.events import bus as default_bus
from cairn.model import format_time, now, parse_time
from cairn.model.governance import Approval, validate_approval_id
from cairn.storage import Facet, GovernanceStore, require

if TYPE_CHECKING:  # pragma: no cover
    from cairn.policy import Action, Decision

__all__ = ["APPROVAL_EVENT", "Approvals"]

#: The bus event published when an approval is parked, decided or used.
APPROVAL_EVENT = "approval:change"


class Approvals:
    """Park, decide, use and list approvals in a store with the ``governance`` facet."""

    def __init__(
        self, store: Facet, *, user: str = "unknown", bus: EventBus | None = None, clock: Callable[[], str] = now
    ) -> None:
        self.store = require(store, GovernanceStore, doing="approvals")
        self.user = user
        self.bus = bus or default_bus
        self.clock = clock

    def park(self, action: Action, decision: Decision, ttl: _dt.timedelta, *, run_id: str | None = None) -> Approval:
        """The pending approval of ``action``: the one already waiting (not expired), or a new one."""
        moment = self.clock()
        for waiting in self.store.list_approvals(status="pending", action_hash=action.hash):
            if not waiting.expired(moment):
                return waiting
        approval = Approval(
            id="apr_" + secrets.token_hex(8),
            action_hash=action.hash,
            action=action.to_dict(),
            rule=decision.rule,
            reason=decision.reason,
            policy_version=decision.policy_version,
            created_at=moment,
            expires_at=format_time(parse_time(moment) + ttl),
            directive_id=action.directive,
            run_id=run_id,
        )
        self.store.add_approval(approval)
        self._published(approval)
        return approval

    def get(self, approval_id: str) -> Approval:
        validate_approval_id(approval_id)
        found = self.store.get_approval(approval_id)
        if found is None:
            raise NotFoundError("approval", approval_id, hint="`cairn approvals list` lists approvals")
        return found

    def list(self, *, status: str | None = None, limit: int | None = None) -> list[Approval]:
        return self.store.list_approvals(status=status, limit=limit)

    def decide(self, approval_id: str, *, approve: bool, reason: str | None = None) -> Approval:
        """Approve or deny a pending approval; an expired or decided one is an error and nothing changes."""
        approval = self.get(approval_id)
        moment = self.clock()
        if approval.status != "pending":
            raise ValidationError(
                f"approval {approval_id} is {approval.status} already", hint="only a pending approval can be decided"
            )
        if approval.expired(moment):
            raise ValidationError(
                f"approval {approval_id} expired at {approval.expires_at}; nothing was changed",
                hint="run the action again to ask for a new approval",
            )
        decided = attrs.evolve(
            approval,
            status="approved" if approve else "denied",
            decided_by=self.user,
            decided_at=moment,
            decision_reason=reason,
        )
        try:
            self.store.update_approval(decided, expected="pending")
        except ConflictError:
            now_status = self.get(approval_id).status
            raise ConflictError(
                f"approval {approval_id}", "pending", now_status, hint=f"someone else {now_status} it first"
            ) from None
        self._published(decided)
        return decided

    def settled(self, action: Action) -> Approval | None:
        """The decision people made on this very action: an approval it may use now (marked used, so it
        lets this one call through), a denial, or None when there is neither."""
        moment = self.clock()
        for approval in self.store.list_approvals(action_hash=action.hash):
            if approval.status == "denied":
                return approval
            if approval.status == "approved" and not approval.expired(moment):
                used = attrs.evolve(approval, status="used")
                try:
                    self.store.update_approval(used, expected="approved")
                except ConflictError:
                    continue  # another caller used it first
                self._published(used)
                return used
        return None

    def _published(self, approval: Approval) -> None:
        self.bus.publish(
            APPROVAL_EVENT,
            {k: v for k, v in approval.to_record().items() if k != "action"} | {"kind": approval.action.get("kind")},
        )
