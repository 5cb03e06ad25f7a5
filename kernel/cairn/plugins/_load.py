"""Discovery and loading: which entry points to import, and importing them with failures isolated.

stevedore lists the ``cairn`` entry points without importing anything, and
imports the allowed ones with a failure callback; each loaded module is
registered with ``Plugins.register``. See ``cairn.plugins`` for the
environment variables that block, choose or trace plugins.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from cairn.plugins._describe import BUILTIN_PLUGIN, ENTRY_POINT_GROUP, PluginInfo
from cairn.plugins._manager import Plugins

__all__ = ["load_plugins"]


def _env_list(environ: Mapping[str, str], name: str) -> list[str] | None:
    if name not in environ:
        return None
    return [p.strip() for p in environ[name].split(",") if p.strip()]


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _list_entry_points() -> list[Any]:
    from stevedore import NamedExtensionManager

    # stevedore keeps a per-process copy keyed only by group: drop it, so a
    # long-lived process sees plugins installed or removed since. The on-disk
    # index it falls back to is keyed on sys.path and stays fast.
    NamedExtensionManager.ENTRY_POINT_CACHE.pop(ENTRY_POINT_GROUP, None)
    # names=[] imports nothing; list_entry_points reads stevedore's index.
    manager: NamedExtensionManager[Any] = NamedExtensionManager(ENTRY_POINT_GROUP, names=[])
    return list(manager.list_entry_points())


def load_plugins(
    *,
    disabled: Iterable[str] = (),
    strict: bool | None = None,
    environ: Mapping[str, str] | None = None,
    entry_points: bool = True,
) -> Plugins:
    """Discover and load every allowed plugin; see the module docstring for the rules."""
    environ = os.environ if environ is None else environ
    strict = _truthy(environ.get("CAIRN_STRICT_PLUGINS")) if strict is None else strict
    plugins = Plugins(strict=strict, trace=_truthy(environ.get("CAIRN_TRACE_HOOKS")))

    from cairn import builtin

    plugins.register(builtin, BUILTIN_PLUGIN, builtin=True)
    if not entry_points:
        return plugins

    blocked = set(disabled) | set(_env_list(environ, "CAIRN_DISABLE_PLUGINS") or ())
    only = _env_list(environ, "CAIRN_LOAD_PLUGINS")
    allowed: list[Any] = []
    for ep in sorted(_list_entry_points(), key=lambda e: e.name):
        if ep.name in plugins.info:
            continue  # the same plugin seen twice on sys.path
        if ep.name in blocked or (only is not None and ep.name not in only):
            why = "blocked by configuration" if ep.name in blocked else "not in CAIRN_LOAD_PLUGINS"
            plugins.info[ep.name] = PluginInfo(ep.name, ep.value, "blocked", why)
            continue
        allowed.append(ep)
    for name in only or ():
        if name not in plugins.info:  # asked for, but no such entry point: say so, never fail
            plugins.info[name] = PluginInfo(name, "", "missing", "named in CAIRN_LOAD_PLUGINS but not installed")

    if not allowed:
        return plugins

    from stevedore import NamedExtensionManager

    def failed(_manager: Any, ep: Any, exc: BaseException) -> None:
        # An import failure is the plugin's, never the CLI's.
        plugins.info[ep.name] = PluginInfo(ep.name, ep.value, "ok")
        plugins._broken(ep.name, f"import failed: {type(exc).__name__}: {exc}", exc)

    manager = NamedExtensionManager(
        ENTRY_POINT_GROUP,
        names=[ep.name for ep in allowed],
        name_order=True,
        on_load_failure_callback=failed,
    )
    for extension in manager:
        plugins.register(extension.plugin, extension.name, module=extension.entry_point.value)
    return plugins
