"""What the providers accept, checked three ways in the kernel's tests.

1. ``conforms(value, T)``: ``value`` has the shape of the official SDK's
   request type ``T`` (a TypedDict, union, literal ...), strictly: no key the
   type does not declare, every required key present. The SDKs' types are
   TypedDicts, which nothing checks at run time, so this walks them.
2. ``openai_sequence_problems`` / ``anthropic_sequence_problems``: the
   ordering rules the APIs enforce and no type can express (results directly
   after their calls, alternating turns, non-empty text).
3. ``Recorder``: a loopback HTTP server standing in for both APIs; requests go
   through each SDK's own client, which serialises them as it would for the
   real service, and the server records the body and answers minimally.
"""

from __future__ import annotations

import collections.abc
import functools
import http.server
import json
import threading
import types
import typing
from typing import Any

try:  # the SDKs bring it; the ordering rules below work without it
    import typing_extensions
except ImportError:  # pragma: no cover
    typing_extensions = typing  # type: ignore[misc]

_REQUIRED = {getattr(m, "Required", None) for m in (typing, typing_extensions)} - {None}
_NOT_REQUIRED = {getattr(m, "NotRequired", None) for m in (typing, typing_extensions)} - {None}
_SEQUENCES = {list, collections.abc.Iterable, collections.abc.Sequence}


def conforms(value: Any, tp: Any, path: str = "$") -> list[str]:
    """Where ``value`` departs from the type ``tp`` (empty: it conforms)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp in (Any, object):
        return []
    if origin in _REQUIRED or origin in _NOT_REQUIRED or origin is typing.Annotated:
        return conforms(value, args[0], path)
    if origin in (typing.Union, types.UnionType):
        attempts = [conforms(value, arm, path) for arm in args]
        if any(not problems for problems in attempts):
            return []
        best = min(attempts, key=len)
        return best if len(best) <= 2 else [f"{path}: matches none of {len(args)} alternatives ({best[0]})"]
    if origin is typing.Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {args}"]
    if tp is type(None):
        return [] if value is None else [f"{path}: expected null, got {value!r:.40}"]
    if typing.is_typeddict(tp) or typing_extensions.is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{path}: expected an object ({tp.__name__}), got {type(value).__name__}"]
        hints = _hints(tp)
        problems = [f"{path}.{key}: not a field of {tp.__name__}" for key in value if key not in hints]
        for key, hint in hints.items():
            required = typing.get_origin(hint) in _REQUIRED or (
                tp.__total__ and typing.get_origin(hint) not in _NOT_REQUIRED
            )
            if key not in value:
                if required:
                    problems.append(f"{path}.{key}: required by {tp.__name__}, missing")
                continue
            problems += conforms(value[key], hint, f"{path}.{key}")
        return problems
    if origin in _SEQUENCES:
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        return [p for i, item in enumerate(value) for p in conforms(item, args[0] if args else Any, f"{path}[{i}]")]
    if origin in (dict, collections.abc.Mapping):
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {type(value).__name__}"]
        return [p for k, v in value.items() for p in conforms(v, args[1] if args else Any, f"{path}.{k}")]
    if tp is float:
        return [] if isinstance(value, (int, float)) and not isinstance(value, bool) else [f"{path}: not a number"]
    if tp is int and isinstance(value, bool):
        return [f"{path}: expected an integer, got a boolean"]
    if isinstance(tp, type):
        return [] if isinstance(value, tp) else [f"{path}: expected {tp.__name__}, got {type(value).__name__}"]
    if isinstance(origin, type):  # IO[bytes], os.PathLike[str] ...: a JSON value is never one
        return [] if isinstance(value, origin) else [f"{path}: expected {origin.__name__}, got {type(value).__name__}"]
    raise AssertionError(f"{path}: no rule for {tp!r}")


@functools.cache
def _hints(tp: Any) -> dict[str, Any]:
    return typing.get_type_hints(tp, include_extras=True)


def openai_request_problems(messages: list[dict[str, Any]]) -> list[str]:
    """The Chat Completions request ``messages`` against the SDK's types and the API's ordering rules."""
    from openai.types.chat import ChatCompletionMessageParam

    problems = [p for i, m in enumerate(messages) for p in conforms(m, ChatCompletionMessageParam, f"messages[{i}]")]
    return problems + openai_sequence_problems(messages)


def openai_sequence_problems(messages: list[dict[str, Any]], *, pending_at_end: bool = False) -> list[str]:
    """Every assistant ``tool_calls`` message followed at once by one ``tool`` message per call id; no stray tool message."""
    problems = []
    if not messages:
        problems.append("no messages")
    i = 0
    while i < len(messages):
        m = messages[i]
        if m["role"] == "tool":
            problems.append(f"messages[{i}]: a tool message that answers no call just before it")
        if m["role"] == "assistant" and m.get("tool_calls"):
            ids = [c["id"] for c in m["tool_calls"]]
            if not all(ids) or len(set(ids)) != len(ids):
                problems.append(f"messages[{i}]: tool call ids {ids} are empty or repeated")
            j, answered = i + 1, []
            while j < len(messages) and messages[j]["role"] == "tool":
                answered.append(messages[j].get("tool_call_id"))
                j += 1
            if sorted(answered, key=str) != sorted(ids) and not (pending_at_end and j == len(messages)):
                problems.append(f"messages[{i}]: calls {ids} answered by {answered}")
            i = j
            continue
        i += 1
    return problems


def anthropic_request_problems(request: dict[str, Any]) -> list[str]:
    """``{"system", "messages"}`` against the SDK's request types and the API's turn rules."""
    from anthropic.types import MessageParam, TextBlockParam

    problems = conforms(request["system"], str | list[TextBlockParam], "system")
    problems += [p for i, m in enumerate(request["messages"]) for p in conforms(m, MessageParam, f"messages[{i}]")]
    return problems + anthropic_sequence_problems(request["messages"])


def anthropic_sequence_problems(turns: list[dict[str, Any]], *, pending_at_end: bool = False) -> list[str]:
    """At least one turn, user first, roles alternating, no blank text, every tool_use answered in the next turn."""
    problems = []
    if not turns:
        return ["no messages: Anthropic needs at least one"]
    if turns[0]["role"] != "user":
        problems.append("the first turn is not the user's")
    for i, turn in enumerate(turns):
        if i and turn["role"] == turns[i - 1]["role"]:
            problems.append(f"messages[{i}]: two {turn['role']} turns in a row")
        for block in turn["content"]:
            if block["type"] == "text" and not block["text"].strip():
                problems.append(f"messages[{i}]: a text block with no text")
        uses = [b["id"] for b in turn["content"] if b["type"] == "tool_use"]
        results = [b["tool_use_id"] for b in turn["content"] if b["type"] == "tool_result"]
        if results:
            before = turns[i - 1]["content"] if i else []
            asked = (
                {b["id"] for b in before if b["type"] == "tool_use"} if turns[i - 1]["role"] == "assistant" else set()
            )
            if not set(results) <= asked or len(set(results)) != len(results):
                problems.append(f"messages[{i}]: tool results {results} answer no tool_use just before")
            leading = [b["type"] for b in turn["content"]][: len(results)]
            if leading != ["tool_result"] * len(results):
                problems.append(f"messages[{i}]: tool results do not come first in the turn")
        if uses:
            if not all(uses) or len(set(uses)) != len(uses):
                problems.append(f"messages[{i}]: tool_use ids {uses} are empty or repeated")
            if i + 1 == len(turns):
                if not pending_at_end:
                    problems.append(f"messages[{i}]: tool_use {uses} is never answered")
                continue
            answers = [b["tool_use_id"] for b in turns[i + 1]["content"] if b["type"] == "tool_result"]
            if sorted(answers) != sorted(uses):
                problems.append(f"messages[{i}]: tool_use {uses} answered by {answers}")
    return problems


_OPENAI_REPLY = {
    "id": "chatcmpl-test",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-test",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 11, "completion_tokens": 1, "total_tokens": 12},
}
_ANTHROPIC_REPLY = {
    "id": "msg_test",
    "type": "message",
    "role": "assistant",
    "model": "claude-test",
    "content": [{"type": "text", "text": "ok"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 11, "output_tokens": 1},
}


class Recorder:
    """A loopback server for both APIs: records each request body by path, answers with a minimal valid reply."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                recorder.bodies.append((self.path, body))
                reply = _OPENAI_REPLY if self.path.endswith("/chat/completions") else _ANTHROPIC_REPLY
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def send_openai(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """``messages`` sent through the OpenAI SDK's client; the body the server received."""
        import openai

        # trust_env=False: no proxy from the environment stands between the client and loopback.
        http = openai.DefaultHttpxClient(trust_env=False)
        with openai.OpenAI(base_url=self.url + "/v1", api_key="test-key", max_retries=0, http_client=http) as client:
            reply = client.chat.completions.create(model="gpt-test", messages=messages)  # type: ignore[arg-type]
        assert reply.choices[0].message.content == "ok"
        path, body = self.bodies[-1]
        assert path == "/v1/chat/completions"
        return body

    def send_anthropic(self, request: dict[str, Any]) -> dict[str, Any]:
        """``{"system", "messages"}`` sent through the Anthropic SDK's client; the body the server received."""
        import anthropic

        http = anthropic.DefaultHttpxClient(trust_env=False)
        with anthropic.Anthropic(base_url=self.url, api_key="test-key", max_retries=0, http_client=http) as client:
            extra = {"system": request["system"]} if request["system"] else {}
            reply = client.messages.create(model="claude-test", max_tokens=16, messages=request["messages"], **extra)
        assert reply.content[0].text == "ok"  # type: ignore[union-attr]
        path, body = self.bodies[-1]
        assert path == "/v1/messages"
        return body
