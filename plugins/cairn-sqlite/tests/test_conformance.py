"""cairn-sqlite runs the storage conformance suite unchanged."""

from __future__ import annotations

import pytest
from cairn_sqlite.store import SqliteStore, open_in_directory

from cairn.storage import Store
from cairn.testing.storage import CorruptBlob, StoreConformance, StoreOpener


def overwrite_blob(store: Store, digest: str, data: bytes) -> None:
    """Tamper with a stored blob behind the store's back (what bit rot or a bad tool would do)."""
    assert isinstance(store, SqliteStore)
    store.db.execute("UPDATE blobs SET data = ? WHERE hash = ?", (data, digest))


class TestSqliteConformance(StoreConformance):
    @pytest.fixture
    def store_opener(self) -> StoreOpener:
        return open_in_directory

    @pytest.fixture
    def corrupt_blob(self) -> CorruptBlob:
        return overwrite_blob
