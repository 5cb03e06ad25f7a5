"""Shared fixtures: moto's S3 server on loopback for the session, a bucket, credentials by variable name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cairn_s3.config import S3Config
from s3_testkit import MotoServer

BUCKET = "cairn-test"
MiB = 1 << 20


@pytest.fixture(autouse=True)
def _no_network(loopback_only: None) -> None:
    """Every test here runs with cairn.testing's loopback_only guard."""


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Test credentials in the default variables; no AWS config file, profile or proxy of the machine's."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=server.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_bucket(Bucket=BUCKET)
        client.close()
        yield server


@pytest.fixture
def s3_config(moto: MotoServer) -> S3Config:
    """A store on the test bucket; parts at S3's 5 MiB minimum so multipart uploads happen at test sizes."""
    return S3Config(
        bucket=BUCKET,
        prefix="tests",
        endpoint_url=moto.url,
        region="us-east-1",
        addressing_style="path",
        multipart_threshold=5 * MiB,
        part_size=5 * MiB,
        max_attempts=3,
    )
