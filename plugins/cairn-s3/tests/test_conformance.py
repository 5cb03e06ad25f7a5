"""cairn-s3 runs the artifact-store conformance suite unchanged, against moto's server on loopback."""

from __future__ import annotations

import pytest
from cairn_s3.config import S3Config
from cairn_s3.store import S3ArtifactStore, S3StoreOpener

from cairn.artifacts import ArtifactStore
from cairn.testing.artifact_suite import ArtifactStoreConformance, ArtifactStoreOpener, Tamper


def overwrite_object(store: ArtifactStore, digest: str, data: bytes) -> None:
    """Replace an object's bytes behind the store's back, as another S3 client could."""
    assert isinstance(store, S3ArtifactStore)
    store.client.put_object(Bucket=store.bucket, Key=store.prefix + digest, Body=data)


class TestS3Conformance(ArtifactStoreConformance):
    @pytest.fixture
    def artifact_store_opener(self, s3_config: S3Config) -> ArtifactStoreOpener:
        return S3StoreOpener(s3_config)

    @pytest.fixture
    def tamper(self) -> Tamper:
        return overwrite_object
