"""The annotations facet on SQLite: append-only priority records in the ``annotations`` table.

The latest annotation of a target is the one with the greatest
(``created_at``, ``seq``); ``seq`` is the rowid, so ties go to the one added
last. Every read is one statement over the ``annotations_target_time`` index.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from cairn.errors import IntegrityError, ValidationError
from cairn.model import Annotation, Priority
from cairn.storage import AnnotationStore
from cairn_sqlite.connection import SqliteConnection, distinct, sqlite_method
from cairn_sqlite.objects import KNOWN_COMMITS

__all__ = ["SqliteAnnotations"]

_LATEST_FOR = """
SELECT a.target, a.priority, a.reason, a.created_at
FROM json_each(?) AS t
JOIN annotations AS a ON a.seq = (
    SELECT b.seq FROM annotations AS b
    WHERE b.target = t.value{as_of}
    ORDER BY b.created_at DESC, b.seq DESC LIMIT 1
)
"""
_ANNOTATED = """
SELECT a.target, a.priority, a.reason, a.created_at
FROM (SELECT DISTINCT target FROM annotations WHERE priority = ?{as_of}) AS t
JOIN annotations AS a ON a.seq = (
    SELECT b.seq FROM annotations AS b
    WHERE b.target = t.target{as_of_b}
    ORDER BY b.created_at DESC, b.seq DESC LIMIT 1
)
WHERE a.priority = ?
ORDER BY a.target
"""
_HISTORY = "SELECT target, priority, reason, created_at FROM annotations WHERE target = ? ORDER BY created_at, seq"
_INSERT_ANNOTATION = (
    "INSERT OR IGNORE INTO annotations (id, target, priority, reason, created_at) VALUES (?, ?, ?, ?, ?)"
)


def _annotation_from_row(row: Sequence[Any]) -> Annotation:
    return Annotation(target=row[0], priority=Priority(row[1]), reason=row[2], created_at=row[3])


class SqliteAnnotations(SqliteConnection, AnnotationStore):
    """``AnnotationStore`` over the ``annotations`` table."""

    @sqlite_method("adding annotations")
    def add_annotations(self, annotations: Sequence[Annotation]) -> None:
        """Append annotations, idempotent by id; all or nothing.

        ``IntegrityError`` (nothing written) when a target is not a stored commit.
        """
        items = list(annotations)
        for item in items:
            if not isinstance(item, Annotation):
                raise ValidationError(
                    f"expected a cairn.model.Annotation, got {type(item).__name__}", what="add_annotations"
                )
        if not items:
            return
        targets = distinct((a.target for a in items), "add_annotations")
        rows = [(a.id, a.target, a.priority.value, a.reason, a.created_at) for a in items]
        with self._write_transaction() as conn:
            known = {h for (h,) in conn.execute(KNOWN_COMMITS, (json.dumps(targets),))}
            missing = [t for t in targets if t not in known]
            if missing:
                error = IntegrityError(
                    f"cannot annotate commit {missing[0][:12]}: it is not stored",
                    hint="annotate stored commits only; nothing was written",
                )
                error.missing = missing[0]  # type: ignore[attr-defined]  # an extra fact for callers
                raise error
            conn.executemany(_INSERT_ANNOTATION, rows)

    @sqlite_method("reading annotations")
    def latest_annotations(self, targets: Iterable[str], *, as_of: str | None = None) -> dict[str, Annotation]:
        """For each target, its latest annotation with ``created_at <= as_of``; one statement."""
        keys = distinct(targets, "latest_annotations")
        if not keys:
            return {}
        assert self._conn is not None
        if as_of is None:
            rows = self._conn.execute(_LATEST_FOR.format(as_of=""), (json.dumps(keys),))
        else:
            rows = self._conn.execute(_LATEST_FOR.format(as_of=" AND b.created_at <= ?"), (json.dumps(keys), as_of))
        return {row[0]: _annotation_from_row(row) for row in rows}

    @sqlite_method("reading annotations")
    def annotation_history(self, target: str) -> list[Annotation]:
        """Every annotation of ``target``, oldest first (ties in the order they were added)."""
        assert self._conn is not None
        return [_annotation_from_row(r) for r in self._conn.execute(_HISTORY, (target,))]

    @sqlite_method("reading annotations")
    def annotated(self, priority: Priority, *, as_of: str | None = None) -> dict[str, Annotation]:
        """Every target whose latest annotation as of ``as_of`` has ``priority``, by target."""
        value = Priority(priority).value
        assert self._conn is not None
        if as_of is None:
            sql = _ANNOTATED.format(as_of="", as_of_b="")
            params: tuple[Any, ...] = (value, value)
        else:
            sql = _ANNOTATED.format(as_of=" AND created_at <= ?", as_of_b=" AND b.created_at <= ?")
            params = (value, as_of, as_of, value)
        return {row[0]: _annotation_from_row(row) for row in self._conn.execute(sql, params)}
