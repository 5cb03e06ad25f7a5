"""The named registries: what a plugin registers, and where each registered backend is chosen.

A registration hook hands the plugin a ``register(name, factory, config_cls)``
callback (see ``cairn.plugins.Plugins``); each call becomes a
``Registration`` in the ``Registry`` of its kind. A second registration of a
name is refused, naming both plugins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from cairn.config import Config
from cairn.errors import DuplicateNameError, NotFoundError

__all__ = [
    "CHOSEN_BACKENDS",
    "CHOSEN_ELSEWHERE",
    "REGISTRIES",
    "CheckProblem",
    "FactoryContext",
    "NoConfig",
    "Registration",
    "Registry",
    "importable",
]

#: Registry kind -> (registration hook, what one entry is called in messages).
REGISTRIES: dict[str, tuple[str, str]] = {
    "storage": ("cairn_register_storage", "storage backend"),
    "tokenizers": ("cairn_register_tokenizers", "tokenizer"),
    "llm": ("cairn_register_llm_providers", "LLM provider"),
    "embeddings": ("cairn_register_embedding_providers", "embedding provider"),
    "evaluators": ("cairn_register_evaluators", "evaluator"),
    "vector_indexes": ("cairn_register_vector_indexes", "vector index"),
    "artifact_stores": ("cairn_register_artifact_stores", "artifact store"),
    "executors": ("cairn_register_executors", "execution module"),
}

#: ``[cairn]`` key -> the registry kind whose backend it names.
CHOSEN_BACKENDS: dict[str, str] = {
    "storage": "storage",
    "tokenizer": "tokenizers",
    "llm": "llm",
    "embeddings": "embeddings",
}

#: (table, key) outside ``[cairn]`` -> the registry kind whose backend it names. Only a choice
#: someone wrote down is checked: a project that never uses memory or artifacts needs none installed.
CHOSEN_ELSEWHERE: dict[tuple[str, str], str] = {
    ("memory", "index"): "vector_indexes",
    ("artifacts", "store"): "artifact_stores",
}


@attrs.frozen
class NoConfig:
    """Config class of a backend that takes no settings: any key is refused."""


@attrs.frozen
class FactoryContext:
    """What a factory learns besides its config: the name it was asked for and where the project is."""

    name: str
    argument: str | None
    project_dir: Path | None
    data_dir: Path
    config: Config | None = None


#: What a registration's ``check`` yields: (key of its table, what is wrong with its value[, what to do]).
CheckProblem = tuple[str, str] | tuple[str, str, str]


@attrs.frozen
class Registration:
    kind: str
    name: str
    factory: Callable[[Any, FactoryContext], Any]
    config_cls: type
    plugin: str
    description: str = ""
    #: Modules the factory imports -> what to ``pip install`` for each (``"cairn-tokenizers[tiktoken]"``).
    requires: Mapping[str, str] = attrs.field(factory=dict)
    #: ``check(config, context)``: problems with the table's values on this machine, for ``cairn config validate``.
    check: Callable[[Any, FactoryContext], Iterable[CheckProblem]] | None = None

    def missing(self) -> list[tuple[str, str]]:
        """(module, what to install) for each required module that cannot be imported here."""
        return [(module, install) for module, install in self.requires.items() if not importable(module)]


class Registry:
    """Named factories of one kind; a second registration of a name is refused naming both plugins."""

    def __init__(self, kind: str, label: str) -> None:
        self.kind = kind
        self.label = label
        self._entries: dict[str, Registration] = {}

    def add(self, registration: Registration) -> None:
        existing = self._entries.get(registration.name)
        if existing is not None:
            raise DuplicateNameError(self.label, registration.name, existing.plugin, registration.plugin)
        self._entries[registration.name] = registration

    def drop_plugin(self, plugin: str) -> None:
        for name in [n for n, r in self._entries.items() if r.plugin == plugin]:
            del self._entries[name]

    @staticmethod
    def split(name: str) -> tuple[str, str | None]:
        """``"tiktoken:cl100k_base"`` -> ``("tiktoken", "cl100k_base")``."""
        base, sep, argument = name.partition(":")
        return base, (argument if sep else None)

    def get(self, name: str) -> Registration:
        base, _ = self.split(name)
        try:
            return self._entries[base]
        except KeyError:
            known = ", ".join(self.names()) or "none installed"
            raise NotFoundError(
                self.label,
                name,
                hint=f"known: {known}; install the plugin that provides it, or check `cairn plugins`",
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.split(name)[0] in self._entries

    def __iter__(self) -> Iterator[Registration]:
        return iter(sorted(self._entries.values(), key=lambda r: r.name))

    def __len__(self) -> int:
        return len(self._entries)


def importable(module: str) -> bool:
    """True when the top-level package of ``module`` can be found on this machine (nothing is imported)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module.partition(".")[0]) is not None
    except (ImportError, ValueError):
        return False
