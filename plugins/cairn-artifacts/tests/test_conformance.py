"""cairn-artifacts runs the artifact-store conformance suite unchanged."""

from __future__ import annotations

import os

import pytest
from cairn_artifacts.store import LocalArtifactStore, open_in_directory

from cairn.artifacts import ArtifactStore
from cairn.testing.artifact_suite import ArtifactStoreConformance, ArtifactStoreOpener, Tamper


def overwrite_object(store: ArtifactStore, digest: str, data: bytes) -> None:
    """Rewrite an object file in place, behind the store's back (objects are read-only: a tool would chmod)."""
    assert isinstance(store, LocalArtifactStore)
    path = store.objects / digest[:2] / digest
    os.chmod(path, 0o644)
    path.write_bytes(data)


class TestLocalConformance(ArtifactStoreConformance):
    @pytest.fixture
    def artifact_store_opener(self) -> ArtifactStoreOpener:
        return open_in_directory

    @pytest.fixture
    def tamper(self) -> Tamper:
        return overwrite_object
