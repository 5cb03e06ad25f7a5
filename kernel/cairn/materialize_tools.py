"""Tool calls in the order the providers accept: every result directly after its call, nothing unanswered.

OpenAI refuses an assistant message with ``tool_calls`` that is not
followed, before anything else, by one ``tool`` message per call id, and a
``tool`` message that answers no call just before it; Anthropic refuses a
``tool_use`` block without a ``tool_result`` in the next user turn, and a
``tool_result`` that answers none. History can hold all of these: a user
turn committed between a call and its result, a result committed before its
call, a call whose result has not come yet, a result whose call was deleted.

``arrange_tool_calls`` takes the materializer's kept items in their
materialized order and returns them in an order both accept, with what it
had to leave out and why:

- a call is followed directly by its result, wherever the result was
  committed; calls adjacent in the materialized order stay one group
  (parallel calls), their results after the group, in the calls' order;
- a call with no result is left out: ``pending_tool_call`` when nothing but
  other calls and their results follows it (the model asked and nobody has
  answered yet; kept when the caller asks, ``keep_pending=True``, and then
  placed last, after the answered calls of its group and their results), else
  ``orphaned_tool_call``;
- a result whose call is not kept: ``orphaned_tool_result``; a second
  result for one call: ``duplicate_tool_result`` (the newest is kept); a
  second call with one id: ``duplicate_tool_call``;
- a ``tool_io`` item without ``call_id`` (written before ids were given at
  commit time) cannot be paired: ``missing_call_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from cairn.model import ToolIO

__all__ = ["TOOL_REASONS", "arrange_tool_calls", "call_id_of", "is_call", "is_result"]

#: The reasons ``arrange_tool_calls`` gives for what it leaves out.
TOOL_REASONS = (
    "pending_tool_call",
    "orphaned_tool_call",
    "orphaned_tool_result",
    "duplicate_tool_call",
    "duplicate_tool_result",
    "missing_call_id",
)

C = TypeVar("C")  # the materializer's candidate: has .content


def is_call(content: Any) -> bool:
    return isinstance(content, ToolIO) and content.direction == "call" and bool(content.call_id)


def is_result(content: Any) -> bool:
    return isinstance(content, ToolIO) and content.direction == "result" and bool(content.call_id)


def call_id_of(candidate: Any) -> str:
    return str(candidate.content.call_id)


def arrange_tool_calls(kept: Sequence[C], *, keep_pending: bool = False) -> tuple[list[C], list[tuple[C, str]]]:
    """``kept`` (in materialized order) rearranged so tool calls and results form valid sequences; and the left out."""
    calls: dict[str, C] = {}
    results: dict[str, list[C]] = {}
    for c in kept:
        content = c.content  # type: ignore[attr-defined]  # every candidate has its content
        if is_call(content):
            calls.setdefault(content.call_id, c)
        elif is_result(content):
            results.setdefault(content.call_id, []).append(c)

    out: list[C] = []
    dropped: list[tuple[C, str]] = []
    unanswered: list[C] = []
    run: list[C] = []
    tail_run: list[C] = []  # the last group of calls, when nothing else follows it

    def flush() -> None:
        if not run:
            return
        out.extend(run)
        for call in run:
            answers = results.get(call_id_of(call), [])
            if not answers:
                unanswered.append(call)
                continue
            *older, newest = answers  # in materialized order: the last is the newest
            out.append(newest)
            dropped.extend((r, "duplicate_tool_result") for r in older)
        run.clear()

    previous_was_call = False
    for c in kept:
        content = c.content  # type: ignore[attr-defined]  # as above
        if isinstance(content, ToolIO) and not content.call_id:
            dropped.append((c, "missing_call_id"))
            continue
        if is_result(content):
            if content.call_id not in calls:
                dropped.append((c, "orphaned_tool_result"))
            else:
                previous_was_call = False  # placed with its call; it still separates the calls around it
            continue
        if is_call(content):
            if calls[content.call_id] is not c:
                dropped.append((c, "duplicate_tool_call"))
                continue
            if not previous_was_call:
                flush()
            run.append(c)
            previous_was_call = True
            continue
        flush()
        out.append(c)
        previous_was_call = False
    tail_run = list(run)
    flush()

    if unanswered:
        tail = {id(c) for c in tail_run}
        leave_out: set[int] = set()
        last: list[C] = []  # pending calls kept: at the very end, after the answered calls of their group
        for call in unanswered:
            pending = id(call) in tail
            leave_out.add(id(call))
            if pending and keep_pending:
                last.append(call)
            else:
                dropped.append((call, "pending_tool_call" if pending else "orphaned_tool_call"))
        out = [c for c in out if id(c) not in leave_out] + last
    return out, dropped
