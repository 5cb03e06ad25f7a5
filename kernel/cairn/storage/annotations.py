"""The annotations facet: append-only priority records on commits."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence

from cairn.model import Annotation, Priority
from cairn.storage._facet import Facet

__all__ = ["AnnotationStore"]


class AnnotationStore(Facet, abc.ABC):
    """Priority records (skip / normal / pinned); the latest as of a time applies."""

    facet = "annotations"
    holds = "priority annotations"

    @abc.abstractmethod
    def add_annotations(self, annotations: Sequence[Annotation]) -> None:
        """Append annotations (idempotent by ``Annotation.id``). Targets must be stored commits."""

    @abc.abstractmethod
    def latest_annotations(self, targets: Iterable[str], *, as_of: str | None = None) -> dict[str, Annotation]:
        """For each target, its latest annotation with ``created_at <= as_of`` (all, if None); one round trip."""

    @abc.abstractmethod
    def annotation_history(self, target: str) -> list[Annotation]:
        """Every annotation of ``target``, oldest first."""

    @abc.abstractmethod
    def annotated(self, priority: Priority, *, as_of: str | None = None) -> dict[str, Annotation]:
        """Every target whose latest annotation (as of ``as_of``) has ``priority``."""
