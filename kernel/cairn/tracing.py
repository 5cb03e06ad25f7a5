"""Session tracing: record what happens on the event bus, then keep it in the ledger.

A ``Recording`` subscribes to every event published on the bus while it
runs; several can run at once. Stopping it gives a ``SessionTrace`` with the
events and a one-line summary made from a fixed template, so the same events
always give the same summary. ``save_trace`` records the trace in the ledger
as a run of type ``trace`` (its events become the run's events) and can post
the summary as a chat message (source ``trace``).

From the command line a recording spans separate ``cairn`` invocations:
``cairn trace start`` keeps it under ``<data dir>/traces/active/``; every
later command appends the events it publishes there (under a file lock, so
concurrent commands interleave safely); ``cairn trace stop`` saves it. What
is appended there passes through a ``cairn.redact.Redactor`` first, as what
the ledger stores does.
"""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from cairn.errors import NotFoundError, ValidationError
from cairn.events import ALL, Event, EventBus
from cairn.events import bus as default_bus
from cairn.model import now, parse_time
from cairn.redact import Redactor

__all__ = [
    "ActiveRecordings",
    "Recording",
    "SessionTrace",
    "save_trace",
    "summarize",
]

_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def validate_trace_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise ValidationError(
            f"{name!r:.60} is not a valid trace name",
            hint="letters, digits, '.', '_' and '-' (not first), at most 64 characters",
        )
    return name


@attrs.frozen
class SessionTrace:
    name: str
    classification: str
    user: str | None
    code_ref: str | None
    started_at: str
    ended_at: str
    events: tuple[Mapping[str, Any], ...]
    summary: str

    def to_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["events"] = [dict(e) for e in self.events]
        return data


def _duration(events: list[Mapping[str, Any]], started_at: str | None, ended_at: str | None) -> str:
    if started_at is not None and ended_at is not None:
        seconds = (parse_time(ended_at) - parse_time(started_at)).total_seconds()
    elif len(events) < 2:
        return "0s"
    else:
        seconds = (parse_time(events[-1]["ts"]) - parse_time(events[0]["ts"])).total_seconds()
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s".replace(".0s", "s")  # 4.9s, never "0s" for a trace that took time
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def summarize(
    name: str,
    classification: str,
    events: Iterable[Mapping[str, Any]],
    started_at: str | None = None,
    ended_at: str | None = None,
) -> str:
    """``"name (classification): 12 events over 3m — 7 context:commit, 4 ledger:run, 1 chat:message"``.

    A pure function of its inputs: names sorted by count, then alphabetically.
    The time is the trace's own span when ``started_at`` and ``ended_at`` are
    given, else the span of its events.
    """
    events = list(events)
    counts = collections.Counter(e["event"] for e in events)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    detail = ", ".join(f"{n} {kind}" for kind, n in ordered) or "nothing happened"
    noun = "event" if len(events) == 1 else "events"
    return f"{name} ({classification}): {len(events)} {noun} over {_duration(events, started_at, ended_at)} — {detail}"


def _event_record(event: Event) -> dict[str, Any]:
    return {"event": event.name, "ts": event.ts, "payload": dict(event.payload)}


class Recording:
    """A recording in this process: collects every bus event until stopped."""

    def __init__(
        self,
        name: str,
        *,
        classification: str = "general",
        user: str | None = None,
        code_ref: str | None = None,
        bus: EventBus | None = None,
    ) -> None:
        self.name = validate_trace_name(name)
        self.classification = classification
        self.user = user
        self.code_ref = code_ref
        self.started_at = now()
        self.events: list[dict[str, Any]] = []
        self._unsubscribe = (bus or default_bus).subscribe(ALL, lambda e: self.events.append(_event_record(e)))

    def stop(self) -> SessionTrace:
        self._unsubscribe()
        ended_at = now()
        return SessionTrace(
            self.name,
            self.classification,
            self.user,
            self.code_ref,
            self.started_at,
            ended_at,
            tuple(self.events),
            summarize(self.name, self.classification, self.events, self.started_at, ended_at),
        )


def save_trace(trace: SessionTrace, ledger: Any, *, chat: Any = None) -> Any:
    """Record ``trace`` in the ledger as a ``trace`` run; with ``chat``, post its summary there too."""
    events = [{"type": e["event"], "ts": e["ts"], "payload": e["payload"]} for e in trace.events]
    run = ledger.record(
        "trace",
        subtype=trace.classification[:64],
        summary=trace.summary,
        events=events,
        started_at=trace.started_at,
        ended_at=trace.ended_at,
        user=trace.user,
        code_ref=trace.code_ref,
        metadata={"name": trace.name, "classification": trace.classification},
    )
    if chat is not None:
        chat.send(trace.summary, run_id=run.run_id, source="trace")
    return run


class ActiveRecordings:
    """Recordings that outlive a process: one JSON header and one JSONL event file each, in a directory."""

    def __init__(self, data_dir: Path, *, redactor: Redactor | None = None) -> None:
        self.directory = Path(data_dir) / "traces" / "active"
        self._redactor = redactor

    @property
    def redactor(self) -> Redactor:
        if self._redactor is None:
            self._redactor = Redactor.from_environment()
        return self._redactor

    def _paths(self, name: str) -> tuple[Path, Path, Path]:
        validate_trace_name(name)
        base = self.directory / name
        return base.with_suffix(".json"), base.with_suffix(".jsonl"), base.with_suffix(".lock")

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.json"))

    def start(
        self, name: str, *, classification: str = "general", user: str | None = None, code_ref: str | None = None
    ) -> dict[str, Any]:
        header_path, events_path, _ = self._paths(name)
        self.directory.mkdir(parents=True, exist_ok=True)
        header = {
            "name": name,
            "classification": classification,
            "user": user,
            "code_ref": code_ref,
            "started_at": now(),
        }
        try:
            with header_path.open("x", encoding="utf-8") as handle:  # "x": two starts never share a name
                json.dump(header, handle)
        except FileExistsError:
            raise ValidationError(
                f"a recording called {name!r} is already running",
                hint=f"stop it with `cairn trace stop {name}` or pick another name",
            ) from None
        events_path.touch()
        return header

    def header(self, name: str) -> dict[str, Any]:
        header_path, _, _ = self._paths(name)
        try:
            header: dict[str, Any] = json.loads(header_path.read_text(encoding="utf-8"))
            return header
        except FileNotFoundError:
            raise NotFoundError("running recording", name, hint="`cairn trace status` lists them") from None

    def events(self, name: str) -> list[dict[str, Any]]:
        _, events_path, _ = self._paths(name)
        out = []
        if events_path.exists():
            for line in events_path.read_text(encoding="utf-8").splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue  # a line cut by a crash: the rest is still good
        return out

    def append(self, event: Event) -> None:
        """Add one bus event to every running recording (called by each command's bus subscriber)."""
        from filelock import FileLock

        record = self.redactor.value(_event_record(event))
        line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
        for name in self.names():
            _, events_path, lock_path = self._paths(name)
            with FileLock(str(lock_path), timeout=30):
                with events_path.open("a", encoding="utf-8") as handle:
                    handle.write(line)

    def stop(self, name: str) -> SessionTrace:
        header_path, events_path, lock_path = self._paths(name)
        from filelock import FileLock

        header = self.header(name)
        with FileLock(str(lock_path), timeout=30):
            events = self.events(name)
            ended_at = now()
            trace = SessionTrace(
                header["name"],
                header["classification"],
                header.get("user"),
                header.get("code_ref"),
                header["started_at"],
                ended_at,
                tuple(events),
                summarize(header["name"], header["classification"], events, header["started_at"], ended_at),
            )
            header_path.unlink()
            events_path.unlink(missing_ok=True)
        lock_path.unlink(missing_ok=True)
        return trace

    def attach(self, bus: EventBus) -> Callable[[], None]:
        """Subscribe to ``bus`` so this process's events reach the running recordings; returns the unsubscriber."""
        if not self.names():
            return lambda: None
        return bus.subscribe(ALL, self.append)
