"""A fake OpenAI-compatible server on 127.0.0.1, for testing providers over real HTTP.

Standard library only (``http.server`` in a thread), so the kernel gains no
dependency. It serves ``POST /v1/chat/completions`` (whole, and streamed as
server-sent events with ``stream_options.include_usage``) and
``POST /v1/embeddings``, answering from a script and recording every request::

    from cairn.testing.fake_openai import FakeOpenAI, Fault, Reply, Stall

    with FakeOpenAI() as server:                      # or the ``fake_openai`` pytest fixture
        server.script(Fault(429, headers={"Retry-After": "1"}), Reply("Hello"))
        ...  # point a client at server.url ("http://127.0.0.1:<port>/v1")
        server.requests[-1].json["model"]

Each request takes the next step scripted for its endpoint (``"chat"`` or
``"embeddings"``); with nothing scripted, chat answers ``Reply()`` and
embeddings answer ``EmbeddingReply()``. Steps:

- ``Reply``: a chat reply (text and/or tool calls, usage, finish reason);
  streamed, it can stop mid-way (``cut_after``: the connection drops, no
  ``[DONE]``) or send ``data: {"error": ...}`` after HTTP 200 (``error_after``).
- ``Fault``: any status with any body and headers (``Retry-After`` ...).
- ``Stall``: wait before answering, to make a client time out.
- ``EmbeddingReply``: vectors (deterministic from the text by default), in
  shuffled order or with a wrong size on request.

Set ``api_key`` to make the server refuse requests without
``Authorization: Bearer <api_key>`` with a 401, as OpenAI does.
"""

from __future__ import annotations

import hashlib
import json
import math
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

__all__ = ["EmbeddingReply", "FakeOpenAI", "Fault", "RecordedRequest", "Reply", "Stall", "fake_vector"]

AUTO = "auto"


@attrs.define
class Reply:
    """A chat completion. ``usage="auto"`` counts words; ``None`` leaves usage out (as an interrupted stream would).

    ``tool_calls`` are dicts with ``id``, ``name`` and ``arguments`` (a JSON
    string). Streaming: ``chunk_chars`` characters of text (and of tool
    arguments) per chunk; ``cut_after`` drops the connection after that many
    chunks; ``error_after`` sends ``error`` as an SSE event after that many
    chunks; ``repeat_index`` sends every tool call at index 0 (as some
    servers do, telling calls apart by id only).
    """

    content: str | None = "Hello from the fake server."
    tool_calls: list[Any] = attrs.field(factory=list)
    finish_reason: str | None = None
    usage: Any = AUTO
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    model: str | None = None
    chunk_chars: int = 4
    cut_after: int | None = None
    error_after: int | None = None
    error: dict[str, Any] = attrs.field(
        factory=lambda: {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    )
    chunk_delay_s: float = 0.0
    repeat_index: bool = False
    headers: dict[str, str] = attrs.field(factory=dict)


@attrs.define
class Fault:
    """An HTTP error: ``status`` with ``body`` (a dict is sent as JSON, str/bytes as they are) and ``headers``."""

    status: int
    body: Any = None
    headers: dict[str, str] = attrs.field(factory=dict)

    @classmethod
    def openai(
        cls,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """An error in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""
        return cls(status, {"error": {"message": message, "type": type, "param": param, "code": code}}, headers or {})


@attrs.define
class Stall:
    """Wait ``seconds`` (cut short when the server stops), then answer with ``then`` (default: ``Reply()``)."""

    seconds: float
    then: Any = None


@attrs.define
class EmbeddingReply:
    """Embedding vectors: ``vectors`` as given, or ``fake_vector(text, dimensions)`` per input.

    ``dimensions`` None means the request's ``dimensions`` or the server's
    default. ``shuffle`` returns the items in reverse order (clients must
    reorder by ``index``); ``usage="auto"`` counts words.
    """

    vectors: list[Any] | None = None
    dimensions: int | None = None
    shuffle: bool = False
    usage: Any = AUTO
    model: str | None = None


@attrs.frozen
class RecordedRequest:
    """One request the server received: method, path, headers (lower-case names) and the parsed JSON body."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any


def fake_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for ``text`` (SHA-256 based; the same in every process)."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _words(text: str | None) -> int:
    return len(text.split()) if text else 0


class FakeOpenAI:
    """The server. ``url`` is the base URL to configure (``http://127.0.0.1:<port>/v1``)."""

    def __init__(self, *, model: str = "fake-model", dimensions: int = 8, api_key: str | None = None) -> None:
        self.model = model
        self.dimensions = dimensions
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self._queues: dict[str, deque[Any]] = {"chat": deque(), "embeddings": deque()}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        handler = _handler_for(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # idle keep-alive connections would otherwise hold handler threads
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting -----------------------------------------------------------------------

    def script(self, *steps: Any, endpoint: str = "chat") -> None:
        """Queue the answers to the next requests to ``endpoint`` (``"chat"`` or ``"embeddings"``)."""
        with self._lock:
            self._queues[endpoint].extend(steps)

    def pending(self, endpoint: str = "chat") -> int:
        """Scripted steps not yet used."""
        with self._lock:
            return len(self._queues[endpoint])

    def calls(self, endpoint: str = "chat") -> list[RecordedRequest]:
        """The requests received at ``endpoint``."""
        path = "/v1/chat/completions" if endpoint == "chat" else "/v1/embeddings"
        return [r for r in self.requests if r.path == path]

    def _next(self, endpoint: str, default: Any) -> tuple[Any, int]:
        with self._lock:
            self._counter += 1
            step = self._queues[endpoint].popleft() if self._queues[endpoint] else default
            return step, self._counter


def _handler_for(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and
            # the client's delayed ACK add tens of milliseconds to every answer.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with server._lock:
                server._connections.add(self.connection)

        def finish(self) -> None:
            with server._lock:
                server._connections.discard(self.connection)
            try:
                super().finish()
            except OSError:
                pass

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

        # -- plumbing ------------------------------------------------------------------

        def _read_json(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                return json.loads(raw) if raw else None
            except ValueError:
                return raw.decode("utf-8", "replace")

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            if isinstance(body, (dict, list)):
                data = json.dumps(body).encode()
                content_type = "application/json"
            elif isinstance(body, str):
                data = body.encode()
                content_type = "text/plain; charset=utf-8"
            elif body is None:
                data = b""
                content_type = "application/json"
            else:
                data = bytes(body)
                content_type = "application/octet-stream"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, str(value))
            self.end_headers()
            self.wfile.write(data)

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _event(self, payload: Any) -> None:
            text = payload if isinstance(payload, str) else json.dumps(payload)
            self._chunk(f"data: {text}\n\n".encode())

        def _drop(self) -> None:
            """Close the connection mid-response: no final chunk, no [DONE]."""
            self.close_connection = True
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        # -- routing -------------------------------------------------------------------

        def do_GET(self) -> None:
            self._record(None)
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
            else:
                self._not_found()

        def do_POST(self) -> None:
            body = self._read_json()
            self._record(body)
            if server.api_key is not None and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                self._send(
                    401,
                    {
                        "error": {
                            "message": "Incorrect API key provided.",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": "invalid_api_key",
                        }
                    },
                )
                return
            path = self.path.rstrip("/")
            try:
                if path == "/v1/chat/completions":
                    step, number = server._next("chat", Reply())
                    self._answer(step, number, body if isinstance(body, dict) else {}, "chat")
                elif path == "/v1/embeddings":
                    step, number = server._next("embeddings", EmbeddingReply())
                    self._answer(step, number, body if isinstance(body, dict) else {}, "embeddings")
                else:
                    self._not_found()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (a timeout test): nothing to answer

        def _record(self, body: Any) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            with server._lock:
                server.requests.append(RecordedRequest(self.command, self.path, headers, body))

        def _not_found(self) -> None:
            self._send(
                404,
                {
                    "error": {
                        "message": f"Unknown request URL: {self.command} {self.path}.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "unknown_url",
                    }
                },
            )

        def _answer(self, step: Any, number: int, body: dict[str, Any], endpoint: str) -> None:
            if isinstance(step, Stall):
                server._stopping.wait(step.seconds)
                if server._stopping.is_set():
                    self._drop()
                    return
                step = step.then if step.then is not None else (Reply() if endpoint == "chat" else EmbeddingReply())
            if isinstance(step, Fault):
                self._send(step.status, step.body, step.headers)
            elif isinstance(step, Reply):
                if body.get("stream"):
                    self._stream(step, number, body)
                else:
                    self._whole(step, number, body)
            elif isinstance(step, EmbeddingReply):
                self._embeddings(step, number, body)
            else:
                raise TypeError(f"cannot answer with {step!r}")

        # -- chat ----------------------------------------------------------------------

        def _usage(self, reply: Reply, body: dict[str, Any]) -> dict[str, Any] | None:
            if reply.usage is None:
                return None
            if reply.usage != AUTO:
                return dict(reply.usage)
            prompt = sum(
                _words(m.get("content") if isinstance(m.get("content"), str) else None)
                for m in body.get("messages") or []
                if isinstance(m, dict)
            )
            completion = _words(reply.content) + sum(_words(c.get("arguments", "")) for c in reply.tool_calls)
            usage: dict[str, Any] = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
            if reply.cached_tokens is not None:
                usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens, "audio_tokens": 0}
            if reply.reasoning_tokens is not None:
                usage["completion_tokens_details"] = {"reasoning_tokens": reply.reasoning_tokens, "audio_tokens": 0}
            return usage

        def _finish_reason(self, reply: Reply) -> str:
            return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")

        def _whole(self, reply: Reply, number: int, body: dict[str, Any]) -> None:
            message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
            if reply.tool_calls:
                message["tool_calls"] = [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": c.get("arguments", "")},
                    }
                    for c in reply.tool_calls
                ]
            answer: dict[str, Any] = {
                "id": f"chatcmpl-fake{number}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": reply.model or body.get("model") or server.model,
                "choices": [
                    {"index": 0, "message": message, "logprobs": None, "finish_reason": self._finish_reason(reply)}
                ],
            }
            usage = self._usage(reply, body)
            if usage is not None:
                answer["usage"] = usage
            self._send(200, answer, {"x-request-id": f"req_fake{number}", **reply.headers})

        def _pieces(self, reply: Reply) -> Iterator[dict[str, Any]]:
            """Stream deltas: role, text in pieces, then each tool call's head and argument pieces."""
            size = max(1, reply.chunk_chars)
            yield {"role": "assistant", "content": ""}
            text = reply.content or ""
            for at in range(0, len(text), size):
                yield {"content": text[at : at + size]}
            for index, call in enumerate(reply.tool_calls):
                slot = 0 if reply.repeat_index else index
                yield {
                    "tool_calls": [
                        {
                            "index": slot,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["name"], "arguments": ""},
                        }
                    ]
                }
                arguments = call.get("arguments", "")
                for at in range(0, len(arguments), size):
                    yield {"tool_calls": [{"index": slot, "function": {"arguments": arguments[at : at + size]}}]}

        def _stream(self, reply: Reply, number: int, body: dict[str, Any]) -> None:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            model = reply.model or body.get("model") or server.model
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("x-request-id", f"req_fake{number}")
            for name, value in reply.headers.items():
                self.send_header(name, str(value))
            self.end_headers()
            base = {
                "id": f"chatcmpl-fake{number}",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
            }
            if include_usage:
                base["usage"] = None
            for sent, delta in enumerate(self._pieces(reply)):
                if reply.cut_after is not None and sent >= reply.cut_after:
                    self._drop()
                    return
                if reply.error_after is not None and sent >= reply.error_after:
                    self._event({"error": reply.error})
                    self._chunk(b"")
                    return
                self._event(
                    {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]}
                )
                if reply.chunk_delay_s:
                    time.sleep(reply.chunk_delay_s)
            self._event(
                {
                    **base,
                    "choices": [
                        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": self._finish_reason(reply)}
                    ],
                }
            )
            usage = self._usage(reply, body)
            if include_usage and usage is not None:
                self._event({**base, "choices": [], "usage": usage})
            self._event("[DONE]")
            self._chunk(b"")

        # -- embeddings ----------------------------------------------------------------

        def _embeddings(self, reply: EmbeddingReply, number: int, body: dict[str, Any]) -> None:
            inputs = body.get("input")
            texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
            dimensions = reply.dimensions or body.get("dimensions") or server.dimensions
            vectors = reply.vectors if reply.vectors is not None else [fake_vector(str(t), dimensions) for t in texts]
            data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
            if reply.shuffle:
                data.reverse()
            answer: dict[str, Any] = {
                "object": "list",
                "data": data,
                "model": reply.model or body.get("model") or server.model,
            }
            if reply.usage == AUTO:
                tokens = sum(_words(str(t)) for t in texts)
                answer["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
            elif reply.usage is not None:
                answer["usage"] = reply.usage
            self._send(200, answer, {"x-request-id": f"req_fake{number}"})

    return Handler
