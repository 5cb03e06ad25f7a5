"""The annotations facet on PostgreSQL: append-only priority records in the ``annotations`` table.

The latest annotation of a target is the one with the greatest
(``created_at``, ``seq``); ``seq`` is an identity column, so ties go to the
one added last. Reads are one ``DISTINCT ON`` statement over the
``annotations_target_time`` index.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from cairn.errors import IntegrityError, ValidationError
from cairn.model import Annotation, Priority
from cairn.storage import AnnotationStore
from cairn_postgres.connection import PostgresConnection, distinct, pg_method

__all__ = ["PostgresAnnotations"]

_COLUMNS = "target, priority, reason, created_at"
_LATEST_FOR = (
    f"SELECT DISTINCT ON (target) {_COLUMNS} FROM annotations WHERE target = ANY(%s){{as_of}} "
    "ORDER BY target, created_at DESC, seq DESC"
)
_ANNOTATED = (
    f"SELECT {_COLUMNS} FROM (SELECT DISTINCT ON (target) {_COLUMNS} FROM annotations "
    "WHERE target IN (SELECT target FROM annotations WHERE priority = %s{as_of}){as_of} "
    "ORDER BY target, created_at DESC, seq DESC) AS latest WHERE priority = %s ORDER BY target"
)
_HISTORY = f"SELECT {_COLUMNS} FROM annotations WHERE target = %s ORDER BY created_at, seq"
_INSERT = (
    "INSERT INTO annotations (id, target, priority, reason, created_at) VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT (id) DO NOTHING"
)


def _annotation_from_row(row: Sequence[Any]) -> Annotation:
    return Annotation(target=row[0], priority=Priority(row[1]), reason=row[2], created_at=row[3])


class PostgresAnnotations(PostgresConnection, AnnotationStore):
    """``AnnotationStore`` over the ``annotations`` table."""

    @pg_method("adding annotations")
    def add_annotations(self, annotations: Sequence[Annotation]) -> None:
        """Append annotations, idempotent by id; all or nothing (``IntegrityError`` when a target is not stored)."""
        items = list(annotations)
        for item in items:
            if not isinstance(item, Annotation):
                raise ValidationError(
                    f"expected a cairn.model.Annotation, got {type(item).__name__}", what="add_annotations"
                )
            if "\x00" in item.reason:
                raise ValidationError("an annotation's reason cannot hold a NUL character", what="add_annotations")
        if not items:
            return
        targets = list(dict.fromkeys(a.target for a in items))
        rows = [(a.id, a.target, a.priority.value, a.reason, a.created_at) for a in items]

        def run(conn: psycopg.Connection[Any]) -> None:
            known = {h for (h,) in conn.execute("SELECT hash FROM commits WHERE hash = ANY(%s)", (targets,))}
            missing = [t for t in targets if t not in known]
            if missing:
                error = IntegrityError(
                    f"cannot annotate commit {missing[0][:12]}: it is not stored",
                    hint="annotate stored commits only; nothing was written",
                )
                error.missing = missing[0]  # type: ignore[attr-defined]  # an extra fact for callers
                raise error
            conn.cursor().executemany(_INSERT, rows)

        self._write(run)

    @pg_method("reading annotations")
    def latest_annotations(self, targets: Iterable[str], *, as_of: str | None = None) -> dict[str, Annotation]:
        """For each target, its latest annotation with ``created_at <= as_of``; one statement."""
        keys = distinct(targets, "latest_annotations")
        if not keys:
            return {}
        params: tuple[Any, ...] = (keys,) if as_of is None else (keys, as_of)
        sql = _LATEST_FOR.format(as_of="" if as_of is None else " AND created_at <= %s")
        rows = self._read(lambda conn: conn.execute(sql, params).fetchall())
        return {row[0]: _annotation_from_row(row) for row in rows}

    @pg_method("reading annotations")
    def annotation_history(self, target: str) -> list[Annotation]:
        """Every annotation of ``target``, oldest first (ties in the order they were added)."""
        if "\x00" in target:
            return []
        return [_annotation_from_row(r) for r in self._read(lambda conn: conn.execute(_HISTORY, (target,)).fetchall())]

    @pg_method("reading annotations")
    def annotated(self, priority: Priority, *, as_of: str | None = None) -> dict[str, Annotation]:
        """Every target whose latest annotation as of ``as_of`` has ``priority``, by target."""
        value = Priority(priority).value
        params: tuple[Any, ...] = (value, value) if as_of is None else (value, as_of, as_of, value)
        sql = _ANNOTATED.format(as_of="" if as_of is None else " AND created_at <= %s")
        rows = self._read(lambda conn: conn.execute(sql, params).fetchall())
        return {row[0]: _annotation_from_row(row) for row in rows}
