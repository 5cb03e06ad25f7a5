"""cairn-postgres runs, unchanged, the conformance suite of every facet it declares.

``StoreConformance`` is every wave-1 facet's suite; the facet check it
inherits fails this class if the store ever declares a facet whose suite is
not among its bases. Each test directory gets a schema of its own in the
session's database (``cairn_postgres.testing.open_in_directory``).
"""

from __future__ import annotations

import pytest
from cairn_postgres.store import PostgresStore
from cairn_postgres.testing import open_in_directory

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
    """Tamper with a stored blob behind the store's back (what a bad tool or a bad disk would do)."""
    import psycopg

    assert isinstance(store, PostgresStore)
    with psycopg.connect(store.dsn, autocommit=True) as conn:
        conn.execute(f"UPDATE {store.schema}.blobs SET data = %s WHERE hash = %s", (data, digest))


class TestPostgresConformance(
    StoreConformance,
    ArtifactMetaConformance,
    NoncesConformance,
    GovernanceConformance,
    VectorsConformance,
    DocumentsConformance,
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
