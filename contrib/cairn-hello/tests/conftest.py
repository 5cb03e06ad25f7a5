"""Fixtures: the installed ``cairn`` script, and the CLI's state over an in-memory store.

The ``cairn_env`` fixture comes from cairn's own pytest plugin (installed with
the kernel): no user config, no ``CAIRN_*`` variables, cwd in a temp project.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from cairn.cli import State, cli
from cairn.repo import Repo
from cairn.storage import Store
from cairn.testing.fakes import WordTokenizer
from cairn.testing.memory import MemoryStore

#: The distribution's own directory (holds pyproject.toml).
PROJECT_DIR = Path(__file__).resolve().parent.parent


def cairn_command() -> list[str]:
    """The installed ``cairn`` console script beside this interpreter, or ``python -m cairn``."""
    script = Path(sys.executable).with_name("cairn")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "cairn"]


def run_cairn(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run the real ``cairn`` in a subprocess, isolated from the machine's cairn settings."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN")}
    environ["CAIRN_USER_CONFIG"] = ""
    environ.update(env or {})
    return subprocess.run(
        [*cairn_command(), *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class MemoryState(State):
    """The CLI's shared state with the repository over a given in-memory store.

    Plugins and config load exactly as the real CLI loads them; only the store
    and the tokenizer are swapped, so these tests need no storage or
    tokenizer plugin installed.
    """

    def __init__(self, store: Store, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self._store = store  # State.store then serves it instead of opening the configured one
        self._memory_repo: Repo | None = None

    @property
    def repo(self) -> Repo:
        if self._memory_repo is None:
            self._memory_repo = Repo(
                self.store,
                WordTokenizer(),
                self.plugins.content_types,
                hooks=self.plugins.pm.hook,
            )
        return self._memory_repo


@pytest.fixture(scope="session", autouse=True)
def hello_installed() -> None:
    """Every test here is about the installed plugin: say how to install it rather than fail obscurely."""
    try:
        importlib.metadata.distribution("cairn-hello")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"cairn-hello is not installed; run: pip install -e {PROJECT_DIR}", pytrace=False)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def memory_state(store: MemoryStore, cairn_env: Path) -> Callable[[], MemoryState]:
    """Make a fresh ``MemoryState`` over this test's store (one per invocation, as one per ``cairn`` process),
    in the isolated project directory of ``cairn_env``."""
    return lambda: MemoryState(store)


@pytest.fixture
def cairn_run(cairn_env: Path) -> Callable[..., subprocess.CompletedProcess]:
    """``cairn_run("plugins", "--json", env={...})``: the installed ``cairn`` in this test's project directory."""

    def run(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
        return run_cairn(*args, cwd=cairn_env, env=env)

    return run


@pytest.fixture
def isolated_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Plugins add their commands to the process-wide ``cli`` group: undo that after each test."""
    monkeypatch.setattr(cli, "commands", dict(cli.commands))
    yield
