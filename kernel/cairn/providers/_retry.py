"""The retry loop, the only one: ``RetryPolicy`` (full-jitter backoff, Retry-After, deadline), ``retry_call``, ``parse_retry_after``."""

from __future__ import annotations

import datetime as _dt
import math
import random
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

import attrs

from cairn.config import ProvidersSettings
from cairn.errors import ProviderError

__all__ = ["RetryPolicy", "parse_retry_after", "retry_call"]

T = TypeVar("T")


@attrs.frozen
class RetryPolicy:
    """When to try again: attempts, full-jitter exponential backoff, Retry-After, and a deadline."""

    max_attempts: int = 3
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 20.0
    max_retry_after_s: float = 60.0
    deadline_s: float | None = None

    @classmethod
    def from_settings(cls, settings: ProvidersSettings) -> RetryPolicy:
        return cls(
            settings.max_attempts,
            settings.backoff_initial_s,
            settings.backoff_max_s,
            settings.max_retry_after_s,
            settings.call_deadline_s,
        )

    def delay(self, attempt: int, error: ProviderError, elapsed_s: float, rng: Callable[[], float]) -> float | None:
        """Seconds to wait before attempt ``attempt + 1`` after ``error``, or None to give up.

        Full jitter: uniform in [0, min(cap, initial * 2**(attempt-1))]. A
        Retry-After is a floor: never retry sooner than the provider asked.
        """
        if not getattr(error, "retryable", False) or attempt >= self.max_attempts:
            return None
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * (2.0 ** (attempt - 1)))
        wait = rng() * ceiling
        after: float | None = getattr(error, "retry_after_s", None)
        if after is not None:
            if after > self.max_retry_after_s:
                return None
            wait = max(wait, after)
        if self.deadline_s is not None and elapsed_s + wait >= self.deadline_s:
            return None
        return wait


def retry_call(
    attempt: Callable[[int], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: Callable[[], float] = random.random,
) -> T:
    """Call ``attempt(n)`` for n = 1, 2, ... until it returns, retrying retryable ``ProviderError``s per ``policy``.

    The last error is raised with ``attempts`` set; when a Retry-After beyond
    ``max_retry_after_s`` or the deadline stopped the loop, its hint says so.
    """
    start = clock()
    number = 1
    while True:
        try:
            return attempt(number)
        except ProviderError as error:
            wait = policy.delay(number, error, clock() - start, rng)
            if wait is None:
                _explain_give_up(error, number, policy, clock() - start)
                raise
            sleep(wait)
            number += 1


def _explain_give_up(error: ProviderError, attempts: int, policy: RetryPolicy, elapsed: float) -> None:
    # Taxonomy errors declare attempts; a plugin's bare ProviderError gets it too, for the record.
    error.attempts = attempts  # type: ignore[attr-defined]
    if not getattr(error, "retryable", False):
        return
    after = getattr(error, "retry_after_s", None)
    if after is not None and after > policy.max_retry_after_s:
        why = (
            f"the provider asked to wait {after:g} s, over [providers] max_retry_after_s = {policy.max_retry_after_s:g}"
        )
    elif attempts >= policy.max_attempts or policy.deadline_s is None:
        why = f"gave up after {attempts} attempt{'s' if attempts != 1 else ''} ([providers] max_attempts)"
    else:
        why = f"gave up after {elapsed:.1f} s ([providers] call_deadline_s = {policy.deadline_s:g})"
    error.hint = f"{error.hint}; {why}" if error.hint else why


def parse_retry_after(headers: Mapping[str, str], *, now: Callable[[], _dt.datetime] | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date); None if absent or unreadable."""
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms:
        try:
            value = float(raw_ms) / 1000
            if math.isfinite(value) and value >= 0:
                return value
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if not raw:
        return None
    try:
        value = float(raw)
        return value if math.isfinite(value) and value >= 0 else None
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    current = now() if now else _dt.datetime.now(_dt.timezone.utc)
    return max(0.0, (when - current).total_seconds())
