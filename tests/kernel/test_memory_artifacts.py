"""The in-memory artifact store passes the conformance suite (the parts that need no disk or second process)."""

from __future__ import annotations

import pytest

from cairn.artifacts import ArtifactStore
from cairn.testing.artifact_suite import ArtifactStoreConformance, ArtifactStoreOpener, Tamper
from cairn.testing.memory_artifacts import MemoryArtifactStore, open_in_directory


def replace_bytes(store: ArtifactStore, digest: str, data: bytes) -> None:
    assert isinstance(store, MemoryArtifactStore)
    store.objects[digest] = (data, store.objects[digest][1])


class TestMemoryConformance(ArtifactStoreConformance):
    persistent = False
    stream_memory_limit = None

    @pytest.fixture
    def artifact_store_opener(self) -> ArtifactStoreOpener:
        return open_in_directory

    @pytest.fixture
    def tamper(self) -> Tamper:
        return replace_bytes
