"""Canonical JSON, hashing and timestamps: the rules that make identity backend-independent.

A hash is SHA-256 over the canonical JSON of a value: keys sorted, no
insignificant whitespace, UTF-8 (not ASCII-escaped), no NaN or infinity. Two
backends that store the same history therefore agree hash for hash.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from typing import Any, TypeGuard

from cairn.errors import ValidationError

__all__ = [
    "MAX_NESTING",
    "canonical_json",
    "format_time",
    "is_hash",
    "now",
    "parse_time",
    "sha256_hex",
    "value_hash",
]

_HASH_RE = re.compile(r"\A[0-9a-f]{64}\Z")
# One encoder for every call: json.dumps with options builds a new one each time.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


#: Lists and objects nest at most this deep in anything cairn hashes and stores, so every
#: later reader (json, exports, imports, renderers), recursive or not, can take it.
MAX_NESTING = 100
_CONTAINERS = (dict, list, tuple)


def _check_keys(value: Any) -> None:
    """Refuse non-string object keys and nesting deeper than ``MAX_NESTING``; iterative, so any depth is safe."""
    if not isinstance(value, _CONTAINERS):
        return
    # Only lists and objects go on the stack: scalars need no look, and most of a value is scalars.
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth >= MAX_NESTING:
            raise ValidationError(
                f"lists and objects are nested more than {MAX_NESTING} levels deep",
                hint="flatten the value; cairn stores JSON nested at most that deep",
            )
        if isinstance(node, dict):
            for key, child in node.items():
                # json.dumps turns 1 into "1" silently; two values that hash alike must be alike.
                if not isinstance(key, str):
                    raise ValidationError(
                        f"object key {key!r} is not a string",
                        hint="JSON objects have string keys; convert the key yourself",
                    )
                if isinstance(child, _CONTAINERS):
                    stack.append((child, depth + 1))
        else:
            stack.extend((child, depth + 1) for child in node if isinstance(child, _CONTAINERS))


def canonical_json(value: Any, *, check_keys: bool = True) -> bytes:
    """Encode ``value`` as canonical JSON bytes; refuses NaN, infinity, non-string keys, non-JSON types
    and nesting deeper than ``MAX_NESTING``.

    ``check_keys=False`` skips the walk that refuses non-string keys and deep
    nesting, for values known to be fine (parsed from JSON and checked, or
    built by cairn itself); it is most of the cost on hot paths.
    """
    if check_keys:
        _check_keys(value)
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"not representable as canonical JSON: {exc}",
            hint="use only strings, numbers, booleans, null, lists and objects with string keys",
        ) from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # Lone surrogates cannot be stored as UTF-8; refuse rather than mangle.
        raise ValidationError(
            f"text holds a character that is not valid Unicode ({exc.reason} at {exc.start})",
        ) from None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def value_hash(value: Any, *, check_keys: bool = True) -> str:
    """SHA-256 hex digest of the canonical JSON of ``value``."""
    return sha256_hex(canonical_json(value, check_keys=check_keys))


def is_hash(value: object) -> TypeGuard[str]:
    """True for a full lowercase 64-hex-digit SHA-256 digest."""
    return isinstance(value, str) and bool(_HASH_RE.match(value))


def now() -> str:
    """The current UTC time as an ISO-8601 string with microseconds, e.g. ``2026-01-02T03:04:05.000006Z``."""
    return format_time(_dt.datetime.now(_dt.timezone.utc))


def format_time(moment: _dt.datetime) -> str:
    """Format an aware datetime the one way cairn stores times (UTC, microseconds, ``Z``).

    The fixed width makes stored times sort correctly as strings.
    """
    if moment.tzinfo is None:
        raise ValidationError("time has no timezone", hint="pass an aware datetime, e.g. with tzinfo=UTC")
    moment = moment.astimezone(_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> _dt.datetime:
    """Parse an ISO-8601 time; a time without an offset is taken as UTC."""
    if not isinstance(text, str):
        raise ValidationError(f"expected an ISO-8601 time string, got {type(text).__name__}")
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        moment = _dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationError(
            f"{text!r} is not an ISO-8601 time",
            hint="write it like 2026-01-02T03:04:05Z or 2026-01-02",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment
