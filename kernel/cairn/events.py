"""The in-process event bus.

Publishers name an event with a dotted string from ``EventName`` (or their
own ``plugin:thing`` names) and hand it a JSON-like payload. Subscribers
register for one name or for every event (``"*"``). A subscriber that raises
is logged and skipped: it never breaks the publisher or the other
subscribers. Notification hooks (``cairn_commit_created``, ...) mirror the
events the kernel itself publishes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from cairn.model import now

__all__ = ["ALL", "Event", "EventBus", "EventName", "bus"]

log = logging.getLogger(__name__)

ALL = "*"


class EventName:
    """Names of the events the kernel publishes."""

    COMMIT_CREATED = "context:commit"
    ANNOTATION_ADDED = "context:annotation"
    BRANCH_CHANGED = "context:branch"
    COMPACTION_CREATED = "context:compaction"


@attrs.frozen
class Event:
    name: str
    payload: Mapping[str, Any]
    ts: str = attrs.field(factory=now)


Subscriber = Callable[[Event], None]


class EventBus:
    """Publish/subscribe within one process; thread-safe, failure-isolated."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Subscriber]] = {}
        self._lock = threading.Lock()

    def subscribe(self, name: str, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber(event)`` for every event called ``name`` (``"*"``: every event).

        Returns a function that unsubscribes.
        """
        with self._lock:
            self._subscribers.setdefault(name, []).append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                subs = self._subscribers.get(name, [])
                if subscriber in subs:
                    subs.remove(subscriber)

        return unsubscribe

    def publish(self, name: str, payload: Mapping[str, Any] | None = None, *, ts: str | None = None) -> Event | None:
        """Deliver an event to its subscribers; returns it, or None when nobody listens (nothing is built)."""
        with self._lock:
            targets = [*self._subscribers.get(name, ()), *self._subscribers.get(ALL, ())]
        if not targets:
            return None
        event = Event(name, dict(payload or {}), ts or now())
        for subscriber in targets:
            try:
                subscriber(event)
            except Exception:  # a subscriber's failure is its own
                log.exception("event subscriber %r failed on %s", subscriber, name)
        return event

    def clear(self) -> None:
        with self._lock:
            self._subscribers.clear()


#: The process-wide bus.
bus = EventBus()
