"""cairn-sqlite runs, unchanged, the conformance suite of every facet it declares.

``StoreConformance`` is every wave-1 facet's suite; the facet check it inherits fails
this class if the store ever declares a facet whose suite is not among its bases.
"""

from __future__ import annotations

import pytest
from cairn_sqlite.store import SqliteStore, open_in_directory

from cairn.storage import Store
from cairn.testing.sessions_suite import SessionsOverStore
from cairn.testing.storage import (
    ArtifactMetaConformance,
    CorruptBlob,
    DocumentsConformance,
    GovernanceConformance,
    NoncesConformance,
    StoreConformance,
    StoreOpener,
    VectorsConformance,
)


def overwrite_blob(store: Store, digest: str, data: bytes) -> None:
    """Tamper with a stored blob behind the store's back (what bit rot or a bad tool would do)."""
    assert isinstance(store, SqliteStore)
    store.db.execute("UPDATE blobs SET data = ? WHERE hash = ?", (data, digest))


class TestSqliteConformance(
    StoreConformance,
    ArtifactMetaConformance,
    VectorsConformance,
    DocumentsConformance,
    GovernanceConformance,
    NoncesConformance,
):
    @pytest.fixture
    def store_opener(self) -> StoreOpener:
        return open_in_directory

    @pytest.fixture
    def corrupt_blob(self) -> CorruptBlob:
        return overwrite_blob


class TestSessionsOverThisStore(SessionsOverStore):
    """Sessions and checkpoints are commits and refs: this store keeps them with no code of its own."""

    @pytest.fixture
    def store_opener(self):  # type: ignore[no-untyped-def]
        return open_in_directory
