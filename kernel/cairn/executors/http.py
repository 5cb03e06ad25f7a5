"""``http``: one HTTP request to a URL the project allows, bounded in time and size.

Input: ``{"method": "GET", "url": "https://...", "headers": {...}, "body": "text"}``.
Output: status, headers and body (cut at ``max_bytes``: a longer response
fails). ``[exec.http] allow`` lists the URLs it may reach (glob patterns);
empty allows none. Redirects are not followed (a redirect is the result),
so a call can never leave the allowlist.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from cairn.errors import ValidationError
from cairn.executor import ExecResult, Executor
from cairn.redact import Redactor

__all__ = ["HttpConfig", "HttpExecutor"]


@attrs.frozen
class HttpConfig:
    """``[exec.http]``."""

    #: URLs it may request (glob patterns such as "https://api.example.com/*"); empty allows none.
    allow: list[str] = attrs.field(factory=list)
    timeout_s: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    max_bytes: int = attrs.field(default=1_000_000, validator=attrs.validators.gt(0))


class HttpExecutor(Executor):
    input_schema = {
        "type": "object",
        "properties": {
            "method": {"type": "string", "enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]},
            "url": {"type": "string", "minLength": 1, "maxLength": 4096},
            "headers": {"type": "object"},
            "body": {"type": "string"},
            "timeout_s": {"type": "number", "minimum": 0.001},
        },
        "required": ["url"],
        "additionalProperties": False,
    }
    scopes = ("net",)

    def __init__(self, config: HttpConfig) -> None:
        self.config = config
        self.timeout_s = config.timeout_s

    def describe(self, input: Mapping[str, Any]) -> dict[str, Any]:
        parts = urlsplit(input["url"])
        return {"method": input.get("method", "GET"), "host": parts.hostname or "", "scheme": parts.scheme}

    def check(self, input: Mapping[str, Any]) -> None:
        self._checked_url(input["url"])
        headers = input.get("headers", {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise ValidationError("input.headers must map names to text")

    def _checked_url(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError(f"{url!r:.100} is not an http(s) URL")
        if not any(fnmatch.fnmatchcase(url, p) for p in self.config.allow):
            raise ValidationError(
                f"URL {url!r:.100} is not in [exec.http] allow",
                hint="add it (or a pattern such as https://api.example.com/*) to [exec.http] allow",
            )
        return url

    def execute(self, input: Mapping[str, Any], *, timeout_s: float) -> ExecResult:
        self.check(input)
        url, headers = input["url"], input.get("headers", {})
        body = input["body"].encode("utf-8") if "body" in input else None
        # urllib.request (and http.client, email ...) load here, not when the kernel registers this
        # executor: every cairn command registers it, few send a request.
        import urllib.error
        import urllib.request

        class NoRedirects(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None  # the 3xx response is the result

        request = urllib.request.Request(url, data=body, headers=dict(headers), method=input.get("method", "GET"))
        opener = urllib.request.build_opener(NoRedirects)
        limit = self.config.max_bytes
        redactor = Redactor.from_environment(names=())
        try:
            with opener.open(request, timeout=min(timeout_s, input.get("timeout_s", timeout_s))) as response:
                status, reply_headers, data = response.status, dict(response.headers), response.read(limit + 1)
        except urllib.error.HTTPError as exc:
            status, reply_headers, data = exc.code, dict(exc.headers or {}), exc.read(limit + 1)
        except TimeoutError:
            return ExecResult("timed_out", {}, f"no answer within {timeout_s:g} s")
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                return ExecResult("timed_out", {}, f"no answer within {timeout_s:g} s")
            return ExecResult("failed", {}, f"request failed: {reason}")
        except KeyboardInterrupt:
            return ExecResult("cancelled", {}, "interrupted")
        if len(data) > limit:
            return ExecResult("failed", {"status": status}, f"the response is over [exec.http] max_bytes = {limit}")
        output = {
            "status": status,
            "headers": {k: redactor.text(v) for k, v in reply_headers.items()},
            "body": redactor.text(data.decode("utf-8", "replace")),
        }
        return ExecResult("ok" if status < 400 else "failed", output, None if status < 400 else f"HTTP {status}")
