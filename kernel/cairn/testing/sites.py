"""Fake installed plugins for discovery tests: real distributions written into a directory on ``sys.path``.

``FakeSite.install("cairn-acme", {"acme": SOURCE})`` writes a module holding
SOURCE and a ``.dist-info`` whose ``entry_points.txt`` maps the ``cairn``
entry point ``acme`` to it, so ``load_plugins`` discovers and imports it
exactly as an installed package. The ``plugin_site`` fixture gives each test
its own site (on ``sys.path`` for the test only).

stevedore caches entry points at two levels, both keyed so that a test's new
distribution could go unseen: ``ExtensionManager.ENTRY_POINT_CACHE`` (per
process, by group name only) and ``stevedore._cache`` (in memory by
``sys.path``, on disk under ``$XDG_CACHE_HOME/python-entrypoints`` by a hash
of path mtimes). ``refresh`` swaps in an empty process cache and a ``Cache``
whose directory is beside the site and holds a ``.disable`` file, so every
scan is fresh and nothing is written outside the test's directory.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

__all__ = ["FakeSite"]


class FakeSite:
    """A directory on ``sys.path`` holding fake distributions with ``cairn`` entry points."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.monkeypatch = monkeypatch
        # Unique module names: a module imported by one test must not satisfy another's import.
        self.prefix = f"cairn_fake_{uuid.uuid4().hex[:8]}"
        self.names: list[str] = []

    def module(self, entry_point: str) -> str:
        """The module name behind ``entry_point``."""
        return f"{self.prefix}_{entry_point.replace('-', '_')}"

    def install(self, dist: str, plugins: dict[str, str], *, version: str = "1.2.3") -> None:
        """Write one distribution ``dist`` whose entry points map each name to a module with that source."""
        lines = ["[cairn]"]
        for name, source in plugins.items():
            module = self.module(name)
            (self.root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
            lines.append(f"{name} = {module}")
            self.names.append(name)
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.refresh()

    def refresh(self) -> None:
        """Forget every cached scan so the next discovery sees the files as they are now."""
        import stevedore._cache
        from stevedore.extension import ExtensionManager

        importlib.invalidate_caches()  # import system and importlib.metadata directory caches
        self.monkeypatch.setattr(ExtensionManager, "ENTRY_POINT_CACHE", {})
        cache_dir = self.root.parent / "stevedore-cache"
        cache_dir.mkdir(exist_ok=True)
        (cache_dir / ".disable").touch()  # stevedore's own switch: read nothing stale, write nothing
        fresh = stevedore._cache.Cache(str(cache_dir))
        self.monkeypatch.setattr(stevedore._cache, "get_group_all", fresh.get_group_all)

    def imported(self, entry_point: str) -> bool:
        return self.module(entry_point) in sys.modules

    def only(self, *names: str) -> dict[str, str]:
        """An environment that loads just these fakes, so a half-written plugin installed nearby cannot interfere."""
        return {"CAIRN_LOAD_PLUGINS": ",".join(names or self.names)}

    def forget_modules(self) -> None:
        """Drop this site's modules from ``sys.modules`` (the fixture does it after each test)."""
        for name in [m for m in sys.modules if m.startswith(self.prefix)]:
            del sys.modules[name]
