"""The run ledger: what was done, recorded as runs with ordered event streams, over any store with the ledger facet.

A run is recorded whole (``Ledger.record``) or opened, appended to while it
runs and closed (``Ledger.open``). Ids are made here
(``<UTC time>_<type>_<random>``); an id from outside is validated before it
reaches a store, where it may become a path, a ref name or an argument.

Everything a run carries besides its ids, type, status and times (summary,
subtype, user, metadata, environment, modules, event fields) passes through
the ledger's ``cairn.redact.Redactor`` before it reaches the store: secrets
from the environment, key shapes and secrets in context become ``***``.

Recording a run publishes ``ledger:run`` on the event bus and calls the
``cairn_run_recorded`` hook.
"""

from __future__ import annotations

import builtins
import datetime as _dt
import getpass
import os
import platform
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from cairn.code_ref import CodeRef, current_code_ref
from cairn.errors import ConflictError, NotFoundError, ValidationError
from cairn.events import EventBus
from cairn.events import bus as default_bus
from cairn.model import Run, RunEvent, format_time, new_run_id, now, parse_time, validate_run_id
from cairn.redact import Redactor, configured_env_names
from cairn.storage import Facet, RunStore, require

__all__ = ["Ledger", "OpenRun", "current_code_ref", "open_ledger", "parse_age", "parse_moment", "time_ago"]

RUN_RECORDED = "ledger:run"
#: Stands for the newest run wherever a run id is asked for (``cairn runs show @last``).
LAST = "@last"

_AGE_RE = re.compile(r"\A\s*(\d{1,30})\s*([smhdw])\s*\Z")
_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str | _dt.timedelta) -> _dt.timedelta:
    """``"30d"``, ``"12h"``, ``"45m"``, ``"2w"``, ``"90s"`` -> a timedelta."""
    if isinstance(text, _dt.timedelta):
        return text
    match = _AGE_RE.match(str(text))
    if not match:
        raise ValidationError(f"{text!r} is not an age", hint="write a number and a unit: 90s, 45m, 12h, 30d or 2w")
    try:
        return _dt.timedelta(**{_AGE_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:  # more than 999,999,999 days: longer than any time cairn stores
        return _dt.timedelta.max


def time_ago(age: _dt.timedelta) -> str:
    """The stored form of the time ``age`` ago; an age reaching before year 1 means the earliest time."""
    now = _dt.datetime.now(_dt.timezone.utc)
    try:
        moment = now - age
    except OverflowError:
        moment = _dt.datetime.min.replace(tzinfo=_dt.timezone.utc)
    # strftime writes year 1 as "1": pad it, so the result still reads as a time (and sorts as one).
    stamp = format_time(moment)
    return f"{moment.year:04d}{stamp[stamp.index('-') :]}"


def _environment() -> dict[str, Any]:
    from cairn._version import kernel_version

    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cairn": kernel_version(),
    }


def _user() -> str | None:
    try:
        return os.environ.get("CAIRN_USER") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in some containers
        return None


def _events(
    run_id: str, events: Iterable[RunEvent | Mapping[str, Any]], redactor: Redactor, start: int = 0
) -> list[RunEvent]:
    out: list[RunEvent] = []
    for seq, event in enumerate(events, start=start):
        if isinstance(event, RunEvent):
            out.append(RunEvent(run_id, seq, event.ts, event.type, redactor.value(dict(event.fields))))
            continue
        if not isinstance(event, Mapping) or not isinstance(event.get("type"), str):
            raise ValidationError(f"event {seq} must be a mapping with a 'type' string, got {event!r:.60}")
        fields = {k: v for k, v in event.items() if k not in ("type", "ts")}
        out.append(RunEvent(run_id, seq, event.get("ts") or now(), event["type"], redactor.value(fields)))
    return out


def _redacted(run: Run, redactor: Redactor) -> Run:
    """``run`` with every free-text field masked: what it says may quote the environment or a child's output."""
    return attrs.evolve(
        run,
        subtype=redactor.text(run.subtype) if run.subtype else run.subtype,
        user=redactor.text(run.user) if run.user else run.user,
        summary=redactor.text(run.summary),
        environment=redactor.value(run.environment),
        modules_affected=redactor.value(run.modules_affected),
        metadata=redactor.value(run.metadata),
    )


class Ledger:
    """Record, list, read and prune runs in a store."""

    def __init__(
        self,
        store: Facet,
        *,
        bus: EventBus | None = None,
        hooks: Any = None,
        project_dir: Path | str | None = None,
        user: str | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.store = require(store, RunStore, doing="the run ledger")
        self._bus = bus or default_bus
        self._hooks = hooks
        self.project_dir = Path(project_dir) if project_dir else None
        self.user = user if user is not None else _user()
        self._redactor = redactor
        # Finds the repository once; each run re-reads HEAD (no `git rev-parse` process per run).
        self._code_ref = CodeRef(self.project_dir)

    @property
    def redactor(self) -> Redactor:
        """What masks secrets in everything recorded (default: the environment's secret-looking variables)."""
        if self._redactor is None:
            self._redactor = Redactor.from_environment()
        return self._redactor

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- recording -------------------------------------------------------------

    def _new_run(self, run_type: str, run_id: str | None, status: str, started_at: str | None, **fields: Any) -> Run:
        if run_id is None:
            run_id = new_run_id(run_type)
        validate_run_id(run_id)
        if started_at is not None:
            started_at = format_time(parse_time(started_at))
        code_ref = fields.pop("code_ref", None)
        if code_ref is None:
            code_ref = self._code_ref()
        run = Run(
            run_id=run_id,
            type=run_type,
            status=status,
            started_at=started_at or now(),
            user=fields.pop("user", None) or self.user,
            code_ref=code_ref,
            environment=fields.pop("environment", None) or _environment(),
            modules_affected=list(fields.pop("modules_affected", None) or []),
            metadata=dict(fields.pop("metadata", None) or {}),
            **fields,
        )
        return _redacted(run, self.redactor)

    def record(
        self,
        run_type: str,
        *,
        status: str = "ok",
        events: Iterable[RunEvent | Mapping[str, Any]] = (),
        run_id: str | None = None,
        started_at: str | None = None,
        ended_at: str | None = None,
        duration_ms: int | None = None,
        **fields: Any,
    ) -> Run:
        """Record a finished run with its events in one write.

        ``fields``: subtype, summary, metadata, environment, modules_affected,
        user, code_ref (HEAD's commit, read from the repository's files, when not given).
        """
        if status == "open":
            raise ValidationError("a recorded run is finished", hint="use Ledger.open() for a run still going on")
        run = self._new_run(run_type, run_id, status, started_at, **fields)
        ended = format_time(parse_time(ended_at)) if ended_at else now()
        if duration_ms is None:
            duration_ms = _elapsed_ms(run.started_at, ended)
        run = attrs.evolve(run, ended_at=ended, duration_ms=duration_ms)
        self.store.put_run(run, _events(run.run_id, events, self.redactor))
        self._recorded(run)
        return run

    def record_many(self, runs: Sequence[Mapping[str, Any]]) -> list[Run]:
        """Record many finished runs in one batch (``RunStore.put_runs``); each mapping holds ``record``'s arguments."""
        prepared: list[tuple[Run, list[RunEvent]]] = []
        code_ref = self._code_ref()
        for spec in runs:
            spec = dict(spec)
            run_type = spec.pop("type")
            events = spec.pop("events", ())
            status = spec.pop("status", "ok")
            ended_at = spec.pop("ended_at", None)
            duration_ms = spec.pop("duration_ms", None)
            spec.setdefault("code_ref", code_ref)
            run = self._new_run(run_type, spec.pop("run_id", None), status, spec.pop("started_at", None), **spec)
            ended = format_time(parse_time(ended_at)) if ended_at else now()
            run = attrs.evolve(
                run,
                ended_at=ended,
                duration_ms=duration_ms if duration_ms is not None else _elapsed_ms(run.started_at, ended),
            )
            prepared.append((run, _events(run.run_id, events, self.redactor)))
        self.store.put_runs(prepared)
        for run, _ in prepared:
            self._recorded(run)
        return [run for run, _ in prepared]

    def open(self, run_type: str, *, run_id: str | None = None, **fields: Any) -> OpenRun:
        """Start a run: append events while it goes on, then close it (also as a context manager)."""
        run = self._new_run(run_type, run_id, "open", None, **fields)
        self.store.put_run(run)
        return OpenRun(self, run)

    def _recorded(self, run: Run) -> None:
        self._bus.publish(
            RUN_RECORDED, {"run_id": run.run_id, "type": run.type, "status": run.status, "duration_ms": run.duration_ms}
        )
        if self._hooks is not None and self._hooks.cairn_run_recorded.get_hookimpls():
            self._hooks.cairn_run_recorded(run=run)

    # -- reading ---------------------------------------------------------------

    def list(
        self,
        *,
        type: str | None = None,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        """Runs newest first; ``since``/``until`` are ISO times or ages like ``7d``."""
        return self.store.list_runs(type=type, status=status, since=_moment(since), until=_moment(until), limit=limit)

    def resolve(self, ref: str, *, type: str | None = None) -> str:
        """A run id from a reference: ``@last`` is the newest run, ``@prev`` the one before, ``@last~N``
        the Nth before the newest (of ``type`` when given); anything else must be a valid run id."""
        offset = _run_offset(ref)
        if offset is None:
            if isinstance(ref, str) and ref.startswith("@"):
                raise ValidationError(
                    f"{ref!r:.80} is not a run reference", hint="use @last, @prev, @last~N or a run id"
                )
            return validate_run_id(ref)
        runs = self.store.list_runs(type=type, limit=offset + 1)
        if len(runs) <= offset:
            what = f"{type} run" if type else "run"
            have = f"{len(runs)} {what}{'' if len(runs) == 1 else 's'} recorded"
            listing = f"`cairn runs list{' --type ' + type if type else ''}` lists them"
            raise NotFoundError(what, ref, hint=f"{have}; {listing}")
        return runs[offset].run_id

    def get(self, run_id: str, *, type: str | None = None) -> Run:
        """The run ``run_id`` names (a reference, see ``resolve``); of ``type`` when given."""
        run_id = self.resolve(run_id, type=type)
        run = self.store.get_run(run_id)
        if run is None:
            raise NotFoundError("run", run_id, hint="`cairn runs list` lists runs")
        if type is not None and run.type != type:
            raise NotFoundError(
                f"{type} run", run_id, hint=f"it is a {run.type} run; `cairn runs list --type {type}` lists them"
            )
        return run

    # builtins.list: in this class body `list` is the method above.
    def events(self, run_id: str) -> builtins.list[RunEvent]:
        return self.store.run_events(self.get(run_id).run_id)

    def delete(self, run_id: str) -> None:
        self.store.delete_runs([self.get(run_id).run_id])

    def prune(self, older_than: str | _dt.timedelta, *, dry_run: bool = False) -> builtins.list[Run]:
        """Delete runs that started longer ago than ``older_than``; returns them."""
        cutoff = time_ago(parse_age(older_than))
        doomed = self.store.list_runs(until=cutoff)
        doomed = [r for r in doomed if r.started_at < cutoff and not r.is_open]
        if doomed and not dry_run:
            self.store.delete_runs([r.run_id for r in doomed])
        return doomed


class OpenRun:
    """A run that is still going on: append events, then close it."""

    def __init__(self, ledger: Ledger, run: Run) -> None:
        self.ledger = ledger
        self.run = run
        self._next_seq = 0

    @property
    def run_id(self) -> str:
        return self.run.run_id

    def event(self, event_type: str, **fields: Any) -> RunEvent:
        """Append one event; another writer taking the same position is detected and retried."""
        for _ in range(100):
            (event,) = _events(
                self.run_id, [{"type": event_type, **fields}], self.ledger.redactor, start=self._next_seq
            )
            try:
                self.ledger.store.append_events(self.run_id, [event])
            except ConflictError:
                # The run exists: this handle opened it, and runs are deleted only once closed.
                if self.ledger.store.get_run(self.run_id).status != "open":  # type: ignore[union-attr]
                    raise
                stored = self.ledger.store.run_events(self.run_id, after_seq=self._next_seq - 1)
                self._next_seq = (stored[-1].seq + 1) if stored else self._next_seq + 1
                continue
            self._next_seq += 1
            return event
        raise ConflictError(f"run {self.run_id}", None, None, hint="too many concurrent writers on one run")

    def close(
        self,
        status: str = "ok",
        *,
        summary: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        events: Iterable[RunEvent | Mapping[str, Any]] = (),
    ) -> Run:
        """Finish the run (``ok``, ``failed`` or ``partial``), with any last events, in one write."""
        if status == "open":
            raise ValidationError("close a run as ok, failed or partial")
        ended = now()
        closed = attrs.evolve(
            self.run,
            status=status,
            ended_at=ended,
            duration_ms=_elapsed_ms(self.run.started_at, ended),
            summary=summary if summary is not None else self.run.summary,
            metadata={**self.run.metadata, **dict(metadata or {})},
        )
        closed = _redacted(closed, self.ledger.redactor)
        last = _events(self.run_id, events, self.ledger.redactor, start=self._next_seq)
        self.ledger.store.put_run(closed, last, expected_status="open")
        self._next_seq += len(last)
        self.run = closed
        self.ledger._recorded(closed)
        return closed

    def __enter__(self) -> OpenRun:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.run.is_open:
            if exc is None:
                self.close("ok")
            else:
                # Masked before it is cut: a secret cut in two no longer looks like one.
                self.close("failed", summary=self.ledger.redactor.text(f"{type(exc).__name__}: {exc}")[:500])


def _elapsed_ms(start: str, end: str) -> int:
    return max(0, int((parse_time(end) - parse_time(start)).total_seconds() * 1000))


_OFFSET_RE = re.compile(r"\A@last~(\d{1,9})\Z")


def _run_offset(ref: str) -> int | None:
    """How many runs before the newest ``ref`` means (``@last`` 0, ``@prev`` 1, ``@last~N`` N), or None."""
    if ref == LAST:
        return 0
    if ref == "@prev":
        return 1
    match = _OFFSET_RE.match(ref) if isinstance(ref, str) else None
    return int(match.group(1)) if match else None


def _moment(value: str | None) -> str | None:
    """An ISO time, or an age (``7d``) meaning that long ago."""
    return None if value is None else parse_moment(value)


def parse_moment(text: str, what: str = "") -> str:
    """The stored form of a time people type: ``today``, ``yesterday`` (midnight UTC), an age meaning that
    long ago (``90s``, ``45m``, ``12h``, ``7d``, ``2w``), a date or an ISO-8601 time (UTC when no offset)."""
    word = text.strip().lower() if isinstance(text, str) else ""
    if word in ("today", "yesterday"):
        midnight = _dt.datetime.now(_dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        return format_time(midnight - _dt.timedelta(days=1 if word == "yesterday" else 0))
    if _AGE_RE.match(word):
        return time_ago(parse_age(word))
    try:
        return format_time(parse_time(text))
    except ValidationError:
        raise ValidationError(
            f"{what + ' ' if what else ''}{text!r:.80} is not a time",
            hint="write an age (7d, 12h, 45m), today, yesterday, a date (2026-11-01) or an ISO time "
            "(2026-11-01T09:00:00Z)",
        ) from None


def open_ledger(
    path: str | Path | None = None,
    *,
    config: Any = None,
    plugins: Any = None,
    store: Facet | None = None,
    bus: EventBus | None = None,
) -> Ledger:
    """The ledger of the project at ``path`` (default: found from the cwd), over its configured store."""
    from cairn.config import load_config
    from cairn.plugins import load_plugins

    if config is None:
        config = load_config(path)
    if plugins is None:
        plugins = load_plugins(disabled=config.cairn.disabled_plugins)
    if store is None:
        store = plugins.create("storage", config.cairn.storage, config)
    redactor = Redactor.from_environment(names=configured_env_names(config.data))
    return Ledger(
        store, bus=bus, hooks=plugins.pm.hook, project_dir=config.project_dir or config.cwd, redactor=redactor
    )
