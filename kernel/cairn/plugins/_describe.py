"""What is installed: the plugins' distributions and versions, read from package metadata alone.

``cairn plugins`` and ``cairn --version`` read these without importing any
plugin, so a blocked or broken plugin is listed too.
"""

from __future__ import annotations

from typing import Any

import attrs

from cairn.plugin_failures import HookFailure

__all__ = ["BUILTIN_PLUGIN", "ENTRY_POINT_GROUP", "PluginInfo", "entry_point_distributions", "plugin_distributions"]

ENTRY_POINT_GROUP = "cairn"
BUILTIN_PLUGIN = "cairn"


@attrs.define
class PluginInfo:
    """What ``cairn plugins`` reports about one plugin."""

    name: str
    module: str
    status: str  # ok | failing | broken | blocked | missing
    reason: str | None = None
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False
    hooks: list[str] = attrs.field(factory=list)
    registers: dict[str, list[str]] = attrs.field(factory=dict)
    #: Notification hooks that raised, by hook: count, first and last time, last error.
    failures: dict[str, dict[str, Any]] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def note_failure(self, failure: HookFailure) -> None:
        """Count a notification hook's failure: an ``ok`` plugin becomes ``failing``, keeping what it registered."""
        self.failures[failure.hook] = {
            "count": failure.count,
            "first_at": failure.first_at,
            "last_at": failure.last_at,
            "error": failure.error,
        }
        if self.status in ("ok", "failing"):
            self.status = "failing"
            times = "once" if failure.count == 1 else f"{failure.count} times"
            self.reason = f"{failure.hook} failed {times}, last at {failure.last_at[:19]}: {failure.error}"


def entry_point_distributions() -> dict[str, tuple[str, str]]:
    """Plugin name -> (distribution, version) of each installed ``cairn`` entry point."""
    import importlib.metadata

    found: dict[str, tuple[str, str]] = {}
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINT_GROUP:
                found.setdefault(ep.name, (dist.metadata["Name"], dist.version))
    return found


def plugin_distributions() -> list[tuple[str, str, list[str]]]:
    """Each installed distribution with ``cairn`` entry points: its name, its version and the plugin names.

    Read from package metadata alone: nothing is imported and configuration plays
    no part, so a blocked or broken plugin is listed too (``cairn --version``).
    """
    import importlib.metadata

    found: dict[str, tuple[str, list[str]]] = {}
    for dist in importlib.metadata.distributions():
        names = sorted(ep.name for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP)
        if names:
            # The first on sys.path wins, as it does for imports.
            found.setdefault(dist.metadata["Name"], (dist.version, names))
    return [(name, version, names) for name, (version, names) in sorted(found.items())]
