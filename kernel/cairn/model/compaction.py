"""Compaction as content: the summaries one compaction commit puts in place of older items.

A compaction commit (``Operation.COMPACT``) carries one ``compaction``
item: its ``summaries``, each naming the items it replaces (``replaces``,
append-commit hashes in history order) and its text, and who wrote them
(``summarizer``: ``provider/model``, or ``extractive`` when no model did)
with the version of the prompt that asked (``prompt_version``, None for an
extractive summary). The materializer shows each summary, as a
``compaction.summary`` item, where the first item it replaces stood; the
other replaced items leave what is materialized, and history keeps them all.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from cairn.model.canonical import is_hash
from cairn.model.content import Content, ContentHints, Message, Priority

__all__ = ["COMPACTION_CONTENT_TYPES", "EXTRACTIVE", "Compaction", "Summary", "replaced_tokens"]

#: The summarizer name of a summary no model wrote (the opening words of what it replaces).
EXTRACTIVE = "extractive"


def _check_text(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{name} must be a non-empty string")


def _check_hashes(name: str, value: Any) -> None:
    if not isinstance(value, list) or not value or not all(isinstance(h, str) and is_hash(h) for h in value):
        raise TypeError(f"{name} must be a non-empty list of commit hashes")
    if len(set(value)) != len(value):
        raise TypeError(f"{name} names a commit twice")


def _text(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    _check_text(attribute.name, value)


def _hashes(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    _check_hashes(attribute.name, value)


def _summaries(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, list) or not value:
        raise TypeError(f"{attribute.name} must be a non-empty list")
    seen: set[str] = set()
    for part in value:
        if not isinstance(part, dict) or not {"replaces", "text"} <= set(part) <= _SUMMARY_KEYS:
            raise TypeError(f"each of {attribute.name} must be an object with replaces, text and contiguous?")
        if not isinstance(part.get("contiguous", True), bool):
            raise TypeError("a summary's contiguous must be true or false")
        _check_text("a summary's text", part["text"])
        _check_hashes("a summary's replaces", part["replaces"])
        if seen.intersection(part["replaces"]):
            raise TypeError(f"{attribute.name}: an item is replaced by two summaries")
        seen.update(part["replaces"])


#: A summary: the items it replaces, its text, and whether history between its first and last item holds
#: nothing but those items and changes of them (so the materializer may step over that stretch unread).
_SUMMARY_KEYS = frozenset({"replaces", "text", "contiguous"})


def _label(summarizer: str, count: int) -> str:
    what = "1 earlier item" if count == 1 else f"{count} earlier items"
    if summarizer == EXTRACTIVE:
        return f"[Summary of {what}; extractive: their opening words, no model wrote it]"
    return f"[Summary of {what}, by {summarizer}]"


@attrs.frozen
class Summary(Content):
    """One summary as the materializer shows it, in place of the items it ``replaces``."""

    content_type: ClassVar[str] = "compaction.summary"
    hints: ClassVar[ContentHints] = ContentHints("user", Priority.NORMAL, compression_priority=40)
    text: str = attrs.field(validator=_text)
    # Bare list, for the converter's strict hook: see cairn.model.content.ToolIO.payload.
    replaces: list = attrs.field(validator=_hashes)  # type: ignore[type-arg]
    summarizer: str = attrs.field(default=EXTRACTIVE, validator=_text)

    def render(self) -> tuple[Message, ...]:
        return (Message("user", f"{_label(self.summarizer, len(self.replaces))} {self.text}"),)


@attrs.frozen
class Compaction(Content):
    """What one compaction commit carries: its summaries, in history order, and who wrote them."""

    content_type: ClassVar[str] = "compaction"
    hints: ClassVar[ContentHints] = ContentHints("user", Priority.NORMAL, compression_priority=40)
    # Bare list of {"replaces": [hash, ...], "text": str, "contiguous"?: bool}: see ToolIO.payload.
    summaries: list = attrs.field(validator=_summaries)  # type: ignore[type-arg]
    summarizer: str = attrs.field(default=EXTRACTIVE, validator=_text)
    prompt_version: str | None = None

    def parts(self) -> tuple[Summary, ...]:
        return tuple(Summary(s["text"], list(s["replaces"]), self.summarizer) for s in self.summaries)

    def spans(self) -> list[tuple[str, ...]]:
        """The runs of three or more items whose stretch of history holds nothing else (``contiguous``)."""
        return [tuple(s["replaces"]) for s in self.summaries if s.get("contiguous") and len(s["replaces"]) > 2]

    def replaced(self) -> list[str]:
        """Every item this compaction replaces, in history order."""
        return [h for s in self.summaries for h in s["replaces"]]

    def render(self) -> tuple[Message, ...]:
        return tuple(m for part in self.parts() for m in part.render())


COMPACTION_CONTENT_TYPES: tuple[type[Content], ...] = (Compaction, Summary)


def replaced_tokens(metadata: dict[str, Any]) -> int:
    """The effective tokens a compaction commit took out (its metadata's ``compaction.replaced_tokens``).

    Counted by the tokenizer of the repository that compacted; an import
    into one with another tokenizer keeps that count (its budget is then an
    estimate until the next compaction).
    """
    record = metadata.get("compaction")
    value = record.get("replaced_tokens") if isinstance(record, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
