"""The refs facet on PostgreSQL: the ``refs`` table, every change one conditional statement.

A compare-and-swap is a single ``UPDATE ... WHERE name = %s AND value =
%s`` (or the ``INSERT`` / ``DELETE`` equivalent) and its row count. Under
READ COMMITTED a second writer of the same ref waits for the first to
commit, then re-evaluates its condition against the new value and matches
nothing: exactly one of two racing writers wins, the other gets
``ConflictError``. Updates are applied in name order so two multi-ref
writes never deadlock. ``swap`` and ``checked_refs`` are shared with
``ObjectStore.write`` (``cairn_postgres.objects``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from cairn.errors import ConflictError, ValidationError
from cairn.storage import RefStore, RefUpdate
from cairn_postgres.connection import PostgresConnection, pg_method

__all__ = ["PostgresRefs", "checked_refs", "swap"]

_CREATE_REF = "INSERT INTO refs (name, value) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING"
_MOVE_REF = "UPDATE refs SET value = %s WHERE name = %s AND value = %s"
_DELETE_REF = "DELETE FROM refs WHERE name = %s AND value = %s"
_GET_REF = "SELECT value FROM refs WHERE name = %s"


def swap(conn: psycopg.Connection[Any], update: RefUpdate) -> None:
    """Compare-and-swap one ref with a single conditional statement; ``ConflictError`` if it matched nothing."""
    name, new, expected = update.name, update.new, update.expected
    if expected is None and new is None:
        changed = 0 if conn.execute(_GET_REF, (name,)).fetchone() else 1  # "delete if absent": a check only
    elif expected is None:
        changed = conn.execute(_CREATE_REF, (name, new)).rowcount
    elif new is None:
        changed = conn.execute(_DELETE_REF, (name, expected)).rowcount
    else:
        changed = conn.execute(_MOVE_REF, (new, name, expected)).rowcount
    if changed != 1:
        row = conn.execute(_GET_REF, (name,)).fetchone()
        raise ConflictError(name, expected, row[0] if row else None)


def checked_refs(refs: Sequence[RefUpdate]) -> list[RefUpdate]:
    """The updates in name order, each a ``RefUpdate`` with a sensible name and value, no ref twice."""
    updates = list(refs)
    seen: set[str] = set()
    for update in updates:
        if not isinstance(update, RefUpdate):
            raise ValidationError(f"expected a cairn.storage.RefUpdate, got {type(update).__name__}", what="write")
        if not isinstance(update.name, str) or not update.name or "\x00" in update.name:
            raise ValidationError("a ref name must be a non-empty string without NUL", what="write", given=update.name)
        for value in (update.new, update.expected):
            if value is not None and (not isinstance(value, str) or not value or "\x00" in value):
                raise ValidationError(
                    f"ref {update.name}: a value must be a non-empty string without NUL, or None",
                    what="write",
                    given=value,
                )
        if update.name in seen:
            raise ValidationError(
                f"ref {update.name} is updated twice in one write",
                what="write",
                hint="give each ref one update per write",
            )
        seen.add(update.name)
    return sorted(updates, key=lambda u: u.name)


class PostgresRefs(PostgresConnection, RefStore):
    """``RefStore`` over the ``refs`` table."""

    @pg_method("reading a ref")
    def get_ref(self, name: str) -> str | None:
        """The value of ``name``, or None."""
        if not isinstance(name, str) or "\x00" in name:
            return None
        row = self._read(lambda conn: conn.execute(_GET_REF, (name,)).fetchone())
        return row[0] if row else None

    @pg_method("listing refs")
    def list_refs(self, prefix: str = "") -> dict[str, str]:
        """Every ref whose name starts with ``prefix`` (literally), sorted by name (code point order)."""
        if "\x00" in prefix:
            return {}
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT name, value FROM refs WHERE starts_with(name, %s) ORDER BY name", (prefix,)
            ).fetchall()
        )
        return dict(rows)

    @pg_method("moving refs")
    def update_refs(self, updates: list[RefUpdate]) -> None:
        """Apply compare-and-swap updates in one transaction, all or nothing (``ConflictError``: nothing changed)."""
        checked = checked_refs(updates)
        if not checked:
            return

        def run(conn: psycopg.Connection[Any]) -> None:
            for update in checked:
                swap(conn, update)

        self._write(run)
