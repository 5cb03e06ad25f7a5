"""The policy gate: every provider call, execution and ledger push asks it first, and nothing acts without it.

``Gate.check(action)`` builds the context (the time; the directive the gate
runs under, its status and what its runs spent so far), asks
``cairn.policy.evaluate``, and then:

- ``allow``: returns the decision;
- ``deny``: raises ``PolicyDeniedError``;
- ``needs-approval``: if a person approved this very action (same hash) and
  the approval has not expired, uses it up and allows; if a person denied
  it, denies; otherwise parks it as a pending approval
  (``cairn.approvals``) and raises ``ApprovalRequiredError`` naming it.

Every decision is published on the bus (``policy:decision``) and, when the
gate belongs to a run, appended to the run's events: metadata only (the
action's kind, name, model, scopes, estimates and digests, the rule, the
reason and the policy version), never a message body or a secret. So
``cairn policy explain RUN`` shows why each step ran or was stopped.

The kernel calls the gate in its one provider path (``cairn.providers.LLM``
and ``Embedder``, through their meter), its one execution path
(``cairn.execution``) and ``cairn ledger push``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cairn.errors import ApprovalRequiredError, NotFoundError, PolicyDeniedError, ValidationError
from cairn.events import EventBus
from cairn.events import bus as default_bus
from cairn.model import now
from cairn.policy import Action, Context, Decision, Policy, evaluate
from cairn.storage import GovernanceStore, RunStore

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.ledger import OpenRun

__all__ = ["DECISION_EVENT", "Gate"]

#: The bus event (and run event type) of every decision.
DECISION_EVENT = "policy:decision"


class Gate:
    """Evaluates actions against a policy, parks the ones that need a person, and records every decision."""

    def __init__(
        self,
        policy: Policy,
        store: Any = None,
        *,
        directive_id: str | None = None,
        run: OpenRun | None = None,
        bus: EventBus | None = None,
        clock: Callable[[], str] = now,
        user: str | None = None,
    ) -> None:
        self.policy = policy
        self.store = store
        self.directive_id = directive_id
        self.run = run
        self.bus = bus or default_bus
        self.clock = clock
        self.user = user

    @classmethod
    def from_config(cls, config: Config, store: Any = None, **options: Any) -> Gate:
        from cairn.policy import load_policy

        return cls(load_policy(config), store, **options)

    @property
    def trivial(self) -> bool:
        """True when it would allow everything: no rules, ``default = "allow"``, no directive."""
        return not self.policy.rules and self.policy.default == "allow" and self.directive_id is None

    def context(self) -> Context:
        """The time, and the directive this gate runs under with what its runs used so far."""
        moment = self.clock()
        if self.directive_id is None or not isinstance(self.store, GovernanceStore):
            return Context(time=moment)
        from cairn.directives import Directives

        try:
            state = Directives(self.store).get(self.directive_id)
        except (NotFoundError, ValidationError):  # an unknown directive is the policy's to deny, with its reason
            return Context(time=moment)
        tokens, cost = 0, 0.0
        if isinstance(self.store, RunStore):
            for run_id in state.runs:
                for record in self.store.spend(run_id=run_id):
                    tokens += record.input_tokens + record.output_tokens
                    cost += record.cost or 0.0
        return Context(
            time=moment,
            directive=state.directive,
            directive_status=state.status,
            spent_tokens=tokens,
            spent_cost=cost,
            started_at=state.started_at(),
        )

    def check(self, action: Action) -> Decision:
        """The decision on ``action``, recorded; raises when the action must not go ahead now."""
        if self.directive_id is not None and action.directive is None:
            import attrs

            action = attrs.evolve(action, directive=self.directive_id)
        decision = evaluate(self.policy, action, self.context())
        if decision.outcome == "needs-approval":
            decision = self._settle(action, decision)
        self._record(action, decision)
        if decision.outcome == "deny":
            raise PolicyDeniedError(
                f"policy denied {action.kind} {action.name!r}: {decision.reason} (rule {decision.rule}, "
                f"policy version {decision.policy_version})",
                decision,
                hint="nothing was done; change the action, the directive or [policy] in cairn.toml",
            )
        if decision.outcome == "needs-approval":
            assert decision.approval is not None
            raise ApprovalRequiredError(
                f"waiting for approval {decision.approval}: {action.kind} {action.name!r} needs a person's approval "
                f"({decision.reason}; rule {decision.rule})",
                decision,
                decision.approval,
                hint=f"approve it with `cairn approve {decision.approval}` (or `cairn deny`), then run it again",
            )
        return decision

    def _settle(self, action: Action, decision: Decision) -> Decision:
        import attrs

        from cairn.approvals import Approvals
        from cairn.ledger import parse_age

        approvals = Approvals(self.store, user=self.user or "unknown", bus=self.bus, clock=self.clock)
        settled = approvals.settled(action)
        if settled is not None and settled.status == "used":
            reason = f"approved by {settled.decided_by}" + (
                f": {settled.decision_reason}" if settled.decision_reason else ""
            )
            return attrs.evolve(decision, outcome="allow", reason=reason, approval=settled.id)
        if settled is not None and settled.status == "denied":
            reason = f"denied by {settled.decided_by}" + (
                f": {settled.decision_reason}" if settled.decision_reason else ""
            )
            return attrs.evolve(decision, outcome="deny", reason=reason, approval=settled.id)
        parked = approvals.park(
            action, decision, parse_age(self.policy.approval_ttl), run_id=self.run.run_id if self.run else None
        )
        return attrs.evolve(decision, approval=parked.id)

    def _record(self, action: Action, decision: Decision) -> None:
        fields = {"action": action.to_dict(), **decision.to_dict()}
        run_id = self.run.run_id if self.run is not None else action.details.get("run_id")
        self.bus.publish(DECISION_EVENT, {**fields, "run_id": run_id})
        if self.run is not None:
            self.run.event(DECISION_EVENT, **fields)
