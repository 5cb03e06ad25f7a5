"""Providers from the configuration: ``Providers`` builds ``LLM`` and ``Embedder`` objects that share one ``Meter``."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import attrs

from cairn.config import ProvidersSettings
from cairn.events import EventBus
from cairn.providers._caller import _monotonic
from cairn.providers._embedder import Embedder
from cairn.providers._llm import LLM
from cairn.providers._meter import Meter
from cairn.providers._redact import redact_text
from cairn.providers._retry import RetryPolicy
from cairn.tokenizers import Tokenizer

__all__ = ["ProviderInfo", "Providers"]


@attrs.frozen
class ProviderInfo:
    """What ``cairn providers`` shows about one registered provider."""

    kind: str  # "llm" | "embeddings"
    name: str
    plugin: str
    description: str
    selected: bool
    ready: bool
    problem: str | None
    model: str | None
    capabilities: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


class Providers:
    """The providers of one project: builds ``LLM`` and ``Embedder`` objects that share one ``Meter``.

    ``[cairn] llm`` / ``embeddings`` name the default providers;
    ``[providers]`` sets retries and spend ceilings. Secrets named by the
    provider's ``*_env`` keys are redacted from every error it raises.
    """

    def __init__(
        self,
        config: Any,
        plugins: Any,
        *,
        store: Any,
        tokenizer: Tokenizer,
        bus: EventBus | None = None,
        run_id: str | None = None,
        gate: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = _monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.plugins = plugins
        self.settings: ProvidersSettings = config.settings("providers", ProvidersSettings)
        if gate is None:  # the project's policy; with no [policy] rules nothing is asked (every call goes)
            from cairn.gate import Gate

            gate = Gate.from_config(config, store, bus=bus)
            gate = None if gate.trivial else gate
        self.meter = Meter(store, settings=self.settings, bus=bus, run_id=run_id, gate=gate)
        self.tokenizer = tokenizer
        self._options = {"sleep": sleep, "clock": clock, "rng": rng}
        self._open: list[Any] = []

    def _secrets(self, section: str, name: str) -> list[str]:
        import os

        base = name.partition(":")[0]
        table = self.config.table(section, base)
        return [os.environ.get(v, "") for k, v in table.items() if k.endswith("_env") and isinstance(v, str) and v]

    def llm(self, name: str | None = None) -> LLM:
        """The LLM provider ``name`` (default ``[cairn] llm``) behind the kernel's checks, retries and meter."""
        name = name or self.config.cairn.llm
        provider = self.plugins.create("llm", name, self.config)
        llm = LLM(
            provider,
            name.partition(":")[0],
            tokenizer=self.tokenizer,
            meter=self.meter,
            policy=RetryPolicy.from_settings(self.settings),
            secrets=self._secrets("llm", name),
            **self._options,
        )
        self._open.append(llm)
        return llm

    def embeddings(self, name: str | None = None) -> Embedder:
        """The embedding provider ``name`` (default ``[cairn] embeddings``)."""
        name = name or self.config.cairn.embeddings
        provider = self.plugins.create("embeddings", name, self.config)
        embedder = Embedder(
            provider,
            name.partition(":")[0],
            tokenizer=self.tokenizer,
            meter=self.meter,
            policy=RetryPolicy.from_settings(self.settings),
            secrets=self._secrets("embeddings", name),
            **self._options,
        )
        self._open.append(embedder)
        return embedder

    def describe(self, *, chosen_only: bool = False) -> list[ProviderInfo]:
        """Every registered LLM and embedding provider: capabilities of its default model and readiness.

        Building a provider never loads a model or opens a connection, so
        this is cheap; a provider whose table is wrong is listed as not ready
        with the reason. ``chosen_only``: only the ``[cairn] llm`` and
        ``embeddings`` ones (no other provider's libraries are imported).
        """
        from cairn.errors import CairnError

        out: list[ProviderInfo] = []
        chosen = {"llm": self.config.cairn.llm, "embeddings": self.config.cairn.embeddings}
        for kind in ("llm", "embeddings"):
            for registration in self.plugins.registries[kind]:
                selected = chosen[kind].partition(":")[0] == registration.name
                if chosen_only and not selected:
                    continue
                name = chosen[kind] if selected else registration.name
                provider = None
                try:
                    provider = self.plugins.create(kind, name, self.config)
                    problem = provider.readiness()
                    model = provider.default_model or None
                    caps = provider.capabilities(model).to_dict() if model else None
                    secrets = self._secrets(kind, name)
                    reason = None
                    if problem is not None:
                        reason = redact_text(problem.message, secrets=secrets)
                        if problem.hint:
                            reason += f" ({redact_text(problem.hint, secrets=secrets)})"
                    out.append(
                        ProviderInfo(
                            kind,
                            registration.name,
                            registration.plugin,
                            registration.description,
                            selected,
                            problem is None,
                            reason,
                            model,
                            caps,
                        )
                    )
                except CairnError as exc:
                    out.append(
                        ProviderInfo(
                            kind,
                            registration.name,
                            registration.plugin,
                            registration.description,
                            selected,
                            False,
                            str(exc),
                            None,
                            None,
                        )
                    )
                finally:
                    if provider is not None:
                        provider.close()
        return out

    def close(self) -> None:
        for item in self._open:
            item.close()
        self._open.clear()

    def __enter__(self) -> Providers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
