"""The governance facet on SQLite: directives and their history, and approvals.

Each record is one row whose ``record`` column holds it as canonical JSON,
with the columns its look-ups filter and sort on beside it. Every
compare-and-swap reads and writes under one ``BEGIN IMMEDIATE``, so two
processes can never both win it.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from cairn.errors import ConflictError, NotFoundError, ValidationError
from cairn.model.governance import Approval, Directive, DirectiveEvent
from cairn.storage import GovernanceStore
from cairn_sqlite.connection import SqliteConnection, json_text, sql_limit, sqlite_method

__all__ = ["SqliteGovernance", "checked"]


def checked(value: Any, kind: type, method: str) -> Any:
    if not isinstance(value, kind):
        raise ValidationError(f"expected a {kind.__name__}, got {type(value).__name__}", what=method)
    return value


class SqliteGovernance(SqliteConnection, GovernanceStore):
    """``GovernanceStore`` over the ``directives``, ``directive_events`` and ``approvals`` tables."""

    @sqlite_method("storing a directive")
    def add_directive(self, directive: Directive, event: DirectiveEvent) -> None:
        checked(directive, Directive, "add_directive")
        first = attrs.evolve(checked(event, DirectiveEvent, "add_directive"), seq=0)
        with self._write_transaction() as conn:
            if conn.execute("SELECT 1 FROM directives WHERE id = ?", (directive.id,)).fetchone():
                raise ConflictError(f"directive {directive.id}", None, "stored", hint="it is stored already")
            conn.execute(
                "INSERT INTO directives (id, created_at, status, record) VALUES (?, ?, 'draft', ?)",
                (directive.id, directive.created_at, json_text(directive.to_record())),
            )
            conn.execute(
                "INSERT INTO directive_events (directive_id, seq, record) VALUES (?, 0, ?)",
                (directive.id, json_text(first.to_record())),
            )

    @sqlite_method("reading a directive")
    def get_directive(self, directive_id: str) -> tuple[Directive, str] | None:
        assert self._conn is not None
        row = self._conn.execute("SELECT record, status FROM directives WHERE id = ?", (directive_id,)).fetchone()
        return None if row is None else (Directive.from_record(json.loads(row[0])), row[1])

    @sqlite_method("listing directives")
    def list_directives(self, *, status: str | None = None, limit: int | None = None) -> list[tuple[Directive, str]]:
        assert self._conn is not None
        where, args = ("WHERE status = ?", [status]) if status is not None else ("", [])
        rows = self._conn.execute(
            f"SELECT record, status FROM directives {where} ORDER BY created_at DESC, id DESC LIMIT ?",
            (*args, sql_limit(limit)),
        )
        return [(Directive.from_record(json.loads(r)), s) for r, s in rows]

    def _append(self, conn: Any, directive_id: str, event: DirectiveEvent) -> DirectiveEvent:
        row = conn.execute("SELECT max(seq) FROM directive_events WHERE directive_id = ?", (directive_id,)).fetchone()
        stored = attrs.evolve(event, directive_id=directive_id, seq=int(row[0] if row[0] is not None else -1) + 1)
        conn.execute(
            "INSERT INTO directive_events (directive_id, seq, record) VALUES (?, ?, ?)",
            (directive_id, stored.seq, json_text(stored.to_record())),
        )
        return stored

    @sqlite_method("moving a directive")
    def transition_directive(self, directive_id: str, expected: str, new: str, event: DirectiveEvent) -> DirectiveEvent:
        checked(event, DirectiveEvent, "transition_directive")
        with self._write_transaction() as conn:
            row = conn.execute("SELECT status FROM directives WHERE id = ?", (directive_id,)).fetchone()
            if row is None:
                raise NotFoundError("directive", directive_id, hint="`cairn directive list` lists directives")
            if row[0] != expected:
                raise ConflictError(f"directive {directive_id}", expected, row[0])
            conn.execute("UPDATE directives SET status = ? WHERE id = ?", (new, directive_id))
            return self._append(conn, directive_id, event)

    @sqlite_method("recording a directive event")
    def add_directive_event(self, directive_id: str, event: DirectiveEvent) -> DirectiveEvent:
        checked(event, DirectiveEvent, "add_directive_event")
        with self._write_transaction() as conn:
            if conn.execute("SELECT 1 FROM directives WHERE id = ?", (directive_id,)).fetchone() is None:
                raise NotFoundError("directive", directive_id, hint="`cairn directive list` lists directives")
            return self._append(conn, directive_id, event)

    @sqlite_method("reading a directive's history")
    def directive_events(self, directive_id: str) -> list[DirectiveEvent]:
        assert self._conn is not None
        rows = self._conn.execute(
            "SELECT record FROM directive_events WHERE directive_id = ? ORDER BY seq", (directive_id,)
        )
        return [DirectiveEvent.from_record(json.loads(r[0])) for r in rows]

    @sqlite_method("storing an approval")
    def add_approval(self, approval: Approval) -> None:
        checked(approval, Approval, "add_approval")
        with self._write_transaction() as conn:
            if conn.execute("SELECT 1 FROM approvals WHERE id = ?", (approval.id,)).fetchone():
                raise ConflictError(f"approval {approval.id}", None, "stored", hint="it is stored already")
            conn.execute(
                "INSERT INTO approvals (id, created_at, status, action_hash, record) VALUES (?, ?, ?, ?, ?)",
                (
                    approval.id,
                    approval.created_at,
                    approval.status,
                    approval.action_hash,
                    json_text(approval.to_record()),
                ),
            )

    @sqlite_method("reading an approval")
    def get_approval(self, approval_id: str) -> Approval | None:
        assert self._conn is not None
        row = self._conn.execute("SELECT record FROM approvals WHERE id = ?", (approval_id,)).fetchone()
        return None if row is None else Approval.from_record(json.loads(row[0]))

    @sqlite_method("listing approvals")
    def list_approvals(
        self, *, status: str | None = None, action_hash: str | None = None, limit: int | None = None
    ) -> list[Approval]:
        assert self._conn is not None
        conditions = [(c, v) for c, v in (("status = ?", status), ("action_hash = ?", action_hash)) if v is not None]
        where = ("WHERE " + " AND ".join(c for c, _ in conditions)) if conditions else ""
        rows = self._conn.execute(
            f"SELECT record FROM approvals {where} ORDER BY created_at DESC, id DESC LIMIT ?",
            (*[v for _, v in conditions], sql_limit(limit)),
        )
        return [Approval.from_record(json.loads(r[0])) for r in rows]

    @sqlite_method("deciding an approval")
    def update_approval(self, approval: Approval, *, expected: str) -> None:
        checked(approval, Approval, "update_approval")
        with self._write_transaction() as conn:
            row = conn.execute("SELECT status FROM approvals WHERE id = ?", (approval.id,)).fetchone()
            if row is None:
                raise NotFoundError("approval", approval.id, hint="`cairn approvals list` lists approvals")
            if row[0] != expected:
                raise ConflictError(f"approval {approval.id}", expected, row[0])
            conn.execute(
                "UPDATE approvals SET status = ?, record = ? WHERE id = ?",
                (approval.status, json_text(approval.to_record()), approval.id),
            )
