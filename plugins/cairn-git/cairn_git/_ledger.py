"""The run ledger's layout on its orphan branch, its encodings, and how diverged ledgers merge.

The branch's tree, readable with plain git::

    ledger/runs/<s>/<run_id>/run.json        the run as canonical JSON (s: 2 hex digits of SHA-256(run_id))
    ledger/runs/<s>/<run_id>/events.jsonl    one event per line, each line starting with its timestamp
    ledger/spend/<YYYY-MM-DD>/<id>.json      one spend record per file

Each run also has an annotated tag whose message is exactly ``run.json``
(so ``git for-each-ref`` lists every run in one call) and a ref pointing at
it. One file per run, per event stream and per spend record means two
machines' ledgers merge without conflicts except when both changed the same
run; ``resolve`` settles those without losing an event.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from cairn.errors import ConflictError, IntegrityError, ValidationError
from cairn.model.canonical import canonical_json
from cairn.model.ledger import RUN_STATUSES, Run, RunEvent, SpendRecord, validate_run_id

__all__ = [
    "EVENTS",
    "RUN",
    "RUNS_DIR",
    "SPEND_DIR",
    "checked_events",
    "event_lines",
    "parse_events",
    "refuse_taken",
    "resolve",
    "run_bytes",
    "run_dir",
    "run_from_bytes",
    "spend_bytes",
    "spend_path",
]

RUNS_DIR = "ledger/runs"
SPEND_DIR = "ledger/spend"
RUN = "run.json"
EVENTS = "events.jsonl"

_RUN_FIELD_ORDER = tuple(a.name for a in attrs.fields(Run))
_RUN_FIELDS = frozenset(_RUN_FIELD_ORDER)
_STATUSES = frozenset(RUN_STATUSES)
# attrs' own way of filling a slotted instance (what unpickling uses); attrs adds it at runtime, unseen by mypy.
_restore = Run.__setstate__  # type: ignore[attr-defined]


def shard(run_id: str) -> str:
    return hashlib.sha256(run_id.encode()).hexdigest()[:2]


def run_dir(run_id: str) -> str:
    """``ledger/runs/<shard>/<run_id>``; the id must already be validated."""
    return f"{RUNS_DIR}/{shard(run_id)}/{run_id}"


def run_bytes(run: Run) -> bytes:
    """``run.json`` and the tag message: canonical JSON and a newline.

    The record is ``Run.to_record()``'s, built shallowly (every field is
    already a JSON value; ``attrs.asdict`` would copy nested values only to
    serialize them).
    """
    return canonical_json({name: getattr(run, name) for name in _RUN_FIELD_ORDER}, check_keys=False) + b"\n"


def run_from_record(record: dict[str, Any]) -> Run:
    """A Run from a record this store (or a peer's) wrote.

    The id, type and status are checked (they reach refs, paths and
    filters); the rest was validated when the run was written, and running
    every validator again is most of the cost of listing thousands of runs.
    """
    if record.keys() != _RUN_FIELDS or record["status"] not in _STATUSES:
        return Run.from_record(record)  # an unexpected shape: the full checks say what is wrong
    validate_run_id(record["run_id"])
    run = object.__new__(Run)
    _restore(run, record)
    return run


def run_from_bytes(data: bytes) -> Run:
    return run_from_record(json.loads(data))


def event_line(event: RunEvent) -> bytes:
    # Key order is fixed by hand so that every line starts with its timestamp.
    fields = json.dumps(event.fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (
        f'{{"ts":{json.dumps(event.ts)},"run_id":{json.dumps(event.run_id)},"seq":{event.seq},'
        f'"type":{json.dumps(event.type, ensure_ascii=False)},"fields":{fields}}}\n'
    ).encode()


def event_lines(events: Iterable[RunEvent]) -> bytes:
    return b"".join(event_line(e) for e in sorted(events, key=lambda e: e.seq))


def parse_events(data: bytes) -> list[RunEvent]:
    out = []
    for line in data.splitlines():
        if line.strip():
            out.append(RunEvent.from_record(json.loads(line)))
    return out


def checked_events(run_id: str, events: Iterable[RunEvent]) -> list[RunEvent]:
    """The events as a list, each of run ``run_id`` and with a seq of its own (``IntegrityError`` / ``ConflictError``)."""
    out = list(events)
    seen: set[int] = set()
    for event in out:
        if not isinstance(event, RunEvent):
            raise ValidationError(f"expected a cairn.model.ledger.RunEvent, got {type(event).__name__}", what="events")
        if event.run_id != run_id:
            raise IntegrityError(
                f"event {event.seq} belongs to run {event.run_id}, not {run_id}",
                hint="give each run only its own events; nothing was written",
            )
        if event.seq in seen:
            raise ConflictError(
                f"run {run_id} event {event.seq}",
                None,
                "taken",
                hint="each event of a run needs its own seq; nothing was written",
            )
        seen.add(event.seq)
    return out


def refuse_taken(run_id: str, events: Sequence[RunEvent], existing: bytes) -> None:
    """``ConflictError`` when an event's seq is already in the stored ``events.jsonl``."""
    if not events or not existing:
        return
    taken = {json.loads(line)["seq"] for line in existing.splitlines() if line.strip()}
    for event in events:
        if event.seq in taken:
            raise ConflictError(f"run {run_id} event {event.seq}", None, "taken", hint="read the last seq and retry")


# -- spend ---------------------------------------------------------------------------------------

_counter = itertools.count()


def spend_path(record: SpendRecord) -> str:
    """``ledger/spend/<day>/<id>.json``; the id sorts by time and is unique to this write."""
    day = record.day
    if len(day) != 10 or not all(ch.isdigit() or ch == "-" for ch in day):
        raise ValidationError(f"spend time {record.ts!r} does not start with a date", what="spend", field="ts")
    stamp = "".join(ch for ch in record.ts if ch.isdigit())[:20].ljust(20, "0")
    unique = f"{time.time_ns():020d}{os.getpid() % 100000:05d}{next(_counter) % 1000000:06d}"
    return f"{SPEND_DIR}/{day}/{stamp}_{unique}.json"


def spend_bytes(record: SpendRecord) -> bytes:
    return canonical_json(record.to_record(), check_keys=False) + b"\n"


def spend_from_bytes(data: bytes) -> SpendRecord:
    return SpendRecord.from_record(json.loads(data))


# -- merging ---------------------------------------------------------------------------------------


def _closed_rank(data: bytes) -> tuple[int, str, bytes]:
    try:
        record = json.loads(data)
        closed = 0 if record.get("status") == "open" else 1
        return (closed, record.get("ended_at") or "", data)
    except ValueError:
        return (-1, "", data)


def resolve(path: str, base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    """The merged content of a ledger file both sides changed (None: leave it out).

    - ``events.jsonl``: every event of either side, one line per seq, in seq order;
    - ``run.json``: a closed run over an open one, then the later end, then
      the larger bytes (so both machines choose alike);
    - anything else (spend files never collide): ours, or theirs if we deleted it.
    A file deleted on one side and changed on the other is kept: nothing is lost.
    """
    sides = [s for s in (ours, theirs) if s is not None]
    if not sides:
        return None
    if len(sides) == 1:
        return sides[0]
    assert ours is not None and theirs is not None
    name = path.rsplit("/", 1)[-1]
    if name == EVENTS:
        by_seq: dict[int, bytes] = {}
        for data in (theirs, ours):  # ours last: a seq both sides wrote differently keeps ours
            for line in data.splitlines():
                if line.strip():
                    by_seq[json.loads(line)["seq"]] = line + b"\n"
        return b"".join(by_seq[s] for s in sorted(by_seq))
    if name == RUN:
        return max(ours, theirs, key=_closed_rank)
    return ours
