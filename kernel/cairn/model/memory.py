"""Memory tiers as content: long-term facts and episodes, kept through the context engine.

Facts and episodes are content items on the branch ``memory``
(``refs/heads/memory``), so they get hashes, history, time travel,
export/import and git push/pull like every other item:

- ``memory.fact``: a short statement, with a subject and where it came from
  (``episode:<hash>``, ``commit:<hash>`` or None when a person said it).
  A newer fact that supersedes an older one is an EDIT of it; forgetting a
  fact is a DELETE (a tombstone: it leaves recall, history keeps it).
- ``memory.episode``: a summary of a range of history: the branch, the first
  and last commit, how many commits, who summarised it (provider, model, or
  ``extractive`` when no LLM was configured), usage.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from cairn.model.content import Content, ContentHints, Message, Priority

__all__ = ["MEMORY_CONTENT_TYPES", "Episode", "Fact"]


def _statement(instance: Any, attribute: attrs.Attribute[str], value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{attribute.name} must be a non-empty string")


def _optional(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise TypeError(f"{attribute.name} must be a non-empty string or absent")


def _object(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, dict):
        raise TypeError(f"{attribute.name} must be a JSON object")


@attrs.frozen
class Fact(Content):
    """A long-term fact: ``text`` about ``subject``, from ``source``."""

    content_type: ClassVar[str] = "memory.fact"
    hints: ClassVar[ContentHints] = ContentHints("system", Priority.NORMAL, order=10, compression_priority=30)
    text: str = attrs.field(validator=_statement)
    subject: str | None = attrs.field(default=None, validator=_optional)
    source: str | None = attrs.field(default=None, validator=_optional)

    def render(self) -> tuple[Message, ...]:
        about = f" ({self.subject})" if self.subject else ""
        return (Message("system", f"Fact{about}: {self.text}"),)


@attrs.frozen
class Episode(Content):
    """A summary of commits ``first``..``last`` of ``branch``, with who made it and what it cost."""

    content_type: ClassVar[str] = "memory.episode"
    hints: ClassVar[ContentHints] = ContentHints("system", Priority.NORMAL, order=10, compression_priority=50)
    text: str = attrs.field(validator=_statement)
    branch: str = attrs.field(validator=_statement)
    first: str = attrs.field(validator=_statement)
    last: str = attrs.field(validator=_statement)
    commits: int = 0
    #: ``provider/model`` of the LLM that wrote the summary, or ``extractive`` (no LLM: sentences picked).
    summarizer: str = "extractive"
    # Bare dict, for the converter's strict hook: see cairn.model.content.ToolIO.payload.
    usage: dict = attrs.field(factory=dict, validator=_object)  # type: ignore[type-arg]

    def render(self) -> tuple[Message, ...]:
        return (Message("system", f"Episode ({self.branch}, {self.commits} commits): {self.text}"),)


MEMORY_CONTENT_TYPES: tuple[type[Content], ...] = (Fact, Episode)
