"""The governance facet: directives with their history, and approvals, each moved only by compare-and-swap.

A directive's content is stored once and never changes (its id is made
from its hash); its status moves by ``transition_directive``, a
compare-and-swap on the status that appends the transition to the
directive's history in the same transaction, so two processes can never
both make the same move. Approvals are stored whole and replaced by
``update_approval``, a compare-and-swap on their status.
"""

from __future__ import annotations

import abc

from cairn.model.governance import Approval, Directive, DirectiveEvent
from cairn.storage._facet import Facet

__all__ = ["GovernanceStore"]


class GovernanceStore(Facet, abc.ABC):
    """Directives (content, status, history) and approvals.

    Lists are newest first (ties: id descending). Every write is durable
    when it returns; every compare-and-swap that loses raises
    ``ConflictError`` and changes nothing.
    """

    facet = "governance"
    holds = "directives and approvals"

    @abc.abstractmethod
    def add_directive(self, directive: Directive, event: DirectiveEvent) -> None:
        """Store a new directive as ``draft`` with its first event (seq 0); ``ConflictError`` if its id is stored."""

    @abc.abstractmethod
    def get_directive(self, directive_id: str) -> tuple[Directive, str] | None:
        """The directive and its current status, or None."""

    @abc.abstractmethod
    def list_directives(self, *, status: str | None = None, limit: int | None = None) -> list[tuple[Directive, str]]:
        """Directives and their statuses, newest first (by created_at, then id); those in ``status`` when given."""

    @abc.abstractmethod
    def transition_directive(self, directive_id: str, expected: str, new: str, event: DirectiveEvent) -> DirectiveEvent:
        """Move the status from ``expected`` to ``new`` and append ``event`` (its seq set by the store), in one
        transaction. ``NotFoundError`` when there is no such directive, ``ConflictError`` (nothing changed)
        when its status is not ``expected``. Returns the event as stored."""

    @abc.abstractmethod
    def add_directive_event(self, directive_id: str, event: DirectiveEvent) -> DirectiveEvent:
        """Append an event that moves no status (a linked run); its seq set by the store. ``NotFoundError``
        when there is no such directive."""

    @abc.abstractmethod
    def directive_events(self, directive_id: str) -> list[DirectiveEvent]:
        """The directive's history, oldest first (by seq)."""

    @abc.abstractmethod
    def add_approval(self, approval: Approval) -> None:
        """Store a new approval; ``ConflictError`` if its id is stored."""

    @abc.abstractmethod
    def get_approval(self, approval_id: str) -> Approval | None:
        """The approval, or None."""

    @abc.abstractmethod
    def list_approvals(
        self, *, status: str | None = None, action_hash: str | None = None, limit: int | None = None
    ) -> list[Approval]:
        """Approvals newest first (by created_at, then id), filtered by ``status`` and ``action_hash``."""

    @abc.abstractmethod
    def update_approval(self, approval: Approval, *, expected: str) -> None:
        """Replace the approval stored under ``approval.id`` when its status is ``expected``; else
        ``ConflictError`` (``NotFoundError`` when there is none) and nothing changes."""
