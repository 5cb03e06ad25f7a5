"""What the sessions and checkpoints pages of ``cairn serve`` show (read-only).

Sessions and checkpoints are read as ``cairn session list/show`` and
``cairn checkpoint list`` read them (``cairn.sessions.Sessions``,
``cairn.checkpoints.Checkpoints``): ordinary commits and refs, so every store
with the objects and refs facets has them and no facet is needed. A session's
runs are the ``run_id`` of its replies; with a ledger each is shown with its
record, and a run the ledger no longer holds is shown by its id alone.
"""

from __future__ import annotations

from typing import Any

from cairn.errors import NotFoundError

__all__ = ["checkpoints_list", "session_detail", "sessions_list"]


def sessions_list(state: Any) -> list[dict[str, Any]]:
    """Every session, the most recently active first (``cairn session list --json``)."""
    from cairn.sessions import Sessions

    return [s.to_dict() for s in Sessions(state.repo).list()]


def session_detail(state: Any, session_id: str, *, ledger: bool) -> dict[str, Any]:
    """One session: its record and totals, ``turns``, its runs (oldest first) and the checkpoints of its branch.

    ``NotFoundError`` for an id no session has; ``ValidationError`` for one
    that could not be a session id (checked before it reaches a ref).
    """
    from cairn.checkpoints import Checkpoints
    from cairn.sessions import Sessions

    session = Sessions(state.repo).get(session_id)
    data = session.to_dict()
    data["turns"] = data["totals"]["turns"]
    runs: list[dict[str, Any]] = []
    for run_id in session.run_ids():
        row: dict[str, Any] = {"run_id": run_id}
        if ledger:
            try:
                run = state.ledger.get(run_id)
            except NotFoundError:
                row["missing"] = True
            else:
                row.update(run.to_record())
        runs.append(row)
    data["runs"] = runs
    data["checkpoints"] = [
        c.to_dict()
        for c in Checkpoints(state.repo).list()
        if c.record.session == session.id or c.record.branch == session.branch
    ]
    return data


def checkpoints_list(state: Any) -> list[dict[str, Any]]:
    """Every checkpoint, newest first (``cairn checkpoint list --json``)."""
    from cairn.checkpoints import Checkpoints

    return [c.to_dict() for c in Checkpoints(state.repo).list()]
