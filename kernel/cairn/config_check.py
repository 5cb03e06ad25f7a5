"""Checking a configuration against the installed plugins: what ``cairn config validate`` reports.

Every problem is a ``ConfigError`` located where it was written (file and
line, or the variable or ``--set`` flag): the kernel tables and sections
(``Config.validate``), each backend table against its plugin's config
class, backends named in ``[cairn]`` that no plugin provides, modules a
chosen backend needs that are not installed, and whatever a backend's own
``check`` finds (a path that is not a regular file, say). Nothing is created
or opened for writing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from cairn.config import BACKEND_SECTIONS, KERNEL_SECTIONS, Config
from cairn.errors import ConfigError
from cairn.plugins._registry import (
    CHOSEN_BACKENDS,
    CHOSEN_ELSEWHERE,
    REGISTRIES,
    FactoryContext,
    Registration,
    Registry,
)

__all__ = ["PluginRegistries", "check_config", "chosen_at", "missing_module_error", "unknown_backend_error"]


class PluginRegistries(Protocol):
    """What a check reads of the loaded plugins (``cairn.plugins.Plugins``): the registries by kind.

    A protocol rather than ``Plugins`` itself, which calls these checks: neither module imports the other.
    """

    @property
    def registries(self) -> Mapping[str, Registry]: ...


def check_config(plugins: PluginRegistries, config: Config) -> list[ConfigError]:
    """Every problem in ``config`` that the installed plugins can see."""
    problems = list(config.validate())
    from cairn.config_agents import check_agent_tables

    problems.extend(check_agent_tables(config))
    if not any(p.table == "policy" for p in problems):  # the table read; now every rule, key by key
        from cairn.policy import check_policy

        problems.extend(check_policy(config))
    # Read the names raw: a typo elsewhere in [cairn] must not hide an unknown backend.
    try:
        chosen = config.table("cairn")
    except ConfigError as exc:
        return [*problems, exc]
    checked: set[tuple[str, str]] = set()
    for kind, section in BACKEND_SECTIONS.items():
        registry = plugins.registries[kind]
        try:
            tables = config.table(section)
        except ConfigError as exc:
            problems.append(exc)
            continue
        for base, table in tables.items():
            if not isinstance(table, dict) and section in KERNEL_SECTIONS:
                continue  # a kernel setting beside the backends' tables ([artifacts] store): validate() checked it
            if not isinstance(table, dict):
                problems.append(config.error(f"expected a table [{section}.{base}]", (section,), base))
                continue
            if base not in registry:
                known = ", ".join(registry.names()) or "none installed"
                problems.append(
                    config.error(f"no {registry.label} called {base!r}", (section, base), hint=f"known: {known}")
                )
                continue
            problems.extend(_check_backend(plugins, config, kind, base))
            checked.add((kind, base))
    for key, kind in CHOSEN_BACKENDS.items():
        name = chosen.get(key)
        registry = plugins.registries[kind]
        if not isinstance(name, str):
            continue  # Config.validate reported the type
        if name not in registry:
            known = ", ".join(registry.names()) or "none installed"
            problems.append(
                config.error(f"no {registry.label} called {name!r}", ("cairn",), key, hint=f"known: {known}")
            )
            continue
        registration = registry.get(name)
        for module, install in registration.missing():
            problems.append(missing_module_error(registration, name, module, install, config=config))
        base = registry.split(name)[0]
        if (kind, base) not in checked:  # a chosen backend with no table of its own: check its defaults too
            problems.extend(_check_backend(plugins, config, kind, base))
    for (table_name, key), kind in CHOSEN_ELSEWHERE.items():
        try:
            name = config.table(table_name).get(key)
        except ConfigError:
            continue  # Config.validate reported the table
        registry = plugins.registries[kind]
        written = config.source_of((table_name, key)) != "default"
        if written and isinstance(name, str) and name not in registry:
            known = ", ".join(registry.names()) or "none installed"
            problems.append(
                config.error(f"no {registry.label} called {name!r}", (table_name,), key, hint=f"known: {known}")
            )
    return problems


def _check_backend(plugins: PluginRegistries, config: Config, kind: str, base: str) -> list[ConfigError]:
    """The backend's table structured into its config class, then the backend's own ``check``."""
    registration = plugins.registries[kind].get(base)
    section = BACKEND_SECTIONS[kind]
    try:
        settings: Any = config.structure_table((section, base), registration.config_cls)
    except ConfigError as exc:
        return [exc]
    if registration.check is None:
        return []
    try:
        data_dir = config.data_dir
    except ConfigError:
        return []  # reported with [cairn]; a check needs the data directory
    context = FactoryContext(base, None, config.project_dir, data_dir, config)
    problems = []
    for key, problem, *hint in registration.check(settings, context):
        problems.append(
            config.error(problem, (section, base), key, hint=hint[0] if hint else "fix the value, or remove the key")
        )
    return problems


def missing_module_error(
    registration: Registration, name: str, module: str, install: str | None, *, config: Config | None = None
) -> ConfigError:
    """The backend ``name`` needs ``module``, which is not installed: say what to ``pip install``.

    Located at the ``[cairn]`` key that chose the backend when there is one.
    """
    label = REGISTRIES[registration.kind][1]
    message = f"{label} {name!r} needs the Python module {module!r}, which is not installed"
    if install:
        hint = f"pip install '{install}', or choose another {label}"
    else:
        hint = f"install the package that provides {module!r} (plugin {registration.plugin!r} needs it)"
    key = chosen_at(config, registration.kind, name)
    if config is not None and key is not None:
        return config.error(message, ("cairn",), key, hint=hint)
    return ConfigError(message, hint=hint)


def unknown_backend_error(plugins: PluginRegistries, kind: str, name: str, config: Config | None) -> ConfigError | None:
    """No plugin provides ``name``, which ``[cairn]`` chose: a located error (None when config did not choose it)."""
    key = chosen_at(config, kind, name)
    if config is None or key is None:
        return None
    registry = plugins.registries[kind]
    known = ", ".join(registry.names()) or "none installed"
    return config.error(
        f"no {registry.label} called {name!r}",
        ("cairn",),
        key,
        hint=f"known: {known}; install the plugin that provides it, or check `cairn plugins`",
    )


def chosen_at(config: Config | None, kind: str, name: str) -> str | None:
    """The ``[cairn]`` key that chose ``name`` as the ``kind`` backend, or None."""
    if config is None:
        return None
    try:
        table = config.table("cairn")
    except ConfigError:
        return None
    return next((k for k, kind_of in CHOSEN_BACKENDS.items() if kind_of == kind and table.get(k) == name), None)
