"""What the local store promises beyond the conformance suite: layout, atomic writes, a full disk, the plugin."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cairn_artifacts.store import STALE_TEMPORARY_S, LocalArtifactStore

from cairn.errors import ConfigError, IntegrityError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


def test_an_object_is_a_read_only_file_in_its_shard_and_no_temporary_is_left(store: LocalArtifactStore) -> None:
    info = store.put(io.BytesIO(b"hello"))
    path = store.objects / info.hash[:2] / info.hash
    assert path.read_bytes() == b"hello"
    assert stat.S_IMODE(path.stat().st_mode) & 0o222 == 0
    assert os.listdir(store.tmp) == []
    assert len(os.listdir(store.objects)) == 256


def test_putting_again_repairs_a_truncated_object(store: LocalArtifactStore) -> None:
    data = b"precious bytes\n" * 1000
    info = store.put(io.BytesIO(data))
    path = store.objects / info.hash[:2] / info.hash
    os.chmod(path, 0o644)
    path.write_bytes(data[:100])
    with pytest.raises(IntegrityError, match=info.hash):
        store.verify(info.hash)
    store.put(io.BytesIO(data))
    assert store.verify(info.hash).size == len(data)


def test_an_object_replaced_by_a_symlink_is_refused(store: LocalArtifactStore, tmp_path: Path) -> None:
    info = store.put(io.BytesIO(b"real"))
    path = store.objects / info.hash[:2] / info.hash
    outside = tmp_path / "outside"
    outside.write_bytes(b"real")
    path.unlink()
    path.symlink_to(outside)
    with pytest.raises(IntegrityError, match="symbolic link"):
        store.open(info.hash)


def test_a_batch_writes_every_object_once(store: LocalArtifactStore) -> None:
    with store.batch() as batch:
        first = [batch.put(io.BytesIO(b"twice")) for _ in range(2)]
        with store.batch() as inner:  # a nested batch joins the outer one
            inner.put(io.BytesIO(b"inner"))
    assert first[0].hash == first[1].hash == sha(b"twice")
    assert sorted(i.hash for i in store.list()) == sorted([sha(b"twice"), sha(b"inner")])
    assert os.listdir(store.tmp) == []


def test_stale_temporaries_are_swept_when_the_store_opens(store: LocalArtifactStore) -> None:
    stale = store.tmp / ".tmp-deadbeef"
    stale.write_bytes(b"from a writer that crashed")
    old = time.time() - STALE_TEMPORARY_S - 60
    os.utime(stale, (old, old))
    fresh = store.tmp / ".tmp-cafebabe"
    fresh.write_bytes(b"from a writer still at work")
    LocalArtifactStore(store.root)
    assert not stale.exists()
    assert fresh.exists()


def test_stray_files_in_a_shard_are_not_listed(store: LocalArtifactStore) -> None:
    info = store.put(io.BytesIO(b"object"))
    (store.objects / info.hash[:2] / "notes.txt").write_text("left by a person")
    assert [i.hash for i in store.list()] == [info.hash]


# A child process with a file size limit puts a file larger than it: the write fails with EFBIG
# (Python ignores SIGXFSZ, so the limit is an error, not a kill), which is what a full disk looks like.
# SIZE_MB decides whether the failing write is in the plain copy loop or in the pipeline's writer thread.
FULL_DISK_CHILD = r"""
import json, resource, sys, io
from cairn_artifacts.store import LocalArtifactStore
from cairn.errors import StorageError
store = LocalArtifactStore(sys.argv[1])
limit_mb, size_mb, from_path = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "path"
small = store.put(io.BytesIO(b"fits"))
source = io.BytesIO(b"x" * (size_mb << 20))
if from_path:  # a file on disk: copied by the kernel (copy_file_range) where it can be
    with open(sys.argv[1] + "-source.bin", "wb") as handle:
        handle.write(source.getvalue())
    source = sys.argv[1] + "-source.bin"
resource.setrlimit(resource.RLIMIT_FSIZE, (limit_mb << 20, limit_mb << 20))
try:
    store.put(source)
except StorageError as exc:
    print(json.dumps({"error": exc.message, "hint": exc.hint, "small": small.hash}))
else:
    print(json.dumps({"error": None}))
"""


@pytest.mark.parametrize(
    ("limit_mb", "size_mb", "source"),
    [(1, 3, "stream"), (6, 16, "stream"), (6, 16, "path")],
    ids=["plain-copy", "pipelined-copy", "kernel-copy"],
)
def test_a_full_disk_is_a_clear_error_and_leaves_nothing_half_written(
    tmp_path: Path, limit_mb: int, size_mb: int, source: str
) -> None:
    root = tmp_path / "artifacts"
    proc = subprocess.run(
        [sys.executable, "-c", FULL_DISK_CHILD, str(root), str(limit_mb), str(size_mb), source],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["error"] is not None, "the oversized put succeeded"
    assert "file size limit" in report["error"] and "nothing was kept" in report["error"]
    assert "free some space" in report["hint"]
    store = LocalArtifactStore(root)
    assert [i.hash for i in store.list()] == [report["small"]]
    assert os.listdir(store.tmp) == []


# -- the plugin ------------------------------------------------------------------------------


def test_the_plugin_registers_local_under_the_data_dir(cairn_env: Path) -> None:
    from cairn.artifacts import open_artifact_store
    from cairn.config import load_config
    from cairn.plugins import load_plugins

    plugins = load_plugins()
    assert "local" in plugins.artifact_stores
    assert plugins.info["artifacts"].registers == {"artifact_stores": ["local"]}
    (cairn_env / "cairn.toml").write_text("[artifacts]\nstore = 'local'\n")
    store = open_artifact_store(config=load_config(cairn_env), plugins=plugins)
    assert isinstance(store, LocalArtifactStore)
    assert store.root == (cairn_env / ".cairn" / "artifacts").resolve()


def test_an_absolute_path_is_used_as_given(cairn_env: Path, tmp_path: Path) -> None:
    from cairn.artifacts import open_artifact_store
    from cairn.config import load_config

    elsewhere = tmp_path / "shared-artifacts"
    (cairn_env / "cairn.toml").write_text(f"[artifacts.local]\npath = {json.dumps(str(elsewhere))}\n")
    store = open_artifact_store(config=load_config(cairn_env))
    assert store.location == str(elsewhere.resolve())


def test_an_unknown_key_names_the_table_and_the_valid_keys(cairn_env: Path) -> None:
    from cairn.artifacts import open_artifact_store
    from cairn.config import load_config

    (cairn_env / "cairn.toml").write_text("[artifacts.local]\nroot = '/tmp/x'\n")
    with pytest.raises(ConfigError, match=r"\[artifacts.local\] root") as caught:
        open_artifact_store(config=load_config(cairn_env))
    assert caught.value.hint is not None and "path" in caught.value.hint
