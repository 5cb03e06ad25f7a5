"""Plugin discovery, loading, failure isolation and the named registries.

Plugins are entry points in the ``cairn`` group, each naming a light module
of hook implementations. stevedore lists them without importing anything
(``cairn plugins`` can show a blocked plugin) and imports the allowed ones
with a failure callback; pluggy calls the hooks.

A plugin that fails to import, whose hook implementation has a bad signature
or a misspelled name, or whose registration hook raises, is recorded as
broken with the reason and skipped; the rest keeps working. Strict mode
(``--strict``, ``CAIRN_STRICT_PLUGINS=1`` or ``[cairn] strict_plugins``) turns
such a failure into a ``PluginError``.

Environment:

- ``CAIRN_DISABLE_PLUGINS=a,b``: block these before import.
- ``CAIRN_LOAD_PLUGINS=a,b``: load only these (empty: none but the built-ins).
- ``CAIRN_STRICT_PLUGINS=1``: fail on the first broken plugin.
- ``CAIRN_TRACE_HOOKS=1``: print every hook call and its arguments to stderr.

The parts, each a private module whose public names are re-exported here:

=============== ==============================================================
``_registry``   ``Registration``, ``Registry``, ``FactoryContext``, and which
                ``[cairn]`` key chooses a backend of which kind
``_manager``    ``Plugins``: the pluggy manager, registering a plugin, hook
                failure isolation, the ``register`` callbacks, ``create``
``_load``       ``load_plugins``: discovery through entry points
``_describe``   ``PluginInfo`` and what is installed (``plugin_distributions``)
=============== ==============================================================
"""

from __future__ import annotations

from cairn.plugins._describe import BUILTIN_PLUGIN, ENTRY_POINT_GROUP, PluginInfo, plugin_distributions
from cairn.plugins._load import load_plugins
from cairn.plugins._manager import Plugins
from cairn.plugins._registry import (
    CHOSEN_BACKENDS,
    CHOSEN_ELSEWHERE,
    REGISTRIES,
    CheckProblem,
    FactoryContext,
    NoConfig,
    Registration,
    Registry,
)

__all__ = [
    "BUILTIN_PLUGIN",
    "CHOSEN_BACKENDS",
    "CHOSEN_ELSEWHERE",
    "ENTRY_POINT_GROUP",
    "REGISTRIES",
    "CheckProblem",
    "FactoryContext",
    "NoConfig",
    "PluginInfo",
    "Plugins",
    "Registration",
    "Registry",
    "load_plugins",
    "plugin_distributions",
]
