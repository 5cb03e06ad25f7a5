"""cairn-s3 beyond the conformance suite: multipart, config and credentials, S3's errors, throttling."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from cairn_s3.config import S3Config
from cairn_s3.plugin import create_store
from cairn_s3.store import S3ArtifactStore
from conftest import BUCKET, MiB
from s3_testkit import MotoServer, ThrottlingProxy

from cairn.errors import ConfigError, StorageError
from cairn.testing.artifact_suite import PatternStream, pattern_digest


@pytest.fixture
def store(s3_config: S3Config, request: pytest.FixtureRequest) -> Iterator[S3ArtifactStore]:
    opened = create_store(attrs.evolve(s3_config, prefix=f"unit/{request.node.name[:40]}"))
    try:
        yield opened
    finally:
        for info in list(opened.list()):
            opened.delete(info.hash)
        opened.close()


def test_large_objects_go_up_in_parts_and_small_ones_whole(store: S3ArtifactStore) -> None:
    big = store.put(PatternStream(12 * MiB + 5, 1))
    small = store.put(io.BytesIO(b"a small report"))
    big_head = store.client.head_object(Bucket=BUCKET, Key=store.prefix + big.hash)
    small_head = store.client.head_object(Bucket=BUCKET, Key=store.prefix + small.hash)
    assert big_head["ETag"].strip('"').endswith("-3")  # a multipart ETag: three 5 MiB parts
    assert "-" not in small_head["ETag"]
    assert big.hash == pattern_digest(12 * MiB + 5, 1)


def test_an_object_already_in_the_bucket_is_not_uploaded_again(store: S3ArtifactStore, moto: MotoServer) -> None:
    first = store.put(io.BytesIO(b"once"))
    with ThrottlingProxy(moto.port, throttle=None, methods=("PUT", "POST")) as proxy:
        via_proxy = create_store(attrs.evolve(store.config, endpoint_url=proxy.url))
        again = via_proxy.put(io.BytesIO(b"once"))  # a PUT would be refused: none is sent
        via_proxy.close()
    assert again.hash == first.hash
    assert proxy.throttled == 0 and proxy.seen >= 1


class ChangingSource(io.BytesIO):
    """A seekable source whose bytes change after the first read: a file written to during a put."""

    def seek(self, offset: int, whence: int = 0) -> int:
        if offset == 0 and self.tell() > 0:
            self.getbuffer()[0] ^= 0xFF
        return super().seek(offset, whence)


@pytest.mark.parametrize("size", [1000, 11 * MiB], ids=["whole", "multipart"])
def test_a_source_that_changes_during_the_put_is_refused_and_nothing_is_kept(store: S3ArtifactStore, size: int) -> None:
    with pytest.raises(StorageError, match="changed while it was being uploaded"):
        store.put(ChangingSource(PatternStream(size, 2).read()))
    assert list(store.list()) == []
    uploads = store.client.list_multipart_uploads(Bucket=BUCKET, Prefix=store.prefix).get("Uploads", [])
    assert uploads == [], "a failed multipart upload must be aborted"


def test_throttling_is_retried_with_backoff(s3_config: S3Config, moto: MotoServer) -> None:
    with ThrottlingProxy(moto.port, throttle=2, methods=("PUT",)) as proxy:
        store = create_store(attrs.evolve(s3_config, endpoint_url=proxy.url, max_attempts=4, prefix="throttled"))
        info = store.put(io.BytesIO(b"worth the wait"))
        assert store.read_bytes(info.hash) == b"worth the wait"
        store.delete(info.hash)
        store.close()
    assert proxy.throttled == 2


def test_throttling_that_never_ends_is_a_clear_error(s3_config: S3Config, moto: MotoServer) -> None:
    with ThrottlingProxy(moto.port, throttle=None, methods=("PUT",)) as proxy:
        store = create_store(attrs.evolve(s3_config, endpoint_url=proxy.url, max_attempts=2, prefix="throttled"))
        with pytest.raises(StorageError, match="kept throttling") as caught:
            store.put(io.BytesIO(b"never stored"))
        store.close()
    assert "max_attempts" in (caught.value.hint or "")
    assert proxy.throttled == 2


def test_a_missing_bucket_is_named(s3_config: S3Config) -> None:
    store = create_store(attrs.evolve(s3_config, bucket="cairn-no-such-bucket"))
    for call in (lambda: store.put(io.BytesIO(b"x")), lambda: list(store.list()), lambda: store.has("a" * 64)):
        with pytest.raises(StorageError, match="bucket 'cairn-no-such-bucket' does not exist") as caught:
            call()
        assert "never creates buckets" in (caught.value.hint or "")


def test_access_denied_names_the_variables_to_check(monkeypatch: pytest.MonkeyPatch, s3_config: S3Config) -> None:
    monkeypatch.setenv("CAIRN_TEST_KEY_ID", "AKIDNOTKNOWNHERE")
    monkeypatch.setenv("CAIRN_TEST_SECRET", "not-the-secret")
    with MotoServer(enforce_auth=True) as guarded:
        config = attrs.evolve(
            s3_config, endpoint_url=guarded.url, access_key_env="CAIRN_TEST_KEY_ID", secret_key_env="CAIRN_TEST_SECRET"
        )
        store = create_store(config)
        with pytest.raises(StorageError, match="access denied") as caught:
            store.put(io.BytesIO(b"x"))
        store.close()
    assert "$CAIRN_TEST_KEY_ID" in (caught.value.hint or "")
    assert "not-the-secret" not in str(caught.value)


def test_an_unreachable_endpoint_is_a_clear_error(s3_config: S3Config) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = create_store(
        attrs.evolve(s3_config, endpoint_url=f"http://127.0.0.1:{port}", max_attempts=1, connect_timeout_s=2)
    )
    with pytest.raises(StorageError, match="cannot reach"):
        store.has("a" * 64)


# -- configuration and credentials -----------------------------------------------------------------


def test_a_missing_credential_variable_is_named(monkeypatch: pytest.MonkeyPatch, s3_config: S3Config) -> None:
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ConfigError, match="AWS_SECRET_ACCESS_KEY is not set") as caught:
        create_store(s3_config)
    assert caught.value.key == "secret_key_env"


def test_no_bucket_is_a_config_error(s3_config: S3Config) -> None:
    with pytest.raises(ConfigError, match="no bucket") as caught:
        create_store(attrs.evolve(s3_config, bucket=""))
    assert caught.value.table == "artifacts.s3" and caught.value.key == "bucket"


SECRETS = {
    "access_key_env": "AKIAIOSFODNN7EXAMPLE",
    "secret_key_env": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


@pytest.mark.parametrize("key", sorted(SECRETS))
def test_a_literal_secret_in_toml_is_refused_and_never_echoed(cairn_env: Path, key: str) -> None:
    from cairn.artifacts import open_artifact_store
    from cairn.config import load_config

    secret = SECRETS[key]
    (cairn_env / "cairn.toml").write_text(
        f'[artifacts]\nstore = "s3"\n\n[artifacts.s3]\nbucket = "{BUCKET}"\n{key} = {json.dumps(secret)}\n'
    )
    with pytest.raises(ConfigError, match="must name an environment variable") as caught:
        open_artifact_store(config=load_config(cairn_env))
    assert caught.value.key == key and caught.value.line == 6
    assert secret not in str(caught.value) and secret not in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("bucket", "Bad_Bucket", "bucket must be a bucket name"),
        ("prefix", "../escape", "relative key prefix"),
        ("prefix", "/rooted", "relative key prefix"),
        ("endpoint_url", "ftp://example", r"an http\(s\) URL"),
        ("endpoint_url", "https://user:pw@example.org", "must not carry credentials"),
        ("part_size", 1024, "between 5 MiB"),
        ("addressing_style", "sideways", "addressing_style"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(key: str, value: object, problem: str) -> None:
    with pytest.raises((ValueError, TypeError), match=problem):
        S3Config(**{key: value})  # type: ignore[arg-type]


def test_the_prefix_shapes_the_keys() -> None:
    assert S3Config(prefix="").key_prefix == ""
    assert S3Config(prefix="team/cairn/").key_prefix == "team/cairn/"
    assert S3Config(prefix="team/cairn").key_prefix == "team/cairn/"


def test_the_plugin_registers_s3_and_builds_it_from_toml(cairn_env: Path, moto: MotoServer) -> None:
    from cairn.artifacts import open_artifact_store
    from cairn.config import load_config
    from cairn.plugins import load_plugins

    plugins = load_plugins()
    assert plugins.info["s3"].registers == {"artifact_stores": ["s3"]}
    (cairn_env / "cairn.toml").write_text(
        "[artifacts]\nstore = 's3'\n\n[artifacts.s3]\n"
        f"bucket = '{BUCKET}'\nprefix = 'from-toml'\nendpoint_url = '{moto.url}'\nregion = 'us-east-1'\n"
        "addressing_style = 'path'\n"
    )
    store = open_artifact_store(config=load_config(cairn_env), plugins=plugins)
    assert isinstance(store, S3ArtifactStore)
    info = store.put(io.BytesIO(b"configured"))
    assert info.hash == hashlib.sha256(b"configured").hexdigest()
    assert store.location.startswith(f"s3://{BUCKET}/from-toml/objects/")
    # Only the artifact tables: this env installs no storage backend, which the default [cairn] names.
    assert [p for p in plugins.check_config(load_config(cairn_env)) if p.table.startswith("artifacts")] == []
    store.delete(info.hash)
    store.close()
