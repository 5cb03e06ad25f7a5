"""The governance facet on the ledger branch: directives and approvals (idempotency keys: ``nonces``).

Layout (``s``: the first two hex digits of the name)::

    ledger/directives/<id>/directive.json     the directive's content, canonical JSON (never changes)
    ledger/directives/<id>/status             its current status
    ledger/directives/<id>/events/<seq>.json  its history, one file per event (seq zero-padded)
    ledger/approvals/<id>.json                one approval, replaced as it is decided

Every compare-and-swap (a status move, a decided approval)
is a ledger commit whose plan looks at the ledger as it is and refuses when
the value is not the expected one; the commit is published by
compare-and-swap of the branch and, when another writer moved it first,
planned again on the new tip. So of four processes racing for one move,
exactly one commit lands and the others see the new status.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from cairn.errors import ConflictError, NotFoundError
from cairn.model.governance import (
    Approval,
    Directive,
    DirectiveEvent,
    validate_approval_id,
    validate_directive_id,
)
from cairn.storage import GovernanceStore
from cairn_git._base import checked_limit, locked, writing
from cairn_git._git import BLOB_MODE, TREE_MODE
from cairn_git._ledger_base import LedgerChange
from cairn_git._records import LedgerRecords, checked, known_id, record_bytes

__all__ = ["APPROVALS_DIR", "DIRECTIVES_DIR", "GitGovernance"]

DIRECTIVES_DIR = "ledger/directives"
APPROVALS_DIR = "ledger/approvals"


class GitGovernance(LedgerRecords, GovernanceStore):
    """``GovernanceStore`` on the ledger branch (see the module docstring)."""

    def _directory(self, directive_id: str) -> str:
        return f"{DIRECTIVES_DIR}/{directive_id}"

    def _status(self, root: str | None, directive_id: str) -> str | None:
        data = self._blob_at(root, f"{self._directory(directive_id)}/status")
        return None if data is None else data.decode().strip()

    def _next_seq(self, root: str | None, directive_id: str) -> int:
        entry = self._trees.lookup(root, f"{self._directory(directive_id)}/events")
        if entry is None or entry[0] != TREE_MODE:
            return 0
        return len(self._trees.get(entry[1]))

    def _event_file(self, directive_id: str, event: DirectiveEvent) -> tuple[str, tuple[str, str]]:
        path = f"{self._directory(directive_id)}/events/{event.seq:08d}.json"
        return path, (BLOB_MODE, self._writer.blob(record_bytes(event.to_record())))

    @writing
    def add_directive(self, directive: Directive, event: DirectiveEvent) -> None:
        checked(directive, Directive, "add_directive")
        first = attrs.evolve(checked(event, DirectiveEvent, "add_directive"), seq=0)
        content = self._writer.blob(record_bytes(directive.to_record()))
        draft = self._writer.blob(b"draft\n")

        def plan(tip: str | None, root: str | None, attempt: int) -> LedgerChange:
            if self._status(root, directive.id) is not None:
                raise ConflictError(f"directive {directive.id}", None, "stored", hint="it is stored already")
            base = self._directory(directive.id)
            path, entry = self._event_file(directive.id, first)
            edits = {f"{base}/directive.json": (BLOB_MODE, content), f"{base}/status": (BLOB_MODE, draft), path: entry}
            return LedgerChange(edits, f"directive {directive.id}: draft")

        self._update_ledger("storing a directive", plan)

    def _directive(self, root: str | None, directive_id: str) -> tuple[Directive, str] | None:
        status = self._status(root, directive_id)
        record = self._record_at(root, f"{self._directory(directive_id)}/directive.json")
        if status is None or record is None:
            return None
        return Directive.from_record(record), status

    @locked
    def get_directive(self, directive_id: str) -> tuple[Directive, str] | None:
        if known_id(directive_id, validate_directive_id) is None:
            return None
        _, root = self._read_ledger()
        return self._directive(root, directive_id)

    @locked
    def list_directives(self, *, status: str | None = None, limit: int | None = None) -> list[tuple[Directive, str]]:
        n = checked_limit(limit)
        _, root = self._read_ledger()
        top = self._trees.lookup(root, DIRECTIVES_DIR)
        if top is None or top[0] != TREE_MODE:
            return []
        found = [self._directive(root, name) for name in self._trees.get(top[1])]
        out = [d for d in found if d is not None and (status is None or d[1] == status)]
        out.sort(key=lambda d: (d[0].created_at, d[0].id), reverse=True)
        return out if n is None else out[:n]

    def _append_plan(self, directive_id: str, event: DirectiveEvent, expected: str | None, new: str | None) -> Any:
        def plan(tip: str | None, root: str | None, attempt: int) -> LedgerChange:
            status = self._status(root, directive_id)
            if status is None:
                raise NotFoundError("directive", directive_id, hint="`cairn directive list` lists directives")
            if expected is not None and status != expected:
                raise ConflictError(f"directive {directive_id}", expected, status)
            stored = attrs.evolve(event, directive_id=directive_id, seq=self._next_seq(root, directive_id))
            path, entry = self._event_file(directive_id, stored)
            edits = {path: entry}
            if new is not None:
                edits[f"{self._directory(directive_id)}/status"] = (BLOB_MODE, self._writer.blob(f"{new}\n".encode()))
            message = (
                f"directive {directive_id}: {status} -> {new}" if new else f"directive {directive_id}: {event.type}"
            )
            return LedgerChange(edits, message, result=stored)

        return plan

    @writing
    def transition_directive(self, directive_id: str, expected: str, new: str, event: DirectiveEvent) -> DirectiveEvent:
        checked(event, DirectiveEvent, "transition_directive")
        if known_id(directive_id, validate_directive_id) is None:
            raise NotFoundError("directive", directive_id, hint="`cairn directive list` lists directives")
        return self._update_ledger("moving a directive", self._append_plan(directive_id, event, expected, new))

    @writing
    def add_directive_event(self, directive_id: str, event: DirectiveEvent) -> DirectiveEvent:
        checked(event, DirectiveEvent, "add_directive_event")
        if known_id(directive_id, validate_directive_id) is None:
            raise NotFoundError("directive", directive_id, hint="`cairn directive list` lists directives")
        return self._update_ledger("recording a directive event", self._append_plan(directive_id, event, None, None))

    @locked
    def directive_events(self, directive_id: str) -> list[DirectiveEvent]:
        if known_id(directive_id, validate_directive_id) is None:
            return []
        _, root = self._read_ledger()
        files = sorted(self._trees.walk(root, f"{self._directory(directive_id)}/events"))
        parsed = self._parsed([oid for _, oid in files], lambda data: DirectiveEvent.from_record(json.loads(data)))
        return sorted((parsed[oid] for _, oid in files if oid in parsed), key=lambda e: e.seq)

    # -- approvals ----------------------------------------------------------------------------------

    def _approval_path(self, approval_id: str) -> str:
        return f"{APPROVALS_DIR}/{approval_id}.json"

    @writing
    def add_approval(self, approval: Approval) -> None:
        checked(approval, Approval, "add_approval")
        blob = self._writer.blob(record_bytes(approval.to_record()))

        def plan(tip: str | None, root: str | None, attempt: int) -> LedgerChange:
            path = self._approval_path(approval.id)
            if self._trees.lookup(root, path) is not None:
                raise ConflictError(f"approval {approval.id}", None, "stored", hint="it is stored already")
            return LedgerChange({path: (BLOB_MODE, blob)}, f"approval {approval.id}: {approval.status}")

        self._update_ledger("storing an approval", plan)

    @locked
    def get_approval(self, approval_id: str) -> Approval | None:
        if known_id(approval_id, validate_approval_id) is None:
            return None
        _, root = self._read_ledger()
        record = self._record_at(root, self._approval_path(approval_id))
        return None if record is None else Approval.from_record(record)

    @locked
    def list_approvals(
        self, *, status: str | None = None, action_hash: str | None = None, limit: int | None = None
    ) -> list[Approval]:
        n = checked_limit(limit)
        _, root = self._read_ledger()
        files = [oid for _, oid in self._trees.walk(root, APPROVALS_DIR)]
        parsed = self._parsed(files, lambda data: Approval.from_record(json.loads(data)))
        out = [
            a
            for a in parsed.values()
            if (status is None or a.status == status) and (action_hash is None or a.action_hash == action_hash)
        ]
        out.sort(key=lambda a: (a.created_at, a.id), reverse=True)
        return out if n is None else out[:n]

    @writing
    def update_approval(self, approval: Approval, *, expected: str) -> None:
        checked(approval, Approval, "update_approval")
        blob = self._writer.blob(record_bytes(approval.to_record()))

        def plan(tip: str | None, root: str | None, attempt: int) -> LedgerChange:
            path = self._approval_path(approval.id)
            record = self._record_at(root, path)
            if record is None:
                raise NotFoundError("approval", approval.id, hint="`cairn approvals list` lists approvals")
            if record["status"] != expected:
                raise ConflictError(f"approval {approval.id}", expected, record["status"])
            return LedgerChange({path: (BLOB_MODE, blob)}, f"approval {approval.id}: {approval.status}")

        self._update_ledger("deciding an approval", plan)
