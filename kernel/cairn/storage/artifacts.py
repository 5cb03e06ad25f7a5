"""The artifact-metadata facet: records of artifacts and snapshots, and the bytes of small artifacts.

An artifact store (``cairn.artifacts``) knows objects by hash only. What
people and runs call them, what they were for and the list of snapshots
are kept here, in the project's store, so they travel with the rest of it
(``cairn ledger push`` on the git backend). Small artifacts (up to
``[artifacts] inline_max_bytes``) keep their bytes here too, beside their
records, named by the same SHA-256 they would have in the artifact store.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence

from cairn.model.artifacts import ArtifactRecord, SnapshotRecord
from cairn.storage._facet import Facet

__all__ = ["ArtifactMetaStore"]


class ArtifactMetaStore(Facet, abc.ABC):
    """Artifact records (names, media types, referrers), snapshot records, and inline artifact bytes.

    Records are append-only and identified by ``record.id`` (the SHA-256 of
    the record): adding a stored record again keeps one copy. Lists are
    newest first (ties: id descending). Only ``delete_artifacts`` (gc)
    removes anything.
    """

    facet = "artifact_meta"
    holds = "artifact and snapshot records"

    @abc.abstractmethod
    def add_artifact_records(
        self, records: Sequence[ArtifactRecord], *, inline: Mapping[str, bytes] | None = None
    ) -> None:
        """Store records and, in the same transaction, inline bytes (hash -> bytes); all or nothing.

        Bytes that do not hash to their key raise ``IntegrityError`` and
        nothing is written. Inline bytes already stored are kept as they are.
        Durable when it returns.
        """

    @abc.abstractmethod
    def artifact_records(self, *, hash: str | None = None, limit: int | None = None) -> list[ArtifactRecord]:
        """Artifact records newest first (ties: id descending); those naming ``hash`` when given."""

    @abc.abstractmethod
    def get_inline(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """The inline bytes of each hash kept here; others are left out. One round trip."""

    @abc.abstractmethod
    def inline_sizes(self) -> dict[str, int]:
        """Every inline object: hash -> size in bytes (for listing and gc)."""

    @abc.abstractmethod
    def add_snapshot_records(self, records: Sequence[SnapshotRecord]) -> None:
        """Store snapshot records; all or nothing; a stored record is kept once."""

    @abc.abstractmethod
    def snapshot_records(self, *, tree: str | None = None, limit: int | None = None) -> list[SnapshotRecord]:
        """Snapshot records newest first (ties: id descending); those of ``tree`` when given."""

    @abc.abstractmethod
    def delete_artifacts(self, hashes: Iterable[str]) -> int:
        """Forget the given hashes (gc): their inline bytes, the artifact records naming them and the
        snapshot records of those trees, in one transaction. Returns how many records and inline
        objects were removed."""
