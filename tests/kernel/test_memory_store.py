"""The reference in-memory store passes the storage conformance suite."""

from __future__ import annotations

import pytest

from cairn.testing.memory import open_in_directory
from cairn.testing.storage import ArtifactMetaConformance, DocumentsConformance, StoreConformance, VectorsConformance


class TestMemoryStore(StoreConformance, ArtifactMetaConformance, VectorsConformance, DocumentsConformance):
    persistent = False

    @pytest.fixture
    def store_opener(self):
        return open_in_directory

    @pytest.fixture
    def corrupt_blob(self):
        def corrupt(store, digest, data):
            store.blobs[digest] = data

        return corrupt
