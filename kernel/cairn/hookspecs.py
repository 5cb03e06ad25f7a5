"""Every extension point of cairn, one short docstring each.

Registration hooks receive a ``register`` callback. Backends call it as
``register(name, factory, config_cls=None, *, description="")``: ``factory``
is called lazily as ``factory(config, context)`` with an instance of the
frozen attrs ``config_cls`` built from the backend's TOML table and a
``cairn.plugins.FactoryContext``. Import heavy libraries inside the factory,
never at module level.

An implementation may accept a subset of a hook's arguments, so adding an
argument here never breaks an existing plugin. The reference with exact
signatures is docs/hooks.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

__all__ = ["hookimpl", "hookspec", "PROJECT_NAME"]

PROJECT_NAME = "cairn"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec(historic=True)
def cairn_register_content_types(register: Callable[..., None]) -> None:
    """Register content types: ``register(cls)`` with an attrs class deriving from ``cairn.model.Content``."""


@hookspec
def cairn_register_storage(register: Callable[..., None]) -> None:
    """Register storage backends: ``register(name, factory, config_cls)``; the factory returns a store of some facets."""


@hookspec
def cairn_register_tokenizers(register: Callable[..., None]) -> None:
    """Register tokenizers: ``register(name, factory, config_cls)``; the factory returns a ``cairn.tokenizers.Tokenizer``."""


@hookspec
def cairn_register_llm_providers(register: Callable[..., None]) -> None:
    """Register LLM providers: ``register(name, factory, config_cls)``."""


@hookspec
def cairn_register_embedding_providers(register: Callable[..., None]) -> None:
    """Register embedding providers: ``register(name, factory, config_cls)``."""


@hookspec
def cairn_register_evaluators(register: Callable[..., None]) -> None:
    """Register evaluators: ``register(name, factory, config_cls)``."""


@hookspec
def cairn_register_vector_indexes(register: Callable[..., None]) -> None:
    """Register vector indexes: ``register(name, factory, config_cls)``; the factory returns a ``cairn.vector_index.VectorIndexOpener``."""


@hookspec
def cairn_register_artifact_stores(register: Callable[..., None]) -> None:
    """Register artifact stores: ``register(name, factory, config_cls)``; the factory returns a ``cairn.artifacts.ArtifactStore``."""


@hookspec
def cairn_register_executors(register: Callable[..., None]) -> None:
    """Register execution modules: ``register(name, factory, config_cls)``; the factory returns a ``cairn.executor.Executor``."""


@hookspec
def cairn_register_commands(cli: Any) -> None:
    """Add commands to the ``cairn`` click group ``cli`` (``cli.command()``, ``cli.add_command()``)."""


@hookspec
def cairn_observe(bus: Any, config: Any) -> Any:
    """Called when a command starts with ``[telemetry] exporter`` set: subscribe to ``bus``; return a callable that flushes and stops, or None."""


@hookspec
def cairn_commit_created(commit: Any, branch: str | None) -> None:
    """Called after a context commit is stored and its branch moved; ``branch`` is None on a detached HEAD."""


@hookspec
def cairn_run_recorded(run: Any) -> None:
    """Called after a run is recorded or closed in the ledger (a ``cairn.model.Run``)."""
