"""What the providers would refuse, refused when it is committed instead of when it is sent.

``Repo.append`` and ``Repo.edit`` run ``check_content`` on every built-in
item, so a bad one never reaches history:

- text that is empty or only whitespace (``instruction``, ``dialogue``,
  ``reasoning``, ``output``, and an ``image``'s ``text`` when given):
  Anthropic refuses empty text blocks, and an empty turn says nothing;
- a ``dialogue`` ``name`` OpenAI would refuse (1 to 64 characters, none of
  whitespace, ``<``, ``|``, ``\\``, ``/``, ``>``);
- a ``tool_io`` tool name outside what both accept (OpenAI function names,
  Anthropic tool names: 1 to 64 letters, digits, ``_`` or ``-``) and a
  ``call_id`` outside what both accept (Anthropic's ``tool_use.id`` pattern,
  letters, digits, ``_`` or ``-``; OpenAI's limit of 40 characters). An
  empty ``call_id`` is refused; leaving it out has one generated.

Items already in history are never re-checked: reading keeps what was
written.
"""

from __future__ import annotations

import re

from cairn.errors import ValidationError
from cairn.model import Content, Dialogue, Image, Instruction, Output, Reasoning, ToolIO

__all__ = ["MAX_CALL_ID", "check_content", "check_tool_io"]

#: Tool names both OpenAI (function names) and Anthropic (tool names) accept.
_TOOL_NAME = re.compile(r"\A[a-zA-Z0-9_-]{1,64}\Z")
#: OpenAI refuses a tool call id longer than this ("string too long ... maximum length 40").
MAX_CALL_ID = 40
#: Tool call ids both accept: Anthropic's ``tool_use.id`` pattern within OpenAI's length.
_CALL_ID = re.compile(rf"\A[a-zA-Z0-9_-]{{1,{MAX_CALL_ID}}}\Z")
#: A message ``name`` OpenAI accepts.
_MESSAGE_NAME = re.compile(r"\A[^\s<|\\/>]{1,64}\Z")


def check_content(item: Content) -> None:
    """Refuse an item a provider would reject (see the module's docstring); other types pass as they are."""
    if isinstance(item, ToolIO):
        check_tool_io(item)
    elif isinstance(item, (Instruction, Dialogue, Reasoning, Output)):
        _check_text(item.content_type, "text", item.text)
        if isinstance(item, Dialogue) and item.name is not None and not _MESSAGE_NAME.match(item.name):
            raise ValidationError(
                f"name {item.name!r:.80} is not accepted by the providers",
                what="dialogue",
                field="name",
                hint="use 1 to 64 characters without spaces or any of < | \\ / >",
            )
    elif isinstance(item, Image) and item.text is not None:
        _check_text("image", "text", item.text)


def _check_text(what: str, field: str, text: str) -> None:
    if not text.strip():
        raise ValidationError(
            f"{field} is {'empty' if not text else 'only whitespace'}: providers refuse an empty message",
            what=what,
            field=field,
            hint="give some text, or commit nothing",
        )


def check_tool_io(item: ToolIO) -> None:
    """Refuse a tool call or result a provider would reject: its name or id outside their documented patterns."""
    if not _TOOL_NAME.match(item.tool_name):
        raise ValidationError(
            f"tool name {item.tool_name!r:.80} is not accepted by the providers",
            what="tool_io",
            field="tool_name",
            hint="use 1 to 64 letters, digits, '_' or '-'",
        )
    if item.call_id is not None and not _CALL_ID.match(item.call_id):
        raise ValidationError(
            f"call_id {item.call_id!r:.80} is not accepted by the providers",
            what="tool_io",
            field="call_id",
            hint=f"use 1 to {MAX_CALL_ID} letters, digits, '_' or '-'; leave it out to have one generated",
        )
