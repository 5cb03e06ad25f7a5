"""pytest fixtures for cairn and its plugins (loaded through the ``pytest11`` entry point).

Kept light: importing this module imports nothing heavy, since pytest loads
it in every session of an environment where cairn is installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from cairn.plugins import Plugins
    from cairn.testing.fake_openai import FakeOpenAI
    from cairn.testing.sites import FakeSite


@pytest.fixture
def cairn_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Isolate cairn from the machine: no user config file, no CAIRN_* variables, its own cache directory
    (the kept ``cairn --help``), cwd in a temp dir."""
    import os

    for name in list(os.environ):
        if name.startswith("CAIRN"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CAIRN_USER_CONFIG", "")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    yield project


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cairn_env: Path) -> Iterator[FakeSite]:
    """A ``cairn.testing.sites.FakeSite`` on ``sys.path`` for this test: install fake plugin distributions."""
    from cairn.testing.sites import FakeSite

    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    site = FakeSite(root, monkeypatch)
    site.refresh()
    yield site
    site.forget_modules()


@pytest.fixture
def cairn_plugins(cairn_env: Path) -> Plugins:
    """The installed plugins, freshly loaded (broken ones reported, not fatal)."""
    from cairn.plugins import load_plugins

    return load_plugins(strict=False)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A fake OpenAI-compatible server on 127.0.0.1 (``cairn.testing.fake_openai``), stopped after the test."""
    from cairn.testing.fake_openai import FakeOpenAI

    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach the network: any connection to a non-loopback address fails the test.

    Use it as ``@pytest.fixture(autouse=True)`` in a conftest, or request it by name.
    """
    import socket

    real = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"a test tried to reach {host}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
