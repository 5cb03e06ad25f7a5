"""The refs facet on SQLite: the ``refs`` table, every change a single conditional statement.

``swap`` and ``checked_refs`` are shared with ``ObjectStore.write`` (in
``cairn_sqlite.objects``), which moves refs in the same transaction as the
objects they publish.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from cairn.errors import ConflictError, ValidationError
from cairn.storage import RefStore, RefUpdate
from cairn_sqlite.connection import SqliteConnection, sqlite_method

__all__ = ["SqliteRefs", "checked_refs", "swap"]

# Ref compare-and-swap: each statement changes one row exactly when the ref holds the expected value.
_CREATE_REF = "INSERT INTO refs (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
_MOVE_REF = "UPDATE refs SET value = ? WHERE name = ? AND value = ?"
_DELETE_REF = "DELETE FROM refs WHERE name = ? AND value = ?"
_GET_REF = "SELECT value FROM refs WHERE name = ?"


def swap(conn: sqlite3.Connection, update: RefUpdate) -> None:
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
    """The updates as a list, each a ``RefUpdate`` with a name and a sensible value, no ref twice."""
    updates = list(refs)
    seen: set[str] = set()
    for update in updates:
        if not isinstance(update, RefUpdate):
            raise ValidationError(f"expected a cairn.storage.RefUpdate, got {type(update).__name__}", what="write")
        if not isinstance(update.name, str) or not update.name:
            raise ValidationError("a ref name must be a non-empty string", what="write", given=update.name)
        if update.new is not None and (not isinstance(update.new, str) or not update.new):
            raise ValidationError(
                f"ref {update.name}: the new value must be a non-empty string or None",
                what="write",
                given=update.new,
            )
        if update.name in seen:
            raise ValidationError(
                f"ref {update.name} is updated twice in one write",
                what="write",
                hint="give each ref one update per write",
            )
        seen.add(update.name)
    return updates


def _upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None: no bound)."""
    chars = list(prefix)
    while chars and chars[-1] == "\U0010ffff":
        chars.pop()
    if not chars:
        return None
    code = ord(chars[-1]) + 1
    if 0xD800 <= code <= 0xDFFF:  # no surrogates in UTF-8 text
        code = 0xE000
    chars[-1] = chr(code)
    return "".join(chars)


class SqliteRefs(SqliteConnection, RefStore):
    """``RefStore`` over the ``refs`` table."""

    @sqlite_method("reading a ref")
    def get_ref(self, name: str) -> str | None:
        """The value of ``name``, or None."""
        assert self._conn is not None
        row = self._conn.execute(_GET_REF, (name,)).fetchone()
        return row[0] if row else None

    @sqlite_method("listing refs")
    def list_refs(self, prefix: str = "") -> dict[str, str]:
        """Every ref whose name starts with ``prefix``, sorted by name (a literal prefix: no wildcards)."""
        assert self._conn is not None
        upper = _upper_bound(prefix)
        if upper is None:
            rows = self._conn.execute("SELECT name, value FROM refs WHERE name >= ? ORDER BY name", (prefix,))
        else:
            rows = self._conn.execute(
                "SELECT name, value FROM refs WHERE name >= ? AND name < ? ORDER BY name", (prefix, upper)
            )
        return dict(rows.fetchall())

    @sqlite_method("writing")
    def update_refs(self, updates: list[RefUpdate]) -> None:
        """Apply compare-and-swap updates in one ``BEGIN IMMEDIATE`` transaction, all or nothing.

        ``ConflictError`` (nothing changed) when a ref does not hold its ``expected`` value.
        """
        checked = checked_refs(updates)
        if not checked:
            return
        with self._write_transaction() as conn:
            for update in checked:
                swap(conn, update)
