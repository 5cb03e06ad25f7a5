"""The sync facet: share a store between machines (push, pull, status)."""

from __future__ import annotations

import abc
from typing import Any

import attrs

from cairn.storage._facet import Facet

__all__ = ["SyncReport", "SyncStatus", "Syncable"]


@attrs.frozen
class SyncReport:
    """What a push or pull did."""

    remote: str | None
    pushed: int = 0  # refs published
    fetched: int = 0  # refs brought in
    merged: int = 0  # diverged refs merged
    message: str = ""


@attrs.frozen
class SyncStatus:
    remote: str | None
    ahead: int
    behind: int
    details: dict[str, Any] = attrs.field(factory=dict)


class Syncable(Facet, abc.ABC):
    """Publish and bring in history between machines.

    With no remote configured, push and pull succeed as no-ops and say so
    in ``SyncReport.message``.
    """

    facet = "sync"
    holds = "sync between machines (push and pull)"
    lacks = "cannot sync between machines"

    @abc.abstractmethod
    def push(self, remote: str | None = None, *, progress: Any = None) -> SyncReport:
        """Publish local history; merges first when the remote moved on."""

    @abc.abstractmethod
    def pull(self, remote: str | None = None, *, progress: Any = None) -> SyncReport:
        """Bring in the remote's history, merging diverged histories without losing anything."""

    @abc.abstractmethod
    def sync_status(self, remote: str | None = None) -> SyncStatus:
        """How far local and remote history have diverged."""
