"""The ledger facet on PostgreSQL: runs, their events and spend records.

A run is one row with a column per field (``cairn_postgres.run_rows``);
listing builds runs straight from those columns. Closing a run is a
compare-and-swap on ``status`` in one ``UPDATE``. Every run written (created or closed) is announced on the ``cairn_run`` channel by
a trigger, for ``cairn watch --runs`` on other machines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from cairn.errors import ConflictError, IntegrityError, NotFoundError, ValidationError
from cairn.model import Run, RunEvent, SpendRecord
from cairn.storage import RunStore
from cairn_postgres.connection import PostgresConnection, distinct, json_text, pg_method, sql_limit, where
from cairn_postgres.run_rows import RUN_COLUMNS, run_from_row, run_row

__all__ = ["PostgresLedger"]

_COLUMNS = ", ".join(RUN_COLUMNS)
_CREATE_RUN = f"INSERT INTO runs ({_COLUMNS}) VALUES ({', '.join(['%s'] * len(RUN_COLUMNS))}) ON CONFLICT DO NOTHING"
_REPLACE_RUN = (
    f"UPDATE runs SET ({', '.join(RUN_COLUMNS[1:])}) = ({', '.join(['%s'] * (len(RUN_COLUMNS) - 1))}) "
    "WHERE run_id = %s AND status = %s"
)
_INSERT_EVENT = "INSERT INTO run_events (run_id, seq, ts, type, fields) VALUES (%s, %s, %s, %s, %s)"


def _run_row(run: Run) -> tuple[Any, ...]:
    if not isinstance(run, Run):
        raise ValidationError(f"expected a cairn.model.Run, got {type(run).__name__}", what="put_runs")
    return run_row(run)


def _event_row(run_id: str, event: RunEvent) -> tuple[Any, ...]:
    if event.run_id != run_id:
        raise IntegrityError(f"event {event.seq} belongs to run {event.run_id}, not {run_id}")
    return (run_id, event.seq, event.ts, event.type, json_text(event.fields))


def _insert_events(conn: psycopg.Connection[Any], run_id: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert event rows; a seq stored already is a ``ConflictError``, which rolls the whole transaction back.

    No savepoint: nothing in the transaction goes on after a duplicate, so
    there is nothing to keep, and two round trips per write are saved.
    """
    if not rows:
        return
    try:
        if len(rows) == 1:
            conn.execute(_INSERT_EVENT, rows[0])
        else:
            conn.cursor().executemany(_INSERT_EVENT, rows)
    except pg_errors.UniqueViolation:
        raise ConflictError(
            f"run {run_id} events", None, "taken", hint="an event with that seq is stored; read the last seq and retry"
        ) from None


class PostgresLedger(PostgresConnection, RunStore):
    """``RunStore`` over the ``runs``, ``run_events`` and ``spend`` tables."""

    @pg_method("recording a run")
    def put_run(self, run: Run, events: Sequence[RunEvent] = (), *, expected_status: str | None = None) -> None:
        """Create (or, with ``expected_status``, replace) a run and append events, in one transaction."""
        self._put_runs([(run, events)], expected_status)

    @pg_method("recording runs")
    def put_runs(self, runs: Sequence[tuple[Run, Sequence[RunEvent]]]) -> None:
        """Create many runs with their events in one transaction."""
        self._put_runs(runs, None)

    def _put_runs(self, runs: Sequence[tuple[Run, Sequence[RunEvent]]], expected: str | None) -> None:
        rows = [(_run_row(run), [_event_row(run.run_id, e) for e in events]) for run, events in runs]
        if not rows:
            return

        def run_all(conn: psycopg.Connection[Any]) -> None:
            for (run, _), (row, event_rows) in zip(runs, rows, strict=True):
                if expected is None:
                    done = conn.execute(_CREATE_RUN, row).rowcount
                else:
                    done = conn.execute(_REPLACE_RUN, (*row[1:], row[0], expected)).rowcount
                if done != 1:
                    actual = conn.execute("SELECT status FROM runs WHERE run_id = %s", (run.run_id,)).fetchone()
                    raise ConflictError(f"run {run.run_id}", expected, actual[0] if actual else None)
                _insert_events(conn, run.run_id, event_rows)

        self._write(run_all)

    @pg_method("appending events")
    def append_events(self, run_id: str, events: Sequence[RunEvent]) -> None:
        rows = [_event_row(run_id, e) for e in events]

        def run(conn: psycopg.Connection[Any]) -> None:
            # FOR SHARE: a concurrent close waits for this append (or this one sees it closed).
            found = conn.execute("SELECT status FROM runs WHERE run_id = %s FOR SHARE", (run_id,)).fetchone()
            if found is None:
                raise NotFoundError("run", run_id)
            if found[0] != "open":
                raise ConflictError(
                    f"run {run_id}", "open", found[0], hint="the run is closed; events can no longer be added"
                )
            _insert_events(conn, run_id, rows)

        self._write(run)

    @pg_method("reading a run")
    def get_run(self, run_id: str) -> Run | None:
        if "\x00" in run_id:
            return None
        row = self._read(
            lambda conn: conn.execute(f"SELECT {_COLUMNS} FROM runs WHERE run_id = %s", (run_id,)).fetchone()
        )
        return run_from_row(row) if row else None

    @pg_method("listing runs")
    def list_runs(
        self,
        *,
        type: str | None = None,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        clause, params = where(
            ("type", "=", type), ("status", "=", status), ("started_at", ">=", since), ("started_at", "<=", until)
        )
        sql = f"SELECT {_COLUMNS} FROM runs{clause} ORDER BY started_at DESC, run_id DESC LIMIT %s"
        rows = self._read(lambda conn: conn.execute(sql, (*params, sql_limit(limit))).fetchall())
        return [run_from_row(r) for r in rows]

    @pg_method("reading events")
    def run_events(self, run_id: str, *, after_seq: int | None = None) -> list[RunEvent]:
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT seq, ts, type, fields FROM run_events WHERE run_id = %s AND seq > %s ORDER BY seq",
                (run_id, -1 if after_seq is None else after_seq),
            ).fetchall()
        )
        return [RunEvent(run_id, seq, ts, kind, json.loads(fields)) for seq, ts, kind, fields in rows]

    @pg_method("deleting runs")
    def delete_runs(self, run_ids: Iterable[str]) -> int:
        keys = sorted(distinct(run_ids, "delete_runs"))
        if not keys:
            return 0
        # Events go with their runs (ON DELETE CASCADE).
        return int(self._write(lambda conn: conn.execute("DELETE FROM runs WHERE run_id = ANY(%s)", (keys,)).rowcount))

    @pg_method("recording spend")
    def add_spend(self, records: Sequence[SpendRecord]) -> None:
        rows = [(r.ts, r.run_id, json_text(r.to_record())) for r in records]
        if not rows:
            return

        def run(conn: psycopg.Connection[Any]) -> None:
            conn.cursor().executemany("INSERT INTO spend (ts, run_id, record) VALUES (%s, %s, %s)", rows)

        self._write(run)

    @pg_method("reading spend")
    def spend(
        self, *, since: str | None = None, until: str | None = None, run_id: str | None = None
    ) -> list[SpendRecord]:
        clause, params = where(("ts", ">=", since), ("ts", "<=", until), ("run_id", "=", run_id))
        sql = f"SELECT record FROM spend{clause} ORDER BY ts, seq"
        rows = self._read(lambda conn: conn.execute(sql, params).fetchall())
        return [SpendRecord.from_record(json.loads(r[0])) for r in rows]
