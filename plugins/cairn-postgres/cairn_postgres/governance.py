"""The governance facet on PostgreSQL: directives and their history, and approvals.

Each record is one row whose ``record`` column holds it as canonical JSON,
with the columns its look-ups filter and sort on beside it. Every
compare-and-swap is one ``UPDATE ... WHERE status = expected``: under READ
COMMITTED a second writer of the same row waits for the first, then
matches nothing, so two processes never both win it. The event a move
appends takes the next ``seq`` while the directive's row is locked (by the
move's update, or ``FOR UPDATE`` for an event that moves nothing), so
appenders take turns.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import psycopg

from cairn.errors import ConflictError, NotFoundError
from cairn.model.governance import Approval, Directive, DirectiveEvent
from cairn.storage import GovernanceStore
from cairn_postgres.connection import PostgresConnection, json_text, pg_method, sql_limit, where
from cairn_postgres.nonces import checked

__all__ = ["PostgresGovernance"]

_NO_DIRECTIVE = "`cairn directive list` lists directives"
_NO_APPROVAL = "`cairn approvals list` lists approvals"


def _append(conn: psycopg.Connection[Any], directive_id: str, event: DirectiveEvent) -> DirectiveEvent:
    """Store ``event`` as the directive's next; the caller holds the directive's row lock."""
    row = conn.execute("SELECT max(seq) FROM directive_events WHERE directive_id = %s", (directive_id,)).fetchone()
    last = row[0] if row is not None and row[0] is not None else -1
    stored = attrs.evolve(event, directive_id=directive_id, seq=int(last) + 1)
    conn.execute(
        "INSERT INTO directive_events (directive_id, seq, record) VALUES (%s, %s, %s)",
        (directive_id, stored.seq, json_text(stored.to_record())),
    )
    return stored


class PostgresGovernance(PostgresConnection, GovernanceStore):
    """``GovernanceStore`` over the ``directives``, ``directive_events`` and ``approvals`` tables."""

    @pg_method("storing a directive")
    def add_directive(self, directive: Directive, event: DirectiveEvent) -> None:
        checked(directive, Directive, "add_directive")
        first = attrs.evolve(checked(event, DirectiveEvent, "add_directive"), seq=0)

        def run(conn: psycopg.Connection[Any]) -> None:
            added = conn.execute(
                "INSERT INTO directives (id, created_at, status, record) VALUES (%s, %s, 'draft', %s) "
                "ON CONFLICT (id) DO NOTHING RETURNING 1",
                (directive.id, directive.created_at, json_text(directive.to_record())),
            ).fetchone()
            if added is None:
                raise ConflictError(f"directive {directive.id}", None, "stored", hint="it is stored already")
            conn.execute(
                "INSERT INTO directive_events (directive_id, seq, record) VALUES (%s, 0, %s)",
                (directive.id, json_text(first.to_record())),
            )

        self._write(run)

    @pg_method("reading a directive")
    def get_directive(self, directive_id: str) -> tuple[Directive, str] | None:
        if "\x00" in directive_id:
            return None  # PostgreSQL text holds no NUL, so no such id is stored
        row = self._read(
            lambda conn: conn.execute("SELECT record, status FROM directives WHERE id = %s", (directive_id,)).fetchone()
        )
        return None if row is None else (Directive.from_record(json.loads(row[0])), row[1])

    @pg_method("listing directives")
    def list_directives(self, *, status: str | None = None, limit: int | None = None) -> list[tuple[Directive, str]]:
        clause, params = where(("status", "=", status))
        sql = f"SELECT record, status FROM directives{clause} ORDER BY created_at DESC, id DESC LIMIT %s"
        rows = self._read(lambda conn: conn.execute(sql, (*params, sql_limit(limit))).fetchall())
        return [(Directive.from_record(json.loads(r)), s) for r, s in rows]

    @pg_method("moving a directive")
    def transition_directive(self, directive_id: str, expected: str, new: str, event: DirectiveEvent) -> DirectiveEvent:
        checked(event, DirectiveEvent, "transition_directive")
        if "\x00" in directive_id:
            raise NotFoundError("directive", directive_id, hint=_NO_DIRECTIVE)

        def run(conn: psycopg.Connection[Any]) -> DirectiveEvent:
            moved = conn.execute(
                "UPDATE directives SET status = %s WHERE id = %s AND status = %s RETURNING 1",
                (new, directive_id, expected),
            ).fetchone()
            if moved is None:
                row = conn.execute("SELECT status FROM directives WHERE id = %s", (directive_id,)).fetchone()
                if row is None:
                    raise NotFoundError("directive", directive_id, hint=_NO_DIRECTIVE)
                raise ConflictError(f"directive {directive_id}", expected, row[0])
            return _append(conn, directive_id, event)

        return self._write(run)

    @pg_method("recording a directive event")
    def add_directive_event(self, directive_id: str, event: DirectiveEvent) -> DirectiveEvent:
        checked(event, DirectiveEvent, "add_directive_event")
        if "\x00" in directive_id:
            raise NotFoundError("directive", directive_id, hint=_NO_DIRECTIVE)

        def run(conn: psycopg.Connection[Any]) -> DirectiveEvent:
            if conn.execute("SELECT 1 FROM directives WHERE id = %s FOR UPDATE", (directive_id,)).fetchone() is None:
                raise NotFoundError("directive", directive_id, hint=_NO_DIRECTIVE)
            return _append(conn, directive_id, event)

        return self._write(run)

    @pg_method("reading a directive's history")
    def directive_events(self, directive_id: str) -> list[DirectiveEvent]:
        if "\x00" in directive_id:
            return []
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT record FROM directive_events WHERE directive_id = %s ORDER BY seq", (directive_id,)
            ).fetchall()
        )
        return [DirectiveEvent.from_record(json.loads(r[0])) for r in rows]

    @pg_method("storing an approval")
    def add_approval(self, approval: Approval) -> None:
        checked(approval, Approval, "add_approval")
        row = (approval.id, approval.created_at, approval.status, approval.action_hash, json_text(approval.to_record()))

        def run(conn: psycopg.Connection[Any]) -> None:
            added = conn.execute(
                "INSERT INTO approvals (id, created_at, status, action_hash, record) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (id) DO NOTHING RETURNING 1",
                row,
            ).fetchone()
            if added is None:
                raise ConflictError(f"approval {approval.id}", None, "stored", hint="it is stored already")

        self._write(run)

    @pg_method("reading an approval")
    def get_approval(self, approval_id: str) -> Approval | None:
        if "\x00" in approval_id:
            return None
        row = self._read(
            lambda conn: conn.execute("SELECT record FROM approvals WHERE id = %s", (approval_id,)).fetchone()
        )
        return None if row is None else Approval.from_record(json.loads(row[0]))

    @pg_method("listing approvals")
    def list_approvals(
        self, *, status: str | None = None, action_hash: str | None = None, limit: int | None = None
    ) -> list[Approval]:
        clause, params = where(("status", "=", status), ("action_hash", "=", action_hash))
        sql = f"SELECT record FROM approvals{clause} ORDER BY created_at DESC, id DESC LIMIT %s"
        rows = self._read(lambda conn: conn.execute(sql, (*params, sql_limit(limit))).fetchall())
        return [Approval.from_record(json.loads(r[0])) for r in rows]

    @pg_method("deciding an approval")
    def update_approval(self, approval: Approval, *, expected: str) -> None:
        checked(approval, Approval, "update_approval")

        def run(conn: psycopg.Connection[Any]) -> None:
            updated = conn.execute(
                "UPDATE approvals SET status = %s, record = %s WHERE id = %s AND status = %s RETURNING 1",
                (approval.status, json_text(approval.to_record()), approval.id, expected),
            ).fetchone()
            if updated is None:
                row = conn.execute("SELECT status FROM approvals WHERE id = %s", (approval.id,)).fetchone()
                if row is None:
                    raise NotFoundError("approval", approval.id, hint=_NO_APPROVAL)
                raise ConflictError(f"approval {approval.id}", expected, row[0])

        self._write(run)
