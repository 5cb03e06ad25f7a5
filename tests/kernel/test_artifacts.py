"""The artifact-store extension point: the [artifacts] table, the registry, the contract's helpers, durable writes."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.artifacts import VerifyingReader, check_digest, open_artifact_store
from cairn.config import MAX_INLINE_BYTES, ArtifactsSettings, load_config
from cairn.errors import ConfigError, IntegrityError, NotFoundError, ValidationError
from cairn.hookspecs import hookimpl
from cairn.plugins import load_plugins
from cairn.testing.memory_artifacts import MemoryArtifactStore


def load(directory: Path, text: str) -> Any:
    (directory / "cairn.toml").write_text(text, encoding="utf-8")
    return load_config(directory, environ={"CAIRN_USER_CONFIG": ""})


class MemoryStorePlugin:
    """A plugin registering the in-memory store as ``memory``, through the public hook."""

    @hookimpl
    def cairn_register_artifact_stores(self, register: Callable[..., None]) -> None:
        register("memory", lambda config, context: MemoryArtifactStore(), description="in memory")


# -- the [artifacts] table ----------------------------------------------------------------------


def test_the_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, "")
    assert config.settings("artifacts", ArtifactsSettings) == ArtifactsSettings("local", 64 * 1024)


@pytest.mark.parametrize("value", [-1, MAX_INLINE_BYTES + 1, '"64k"'])
def test_a_bad_inline_max_bytes_names_the_file_table_key_and_line(tmp_path: Path, value: object) -> None:
    config = load(tmp_path, f"[artifacts]\nstore = 'local'\ninline_max_bytes = {value}\n")
    with pytest.raises(ConfigError) as caught:
        config.settings("artifacts", ArtifactsSettings)
    assert (caught.value.table, caught.value.key, caught.value.line) == ("artifacts", "inline_max_bytes", 3)
    assert caught.value.file == str((tmp_path / "cairn.toml").resolve())


def test_store_tables_sit_beside_the_kernel_keys(tmp_path: Path) -> None:
    config = load(tmp_path, "[artifacts]\nstore = 'memory'\n\n[artifacts.memory]\n")
    assert config.settings("artifacts", ArtifactsSettings).store == "memory"
    assert config.validate() == []
    with pytest.raises(ConfigError, match="colour"):
        load(tmp_path, "[artifacts]\ncolour = 'red'\n").settings("artifacts", ArtifactsSettings)


def test_validate_reports_an_unknown_store_only_when_one_was_chosen(tmp_path: Path, cairn_env: Path) -> None:
    plugins = load_plugins(entry_points=False)

    def problems(text: str) -> list[ConfigError]:
        return [p for p in plugins.check_config(load(tmp_path, text)) if (p.table or "").startswith("artifacts")]

    assert problems("") == []  # the default needs no store installed until artifacts are used
    chosen = problems("[artifacts]\nstore = 'nowhere'\n")
    assert [(p.table, p.key, p.line) for p in chosen] == [("artifacts", "store", 2)]
    assert "no artifact store called 'nowhere'" in chosen[0].message
    assert [p.table for p in problems("[artifacts.ghost]\nx = 1\n")] == ["artifacts.ghost"]


def test_a_store_registered_through_the_hook_is_opened_by_name(tmp_path: Path, cairn_env: Path) -> None:
    plugins = load_plugins(entry_points=False)
    assert plugins.register(MemoryStorePlugin(), "memory-plugin")
    assert plugins.artifact_stores.names() == ["memory"]
    config = load(tmp_path, "[artifacts]\nstore = 'memory'\n")
    assert [p for p in plugins.check_config(config) if p.table == "artifacts"] == []
    store = open_artifact_store(config=config, plugins=plugins)
    assert isinstance(store, MemoryArtifactStore)
    assert plugins.info["memory-plugin"].registers == {"artifact_stores": ["memory"]}


def test_no_installed_store_says_what_to_install(tmp_path: Path, cairn_env: Path) -> None:
    plugins = load_plugins(entry_points=False)
    with pytest.raises(NotFoundError, match="artifact store 'local'") as caught:
        open_artifact_store(config=load(tmp_path, ""), plugins=plugins)
    assert "pip install cairn-artifacts" in (caught.value.hint or "")


# -- hashes and verifying reads -------------------------------------------------------------------


@given(st.text(max_size=70))
def test_only_full_lowercase_sha256_hex_is_a_hash(value: str) -> None:
    valid = len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    if valid:
        assert check_digest(value) == value
    else:
        with pytest.raises(ValidationError, match="SHA-256"):
            check_digest(value)


@given(st.binary(max_size=3000), st.integers(min_value=1, max_value=700))
def test_a_verifying_reader_hands_out_the_bytes_and_checks_them(data: bytes, chunk: int) -> None:
    digest = hashlib.sha256(data).hexdigest()
    reader = VerifyingReader(io.BytesIO(data), digest, len(data), where="test")
    out = bytearray()
    while piece := reader.read(chunk):
        out += piece
    assert bytes(out) == data


@given(st.binary(min_size=1, max_size=500), st.data())
def test_any_changed_byte_is_an_integrity_error(data: bytes, draw: st.DataObject) -> None:
    digest = hashlib.sha256(data).hexdigest()
    at = draw.draw(st.integers(min_value=0, max_value=len(data) - 1))
    damaged = bytearray(data)
    damaged[at] ^= draw.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises(IntegrityError, match=digest):
        VerifyingReader(io.BytesIO(bytes(damaged)), digest, len(data), where="test").read()
    with pytest.raises(IntegrityError, match="more than"):
        VerifyingReader(io.BytesIO(data + b"!"), digest, len(data), where="test").read()


# -- writing a user's file ----------------------------------------------------------------------------


def test_a_file_is_not_overwritten_unless_told(tmp_path: Path) -> None:
    from cairn.errors import FileError
    from cairn.files import atomic_write

    target = tmp_path / "out.bin"
    with atomic_write(target, binary=True, overwrite=False) as handle:
        handle.write(b"first")
    with pytest.raises(FileError, match="already exists"), atomic_write(target, binary=True, overwrite=False) as h:
        h.write(b"second")
    assert target.read_bytes() == b"first"
    with atomic_write(target, binary=True, overwrite=True) as handle:
        handle.write(b"second")
    assert target.read_bytes() == b"second"
    assert sorted(os.listdir(tmp_path)) == ["out.bin"]


def test_a_file_that_appears_meanwhile_is_not_clobbered(tmp_path: Path) -> None:
    from cairn.errors import FileError
    from cairn.files import atomic_write

    target = tmp_path / "out.bin"
    with pytest.raises(FileError, match="already exists"), atomic_write(target, binary=True, overwrite=False) as h:
        h.write(b"mine")
        target.write_bytes(b"someone else's")  # created while we were writing
    assert target.read_bytes() == b"someone else's"
    assert sorted(os.listdir(tmp_path)) == ["out.bin"]


def test_a_corrupt_object_leaves_no_file_and_no_temporary(tmp_path: Path) -> None:
    from cairn.files import atomic_write

    store = MemoryArtifactStore()
    digest = store.put(io.BytesIO(b"x" * 100)).hash
    store.objects[digest] = (b"y" * 100, store.objects[digest][1])
    with pytest.raises(IntegrityError), atomic_write(tmp_path / "out.bin", binary=True, overwrite=False) as handle:
        store.copy_to(digest, handle.fileno())
    assert os.listdir(tmp_path) == []


# -- the pipelined copy -------------------------------------------------------------------------------


@pytest.mark.parametrize("write_behind", [False, True])
def test_a_long_copy_is_exact_whether_or_not_it_flushes_behind(tmp_path: Path, write_behind: bool) -> None:
    from cairn.durable import PIPELINE_AFTER, copy_hashing
    from cairn.testing.artifact_suite import PatternStream, pattern_digest

    size = PIPELINE_AFTER * 3 + 12345
    out = tmp_path / "out.bin"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT)
    try:
        digest, copied = copy_hashing(PatternStream(size, 4), fd, write_behind=write_behind)
    finally:
        os.close(fd)
    assert (digest, copied) == (pattern_digest(size, 4), size)
    with open(out, "rb") as stream:
        assert hashlib.sha256(stream.read()).hexdigest() == digest


def test_a_source_failing_inside_the_pipeline_stops_it(tmp_path: Path) -> None:
    import threading

    from cairn.durable import PIPELINE_AFTER, copy_hashing
    from cairn.testing.artifact_suite import PatternStream, SourceBroke

    before = threading.active_count()
    fd = os.open(tmp_path / "out.bin", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(SourceBroke):
            copy_hashing(PatternStream(PIPELINE_AFTER * 4, 1, fail_after=PIPELINE_AFTER * 2), fd, write_behind=True)
    finally:
        os.close(fd)
    assert threading.active_count() == before, "the pipeline's threads outlived the copy"


def test_a_kernel_copy_hashes_exactly_what_it_wrote(tmp_path: Path) -> None:
    from cairn.durable import PIPELINE_AFTER, copy_file_hashing, open_temporary
    from cairn.testing.artifact_suite import PatternStream

    size = PIPELINE_AFTER * 5 + 3
    source = tmp_path / "source.bin"
    source.write_bytes(PatternStream(size, 8).read())
    fd, temporary = open_temporary(tmp_path)
    try:
        with open(source, "rb", buffering=0) as stream:
            result = copy_file_hashing(stream, fd, write_behind=True)
    finally:
        os.close(fd)
    if result is None:
        pytest.skip("this system has no copy_file_range")
    assert result == (hashlib.sha256(Path(temporary).read_bytes()).hexdigest(), size)
    assert Path(temporary).read_bytes() == source.read_bytes()
    with open(source, "rb", buffering=0) as stream, open(os.devnull, "wb") as sink:
        stream.seek(size - 10)  # short (what is left of) files and plain streams are left to the streaming copy
        assert copy_file_hashing(stream, sink.fileno()) is None
        assert copy_file_hashing(io.BytesIO(b"x" * size), sink.fileno()) is None
