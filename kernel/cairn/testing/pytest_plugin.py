"""pytest fixtures for cairn and its plugins (loaded through the ``pytest11`` entry point).

Kept light: importing this module imports nothing heavy, since pytest loads
it in every session of an environment where cairn is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest


@pytest.fixture
def cairn_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Isolate cairn from the machine: no user config file, no CAIRN_* variables, cwd in a temp dir."""
    import os

    for name in list(os.environ):
        if name.startswith("CAIRN"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CAIRN_USER_CONFIG", "")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    yield project


@pytest.fixture
def cairn_plugins(cairn_env: Path):
    """The installed plugins, freshly loaded (broken ones reported, not fatal)."""
    from cairn.plugins import load_plugins

    return load_plugins(strict=False)


@pytest.fixture
def fake_openai():
    """A fake OpenAI-compatible server on 127.0.0.1 (``cairn.testing.fake_openai``), stopped after the test."""
    from cairn.testing.fake_openai import FakeOpenAI

    with FakeOpenAI() as server:
        yield server
