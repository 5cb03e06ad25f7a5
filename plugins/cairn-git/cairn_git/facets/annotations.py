"""The annotations facet: one file per annotation in the catalog, ``annotations/<t[:2]>/<t>/<id>``.

Adding is a catalog commit published by compare-and-swap (retried while
other writers win); reads come from the catalog index.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Sequence

from cairn.errors import IntegrityError, ValidationError
from cairn.model import Annotation, Priority
from cairn.storage import AnnotationStore
from cairn_git._base import MAX_ATTEMPTS, checked_keys, locked, writing
from cairn_git._catalog import annotation_bytes, annotation_path
from cairn_git._context import ContextBase
from cairn_git._git import BLOB_MODE

__all__ = ["GitAnnotations"]


class GitAnnotations(ContextBase, AnnotationStore):
    """``AnnotationStore`` over the catalog."""

    _added: itertools.count[int]  # orders annotations added with equal times

    def _init_facet(self) -> None:
        super()._init_facet()
        self._added = itertools.count()

    @writing
    def add_annotations(self, annotations: Sequence[Annotation]) -> None:
        """Append annotations, idempotent by id; all or nothing (``IntegrityError`` if a target is not stored)."""
        items = list(annotations)
        for item in items:
            if not isinstance(item, Annotation):
                raise ValidationError(
                    f"expected a cairn.model.Annotation, got {type(item).__name__}", what="add_annotations"
                )
        if not items:
            return
        self._add_annotations([(a, a.id) for a in items])

    def _add_annotations(self, stamped: list[tuple[Annotation, str]]) -> None:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._backoff(attempt)
            catalog = self._refresh()
            for annotation, _ in stamped:
                if annotation.target not in catalog.commits:
                    error = IntegrityError(
                        f"cannot annotate commit {annotation.target[:12]}: it is not stored",
                        hint="annotate stored commits only; nothing was written",
                    )
                    error.missing = annotation.target  # type: ignore[attr-defined]  # an extra fact for callers
                    raise error
            edits: dict[str, tuple[str, str] | None] = {}
            fresh = []
            base = time.time_ns()
            for annotation, annotation_id in stamped:
                if annotation_id in catalog.note_ids or annotation_path(annotation.target, annotation_id) in edits:
                    continue
                # ``added`` orders annotations with equal times: later adds sort later.
                added = f"{base:020d}.{next(self._added):012d}"
                oid = self._writer.blob(annotation_bytes(annotation, added))
                edits[annotation_path(annotation.target, annotation_id)] = (BLOB_MODE, oid)
                fresh.append((annotation, added, annotation_id))
            if not edits:
                return
            commit, root, failure = self._publish_catalog(catalog, edits, f"cairn: {len(fresh)} annotations")
            if failure is None:
                for annotation, added, annotation_id in fresh:
                    catalog.add_note(annotation, added, annotation_id)
                catalog.commit_oid, catalog.root = commit, root
                self._after_write()
                return
        raise self._give_up("adding annotations", None)

    @locked
    def latest_annotations(self, targets: Iterable[str], *, as_of: str | None = None) -> dict[str, Annotation]:
        """For each target, its latest annotation with ``created_at <= as_of``."""
        keys = checked_keys(targets, "latest_annotations")
        catalog = self._refresh()
        out = {}
        for target in keys:
            latest = catalog.latest(target, as_of)
            if latest is not None:
                out[target] = latest
        return out

    @locked
    def annotation_history(self, target: str) -> list[Annotation]:
        """Every annotation of ``target``, oldest first (ties in the order they were added)."""
        return self._refresh().history(target)

    @locked
    def annotated(self, priority: Priority, *, as_of: str | None = None) -> dict[str, Annotation]:
        """Every target whose latest annotation as of ``as_of`` has ``priority``."""
        return self._refresh().annotated(Priority(priority), as_of)
