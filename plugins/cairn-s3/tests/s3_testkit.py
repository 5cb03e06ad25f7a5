"""Test helpers for cairn-s3: moto's server in a child process, and a throttling proxy in front of it.

Everything binds 127.0.0.1 and is stopped by the fixture that started it.
"""

from __future__ import annotations

import http.client
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

LAUNCHER = Path(__file__).with_name("moto_launcher.py")

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
)


class MotoServer:
    """moto's S3 server in a child process on a free loopback port; ``enforce_auth`` refuses every key."""

    def __init__(self, *, enforce_auth: bool = False) -> None:
        env = dict(os.environ)
        if enforce_auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"  # check every request's credentials, from the first
        self._process = subprocess.Popen(
            [sys.executable, str(LAUNCHER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"moto's server did not start (it said {line!r})")
        self.port = int(line)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._process.stdin:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=15)

    def __enter__(self) -> MotoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ThrottlingProxy:
    """A loopback HTTP proxy to ``upstream`` that answers 503 SlowDown to the first ``throttle`` requests.

    ``throttle=None`` throttles every request. ``methods`` limits throttling
    to those HTTP methods. ``seen`` and ``throttled`` count requests.
    """

    def __init__(self, upstream_port: int, *, throttle: int | None, methods: tuple[str, ...] = ()) -> None:
        self.upstream_port = upstream_port
        self.remaining = throttle
        self.methods = methods
        self.seen = 0
        self.throttled = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy._should_throttle(self.command):
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOW_DOWN)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(SLOW_DOWN)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    self.send_response(response.status)
                    for key, value in response.getheaders():
                        # A HEAD response's Content-Length is the object's size: pass it on as it is.
                        skip = ("transfer-encoding", "connection") + (
                            () if self.command == "HEAD" else ("content-length",)
                        )
                        if key.lower() not in skip:
                            self.send_header(key, value)
                    if self.command != "HEAD":
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _should_throttle(self, method: str) -> bool:
        with self._lock:
            self.seen += 1
            if self.methods and method not in self.methods:
                return False
            if self.remaining is None or self.remaining > 0:
                if self.remaining is not None:
                    self.remaining -= 1
                self.throttled += 1
                return True
            return False

    def __enter__(self) -> ThrottlingProxy:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
