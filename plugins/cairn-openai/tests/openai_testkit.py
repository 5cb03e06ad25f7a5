"""Constants and helpers shared by cairn-openai's tests (a uniquely named module, importable beside other suites)."""

from __future__ import annotations

from typing import Any

from cairn.events import ALL, EventBus
from cairn.providers import LLM, Embedder, Meter, RetryPolicy
from cairn.testing.fakes import WordTokenizer
from cairn.testing.memory import MemoryStore

#: The API key the fake server demands; it must never show up in an error, an event, a log or the store.
KEY = "sk-canary-KEY-5f2b9c1d7e"
KEY_ENV = "CAIRN_OPENAI_TEST_KEY"


class Kernel:
    """Providers behind the kernel, with an in-memory store, a private bus and no real sleeping."""

    def __init__(self, attempts: int = 3) -> None:
        self.store = MemoryStore()
        self.bus = EventBus()
        self.events: list[Any] = []
        self.bus.subscribe(ALL, self.events.append)
        self.sleeps: list[float] = []
        self.meter = Meter(self.store, bus=self.bus)
        self.policy = RetryPolicy(max_attempts=attempts)

    def llm(self, provider: Any) -> LLM:
        return LLM(
            provider,
            "openai",
            tokenizer=WordTokenizer(),
            meter=self.meter,
            policy=self.policy,
            secrets=[KEY],
            sleep=self.sleeps.append,
        )

    def embedder(self, provider: Any) -> Embedder:
        return Embedder(
            provider,
            "openai",
            tokenizer=WordTokenizer(),
            meter=self.meter,
            policy=self.policy,
            secrets=[KEY],
            sleep=self.sleeps.append,
        )

    def outcomes(self) -> list[str]:
        return [e.payload["outcome"] for e in self.events]
