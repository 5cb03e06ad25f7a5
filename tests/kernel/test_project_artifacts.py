"""One put and get over two homes: small files inline in the project store, larger ones in the artifact store."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from cairn.errors import IntegrityError, NotFoundError, ValidationError
from cairn.project_artifacts import INLINE, STORE, ProjectArtifacts
from cairn.testing.memory import MemoryStore
from cairn.testing.memory_artifacts import MemoryArtifactStore


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def artifacts(tmp_path: Path) -> ProjectArtifacts:
    return ProjectArtifacts(MemoryStore(), MemoryArtifactStore(), inline_max_bytes=16, data_dir=tmp_path / ".cairn")


class OneByteAtATime(io.RawIOBase):
    """A stream that hands out one byte per read, as a slow pipe might."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        if not self.data:
            return 0
        buffer[0:1], self.data = self.data[:1], self.data[1:]
        return 1


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 100])
@pytest.mark.parametrize("as_stream", [False, True])
def test_size_routes_each_file_and_the_hash_is_the_same_either_way(
    artifacts: ProjectArtifacts, tmp_path: Path, size: int, as_stream: bool
) -> None:
    data = bytes(range(size)) if size < 256 else os.urandom(size)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    record = artifacts.put(OneByteAtATime(data) if as_stream else path, name="file.bin")
    assert record.hash == sha(data) and record.size == size
    expected = INLINE if size <= 16 else STORE
    assert record.inline is (expected == INLINE)
    assert artifacts.where(record.hash) == expected
    assert artifacts.read_bytes(record.hash) == data
    assert artifacts.stat(record.hash)[0].size == size
    info, where = artifacts.verify(record.hash)
    assert (info.hash, info.size, where) == (record.hash, size, expected)
    assert [(i.hash, where) for i, where in artifacts.list_all()] == [(record.hash, expected)]
    assert artifacts.store.has(record.hash) is (expected == STORE)


def test_zero_sends_everything_to_the_artifact_store(tmp_path: Path) -> None:
    artifacts = ProjectArtifacts(MemoryStore(), MemoryArtifactStore(), inline_max_bytes=0)
    record = artifacts.put(io.BytesIO(b""), name="empty")
    assert not record.inline and artifacts.where(record.hash) == STORE


def test_records_name_who_and_what_for(artifacts: ProjectArtifacts) -> None:
    first = artifacts.put(io.BytesIO(b"chart"), name="chart.png")
    artifacts.user = "ann"
    second = artifacts.put(io.BytesIO(b"chart"), name="figure 1", mime="IMAGE/PNG", referrer="run:r-1")
    assert first.mime == "image/png" and second.mime == "image/png"
    assert (second.user, second.referrer) == ("ann", "run:r-1")
    assert [r.name for r in artifacts.records()] == ["figure 1", "chart.png"]
    assert [r.name for r in artifacts.names_of(first.hash)] == ["chart.png", "figure 1"]
    assert artifacts.newest_artifact() == first.hash
    with pytest.raises(ValidationError):
        artifacts.put(io.BytesIO(b"x"), name="x", referrer="../../etc")


def test_copy_to_writes_inline_and_stored_files(artifacts: ProjectArtifacts, tmp_path: Path) -> None:
    for data in (b"small", b"large enough for the store" * 10):
        digest = artifacts.put(io.BytesIO(data), name="f").hash
        out = tmp_path / f"out-{digest[:8]}"
        with open(out, "w+b") as handle:
            assert artifacts.copy_to(digest, handle.fileno()) == len(data)
        assert out.read_bytes() == data


def test_damaged_inline_bytes_are_an_integrity_error(artifacts: ProjectArtifacts) -> None:
    digest = artifacts.put(io.BytesIO(b"small"), name="f").hash
    artifacts.meta.inline[digest] = b"tampered"  # type: ignore[attr-defined]
    for read in (artifacts.read_bytes, artifacts.verify, artifacts.stat):
        with pytest.raises(IntegrityError, match=f"artifact {digest}"):
            read(digest)


def test_resolve_finds_prefixes_in_both_homes(artifacts: ProjectArtifacts) -> None:
    small = artifacts.put(io.BytesIO(b"small"), name="s").hash
    large = artifacts.put(io.BytesIO(b"x" * 100), name="l").hash
    assert artifacts.resolve(small[:6]) == small and artifacts.resolve(large[:6]) == large
    assert artifacts.resolve("@last") == large
    absent = next(p for p in ("0000", "1111", "2222") if not small.startswith(p) and not large.startswith(p))
    with pytest.raises(NotFoundError):
        artifacts.resolve(absent)
    with pytest.raises(ValidationError, match="at least 4"):
        artifacts.resolve("ab")
    with pytest.raises(NotFoundError, match="no artifact"):
        artifacts.stat("f" * 64)


def test_snapshots_are_recorded_with_their_referrer(artifacts: ProjectArtifacts, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "a.txt").write_text("a\n")
    result, record = artifacts.snapshot(work, referrer="run:r-2")
    assert (record.tree, record.files, record.referrer) == (result.hash, 1, "run:r-2")
    assert artifacts.snapshots() == [record] and artifacts.newest_snapshot() == result.hash
    assert [e.path for e in artifacts.load_tree(result.hash)] == ["a.txt"]


def test_the_artifact_store_is_opened_only_when_needed() -> None:
    opened = []

    def open_store() -> MemoryArtifactStore:
        opened.append(1)
        return MemoryArtifactStore()

    artifacts = ProjectArtifacts(MemoryStore(), open_store, inline_max_bytes=1024)
    digest = artifacts.put(io.BytesIO(b"inline only"), name="n").hash
    assert artifacts.read_bytes(digest) == b"inline only" and [r.name for r in artifacts.records()] == ["n"]
    assert opened == []
    artifacts.put(io.BytesIO(b"y" * 2000), name="big")
    assert opened == [1]
    artifacts.close()


def test_a_store_without_artifact_metadata_is_refused_by_name(tmp_path: Path) -> None:
    from cairn.config import load_config
    from cairn.errors import MissingFacetError
    from cairn.plugins import load_plugins
    from cairn.project_artifacts import open_project_artifacts
    from cairn.storage import Facet

    class ContextOnly(Facet):
        name = "context-only"

    (tmp_path / "cairn.toml").write_text("[cairn]\n")
    config = load_config(tmp_path)
    with pytest.raises(MissingFacetError, match="context-only.*artifact and snapshot records"):
        open_project_artifacts(
            ContextOnly(), config=config, plugins=load_plugins(entry_points=False), doing="cairn artifact put"
        )
