"""Directives: frozen intent, with a status moved by one code path.

A directive says what to do (intent, constraints), what it may touch
(scope: tools, providers, models, paths, executors, remotes) and how much it
may spend (budget: tokens, cost, wall time). Its content is hashed and its
id made from the hash, so once stored it never changes; a change is a new
directive that supersedes it (the old one is cancelled if it was not
finished).

Its status goes draft -> approved -> running -> succeeded / failed /
cancelled (or draft -> rejected). Every move goes through ``Directives.move``,
the single mutator: it checks the move is allowed and makes it with one
compare-and-swap on the status (``GovernanceStore.transition_directive``),
recording the move in the directive's history in the same write. Of many
processes making the same move, exactly one wins; the others get
``ConflictError`` naming the status they lost to.

Runs made under a directive carry ``metadata.directive``, and the directive's
history carries a ``run`` event per run: they link both ways.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from cairn.errors import ConflictError, NotFoundError, ValidationError
from cairn.events import EventBus
from cairn.events import bus as default_bus
from cairn.model import now
from cairn.model.governance import (
    DIRECTIVE_STATUSES,
    DIRECTIVE_TRANSITIONS,
    FINAL_DIRECTIVE_STATUSES,
    Directive,
    DirectiveEvent,
    validate_directive_id,
)
from cairn.storage import Facet, GovernanceStore, require

__all__ = ["DIRECTIVE_EVENT", "DirectiveState", "Directives"]

#: The bus event published for every directive transition.
DIRECTIVE_EVENT = "directive:transition"


@attrs.frozen
class DirectiveState:
    """A directive, its status and its history (oldest first)."""

    directive: Directive
    status: str
    events: tuple[DirectiveEvent, ...]

    @property
    def runs(self) -> list[str]:
        """The runs made under it, in the order they were linked."""
        return [e.run_id for e in self.events if e.type == "run" and e.run_id]

    def started_at(self) -> str | None:
        return next((e.ts for e in self.events if e.to_status == "running"), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.directive.to_record(),
            "status": self.status,
            "runs": self.runs,
            "events": [e.to_record() for e in self.events],
        }


class Directives:
    """Create, read and move directives in a store with the ``governance`` facet."""

    def __init__(
        self,
        store: Facet,
        *,
        user: str | None = None,
        bus: EventBus | None = None,
        clock: Callable[[], str] = now,
    ) -> None:
        self.store = require(store, GovernanceStore, doing="directives")
        self.user = user or _user()
        self.bus = bus or default_bus
        self.clock = clock

    # -- creating and reading ---------------------------------------------------------------

    def new(
        self,
        intent: str,
        *,
        constraints: Sequence[str] = (),
        scope: Mapping[str, Sequence[str]] | None = None,
        budget: Mapping[str, float] | None = None,
        supersedes: str | None = None,
    ) -> Directive:
        """Store a new ``draft`` directive; with ``supersedes``, the old one is cancelled unless it is finished."""
        old = self.get(supersedes) if supersedes is not None else None
        directive = Directive(
            intent=intent,
            created_by=self.user,
            created_at=self.clock(),
            constraints=tuple(constraints),
            scope=dict(scope or {}),
            budget=dict(budget or {}),
            supersedes=supersedes,
        )
        created = DirectiveEvent(directive.id, 0, directive.created_at, "created", self.user, None, "draft")
        self.store.add_directive(directive, created)
        self._published(created)
        if old is not None and old.status not in FINAL_DIRECTIVE_STATUSES:
            self.move(old.directive.id, "cancelled", reason=f"superseded by {directive.id}")
        return directive

    def get(self, directive_id: str) -> DirectiveState:
        validate_directive_id(directive_id)
        found = self.store.get_directive(directive_id)
        if found is None:
            raise NotFoundError("directive", directive_id, hint="`cairn directive list` lists directives")
        return DirectiveState(found[0], found[1], tuple(self.store.directive_events(directive_id)))

    def list(self, *, status: str | None = None, limit: int | None = None) -> list[tuple[Directive, str]]:
        if status is not None and status not in DIRECTIVE_STATUSES:
            raise ValidationError(
                f"{status!r} is not a directive status", hint=f"statuses: {', '.join(DIRECTIVE_STATUSES)}"
            )
        return self.store.list_directives(status=status, limit=limit)

    # -- the single mutator -------------------------------------------------------------------

    def move(self, directive_id: str, to: str, *, reason: str | None = None) -> DirectiveEvent:
        """Move the directive's status to ``to``: the one code path every transition takes.

        ``ValidationError`` when the move is not allowed from the current
        status; ``ConflictError`` when another process moved it first (the
        status it lost to is in the message). Nothing changes in either case.
        """
        if to not in DIRECTIVE_STATUSES:
            raise ValidationError(
                f"{to!r} is not a directive status", hint=f"statuses: {', '.join(DIRECTIVE_STATUSES)}"
            )
        current = self.get(directive_id).status
        if to not in DIRECTIVE_TRANSITIONS[current]:
            allowed = sorted(DIRECTIVE_TRANSITIONS[current])
            raise ValidationError(
                f"directive {directive_id} is {current}; it cannot become {to}",
                hint=(f"from {current} it can become {', '.join(allowed)}" if allowed else f"{current} is final")
                + "; a changed directive is a new one (`cairn directive new --supersedes`)",
            )
        event = DirectiveEvent(directive_id, -1, self.clock(), "transition", self.user, current, to, reason)
        try:
            stored = self.store.transition_directive(directive_id, current, to, event)
        except ConflictError:
            now_status = self.get(directive_id).status
            raise ConflictError(
                f"directive {directive_id}",
                current,
                now_status,
                hint=f"another process moved it to {now_status} first; nothing was changed here",
            ) from None
        self._published(stored)
        return stored

    def approve(self, directive_id: str, *, reason: str | None = None) -> DirectiveEvent:
        return self.move(directive_id, "approved", reason=reason)

    def reject(self, directive_id: str, *, reason: str | None = None) -> DirectiveEvent:
        return self.move(directive_id, "rejected", reason=reason)

    def cancel(self, directive_id: str, *, reason: str | None = None) -> DirectiveEvent:
        return self.move(directive_id, "cancelled", reason=reason)

    def start(self, directive_id: str, *, reason: str | None = None) -> DirectiveEvent:
        """approved -> running: of many processes starting it at once, exactly one does."""
        return self.move(directive_id, "running", reason=reason)

    def finish(self, directive_id: str, status: str = "succeeded", *, reason: str | None = None) -> DirectiveEvent:
        if status not in ("succeeded", "failed"):
            raise ValidationError(f"a directive finishes as succeeded or failed, not {status!r}")
        return self.move(directive_id, status, reason=reason)

    def running(self, directive_id: str) -> DirectiveState:
        """The directive, started now if it was approved (losing that race to another process is fine);
        ``ValidationError`` when it is in any other status than running."""
        state = self.get(directive_id)
        if state.status == "approved":
            try:
                self.start(directive_id, reason="first action under it")
            except ConflictError:
                pass
            state = self.get(directive_id)
        if state.status != "running":
            hint = {
                "draft": f"approve it first: cairn directive approve {directive_id}",
                "rejected": "it was rejected; make a new directive",
            }.get(state.status, "it is finished; make a new directive (`cairn directive new --supersedes`)")
            raise ValidationError(f"directive {directive_id} is {state.status}, not running", hint=hint)
        return state

    def link_run(self, directive_id: str, run_id: str) -> DirectiveEvent:
        """Record in the directive's history that ``run_id`` was made under it."""
        event = DirectiveEvent(directive_id, -1, self.clock(), "run", self.user, run_id=run_id)
        return self.store.add_directive_event(directive_id, event)

    def _published(self, event: DirectiveEvent) -> None:
        self.bus.publish(DIRECTIVE_EVENT, event.to_record(), ts=event.ts)


def _user() -> str:
    """Who acts, as the ledger names them: ``CAIRN_USER``, else the login name."""
    import getpass
    import os

    try:
        return os.environ.get("CAIRN_USER") or getpass.getuser()
    except Exception:  # no user name in this environment (a container with no passwd entry)
        return "unknown"
