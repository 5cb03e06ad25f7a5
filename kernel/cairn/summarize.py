"""Summaries of stretches of history, shared by memory consolidation and context compaction.

A summarizer is ``summarize(texts) -> (summary, "provider/model", usage)``.
Without a model (the ``noop`` provider) ``extractive_summary`` makes a
deterministic one from the texts' opening words; ``llm_summarizer`` asks the
configured LLM through the kernel's one provider path (``Providers.llm()``:
its readiness check, policy gate, retries, meter and spend ceilings), and
with a ledger records each call as a run, as ``cairn ask`` does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from cairn.ledger import Ledger
    from cairn.providers import Providers

__all__ = ["Summarize", "extractive_summary", "llm_summarizer", "split_summarizer"]

Summarize = Callable[[list[str]], tuple[str, str, dict[str, Any]]]


def extractive_summary(texts: list[str]) -> str:
    """A deterministic summary without a model: the opening of the first and the last item, and the count."""

    def opening(text: str, words: int = 24) -> str:
        parts = text.split()
        return " ".join(parts[:words]) + (" …" if len(parts) > words else "")

    if len(texts) == 1:
        return opening(texts[0], 48)
    middle = f" … ({len(texts) - 2} more) … " if len(texts) > 2 else " … "
    return opening(texts[0]) + middle + opening(texts[-1])


def llm_summarizer(
    providers: Providers,
    system: str,
    *,
    purpose: str,
    ledger: Ledger | None = None,
    branch: str | None = None,
) -> Summarize:
    """A summarizer asking ``providers``' LLM with the ``system`` prompt; ``purpose`` names the call.

    With a ``ledger`` each call is a run of type ``llm`` (``cairn logs``
    lists it) whose spend records point at it.
    """
    from cairn.calls import CallRecorder
    from cairn.model import Message

    def summarize(texts: list[str]) -> tuple[str, str, dict[str, Any]]:
        llm = providers.llm()
        problem = llm.provider.readiness()
        if problem is not None:
            raise problem
        history = "\n\n".join(f"[{i + 1}] {t}" for i, t in enumerate(texts))
        with contextlib.ExitStack() as stack:
            recorder = None
            if ledger is not None:
                recorder = stack.enter_context(
                    CallRecorder(ledger, operation=purpose, branch=branch, meter=providers.meter)
                )
            response = llm.complete(
                [Message("system", system), Message("user", history)], metadata={"purpose": purpose}
            )
            usage = response.usage.to_dict() if response.usage else {}
            if recorder is not None:
                recorder.finish(
                    provider=response.provider,
                    model=response.model,
                    usage=usage or None,
                    cost=None if response.cost is None else round(response.cost, 12),
                    latency_ms=round(response.latency_s * 1000, 1),
                    finish_reason=response.finish_reason,
                    request_id=response.request_id,
                )
        return (response.content or "").strip() or "(empty summary)", f"{response.provider}/{response.model}", usage

    return summarize


def split_summarizer(name: str) -> tuple[str | None, str | None]:
    """(provider, model) from a summarizer name ``provider/model``; (None, None) for ``extractive``."""
    provider, sep, model = name.partition("/")
    return (provider, model) if sep else (None, None)
