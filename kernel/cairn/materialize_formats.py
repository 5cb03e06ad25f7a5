"""Neutral messages in each provider's wire shape: OpenAI chat messages, Anthropic's system + messages, plain text.

The materializer (``cairn.materialize``) builds neutral ``Message`` objects;
these functions are the last step, and the one provider plugins call.
"""

from __future__ import annotations

import json
from typing import Any

from cairn.errors import ValidationError
from cairn.images import anthropic_image_block, openai_image_part
from cairn.model import Message

__all__ = ["BEGIN", "CONTINUING", "FORMATS", "format_messages", "to_anthropic", "to_openai", "to_text"]

FORMATS = ("openai", "anthropic", "text")


def format_messages(messages: list[Message], format: str) -> Any:
    if format == "openai":
        return to_openai(messages)
    if format == "anthropic":
        return to_anthropic(messages)
    if format == "text":
        return to_text(messages)
    raise ValidationError(f"unknown format {format!r}", hint=f"one of: {', '.join(FORMATS)}")


def to_openai(messages: list[Message]) -> list[dict[str, Any]]:
    """OpenAI chat messages; consecutive tool-call messages merge into one assistant turn."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if (
            m.tool_calls
            and out
            and out[-1]["role"] == "assistant"
            and out[-1].get("tool_calls")
            and not out[-1].get("content")
        ):
            out[-1]["tool_calls"].extend(_openai_call(c) for c in m.tool_calls)
            continue
        message: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.images and m.role == "user":  # image parts belong to user messages only
            text = [{"type": "text", "text": m.content}] if m.content else []
            message["content"] = text + [openai_image_part(image) for image in m.images]
        if m.tool_calls:
            message["tool_calls"] = [_openai_call(c) for c in m.tool_calls]
        if m.tool_call_id is not None:
            message["tool_call_id"] = m.tool_call_id
        elif m.name:
            message["name"] = m.name
        out.append(message)
    return out


def _openai_call(call: Any) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


#: The user turn Anthropic's request gets when the conversation would otherwise open with the assistant.
CONTINUING = "(continuing)"
#: The user turn Anthropic's request gets when there is nothing but system text (it needs one message).
BEGIN = "(begin)"


def to_anthropic(messages: list[Message]) -> dict[str, Any]:
    """Anthropic Messages: system text separate, only user/assistant turns, same-role turns merged.

    Tool calls become ``tool_use`` blocks, results ``tool_result`` blocks in a
    user turn (``is_error: true`` for a result whose status is ``error``). The
    conversation must open with a user turn, so a leading assistant turn gets
    a short user turn before it (``CONTINUING``), and a context of system text
    alone gets one user turn (``BEGIN``). Anthropic has no per-message name:
    a named turn's text starts with ``name: ``.
    """
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            if m.content:
                system.append(f"{m.name}: {m.content}" if m.name else m.content)
            continue
        if m.role == "tool":
            role = "user"
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id or "",
                "content": m.content or "",
            }
            if m.is_error:
                result["is_error"] = True
            blocks: list[dict[str, Any]] = [result]
        else:
            role = "assistant" if m.role == "assistant" else "user"
            blocks = []
            if m.content:
                blocks.append({"type": "text", "text": f"{m.name}: {m.content}" if m.name else m.content})
            if role == "user":  # image blocks belong to user turns only
                blocks.extend(anthropic_image_block(image) for image in m.images)
            for call in m.tool_calls:
                try:
                    arguments = json.loads(call.arguments) if call.arguments else {}
                except ValueError:
                    arguments = {"arguments": call.arguments}
                blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if turns and turns[0]["role"] == "assistant":
        turns.insert(0, {"role": "user", "content": [{"type": "text", "text": CONTINUING}]})
    if not turns and system:
        turns.append({"role": "user", "content": [{"type": "text", "text": BEGIN}]})
    return {"system": "\n\n".join(system), "messages": turns}


def to_text(messages: list[Message]) -> str:
    parts = []
    for m in messages:
        if m.tool_calls:
            calls = "; ".join(f"{c.name}({c.arguments})" for c in m.tool_calls)
            parts.append(f"{m.role}: [tool call] {calls}")
        elif m.role == "tool":
            parts.append(f"tool {m.name or ''}: {m.content}".replace("tool : ", "tool: "))
        else:
            label = f"{m.role} ({m.name})" if m.name else m.role
            parts.append(f"{label}: {m.content}")
    return "\n\n".join(parts)
