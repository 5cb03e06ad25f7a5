"""The configured LLM as a summarizer for compaction, for ``cairn compact`` and the automatic trigger."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.ledger import Ledger
    from cairn.repo import Repo
    from cairn.storage import Facet
    from cairn.summarize import Summarize

__all__ = ["summarizer_for"]


def summarizer_for(
    config: Config, plugins: Any, store: Facet, repo: Repo, ledger: Callable[[], Ledger] | Ledger
) -> tuple[Summarize | None, str | None]:
    """The configured LLM as a summarizer, and its name; (None, None) with ``noop``: extractive summaries.

    Each call goes through the kernel's provider path (``Providers.llm()``)
    and, on a store with a run ledger, is a run of type ``llm``. ``ledger``
    may be a function, so a command that never compacts never opens one.
    """
    llm = config.cairn.llm
    if llm == "noop":
        return None, None
    from cairn.compaction import SUMMARY_PROMPT
    from cairn.providers import Providers
    from cairn.storage import RunStore
    from cairn.summarize import llm_summarizer

    def summarize(texts: list[str]) -> tuple[str, str, dict[str, Any]]:
        recorded = (ledger() if callable(ledger) else ledger) if isinstance(store, RunStore) else None
        with Providers(config, plugins, store=store, tokenizer=repo.tokenizer) as providers:
            ask = llm_summarizer(providers, SUMMARY_PROMPT, purpose="compact", ledger=recorded, branch=repo.branch)
            return ask(texts)

    return summarize, llm
