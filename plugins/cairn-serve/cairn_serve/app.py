"""The Starlette application of ``cairn serve``: the JSON API, the pages that use it, and its guards.

Read-only: every route is GET (anything else is 405) and no route writes
context, runs or memory. The one record a request can leave is a metered
provider call: a hybrid or semantic memory search embeds its query through
the configured embedder, which the kernel meters (a spend record in the
ledger, under the project's spend ceilings) like every other call.
Guards, outermost first:

- with a token (required for any address but loopback), a request must carry
  it: ``Authorization: Bearer TOKEN``, or ``?token=TOKEN`` once (answered with
  an HttpOnly, SameSite=Strict cookie so the page's own requests carry it);
- without one, the Host header must name the loopback address the server is
  bound to, so a web page on another site cannot reach it by DNS rebinding;
- every response forbids framing and inline script (Content-Security-Policy)
  and sends no Referer, so a token in the address bar never leaks.

The store is read on the event loop's thread, one request at a time: a local
viewer needs no more, and a store connection is never shared across threads.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from cairn.errors import CairnError, MissingFacetError, NotFoundError
from cairn_serve.views import Views

__all__ = ["PAGES", "TOKEN_COOKIE", "build_app"]

HERE = Path(__file__).parent
TOKEN_COOKIE = "cairn_token"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})

#: (path, template, title, facet the page needs or None): the navigation, in order.
PAGES = (
    ("/", "graph.html", "History", None),
    ("/materialize", "materialize.html", "Materialize", None),
    ("/diff", "diff.html", "Diff", None),
    ("/runs", "runs.html", "Runs", "ledger"),
    ("/logs", "logs.html", "Calls", "ledger"),
    ("/chat", "chat.html", "Chat", "chat"),
    ("/evals", "evals.html", "Evals", "ledger"),
    ("/spend", "spend.html", "Spend", "ledger"),
    ("/memory", "memory.html", "Memory", "documents"),
    ("/sessions", "sessions.html", "Sessions", None),
    ("/checkpoints", "checkpoints.html", "Checkpoints", None),
)

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Guard:
    """The token and Host checks and the security headers (pure ASGI, so streaming stays untouched)."""

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self._refusal(request)
        if refusal is not None:
            await _secured(refusal)(scope, receive, send)
            return
        given = request.query_params.get("token")
        if self.token and given is not None:
            # Trade the token in the address for a cookie, and drop it from the address bar.
            target = request.url.remove_query_params("token")
            response = RedirectResponse(str(target.path) + (f"?{target.query}" if target.query else ""), 303)
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict", path="/")
            await _secured(response)(scope, receive, send)
            return

        async def send_secured(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                present = {k.lower() for k, _ in headers}
                for key, value in _HEADERS.items():
                    if key.lower().encode() not in present:
                        headers.append((key.lower().encode(), value.encode()))
            await send(message)

        await self.app(scope, receive, send_secured)

    def _refusal(self, request: Request) -> Response | None:
        if self.token is None:
            if _host_name(request.headers.get("host") or "") not in LOOPBACK_HOSTS:
                return PlainTextResponse(
                    "refused: this server answers only requests addressed to 127.0.0.1 or localhost\n", 421
                )
            return None
        offered = [
            request.query_params.get("token"),
            request.cookies.get(TOKEN_COOKIE),
            _bearer(request.headers.get("authorization")),
        ]
        if any(value and hmac.compare_digest(value.encode(), self.token.encode()) for value in offered):
            return None
        return PlainTextResponse(
            "unauthorized: open the URL with ?token=... that `cairn serve` printed, "
            "or send Authorization: Bearer TOKEN\n",
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )


def _host_name(host: str) -> str:
    """The name in a Host header, without its port (``[::1]:8000`` -> ``[::1]``)."""
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.partition(":")[0].lower()


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def _secured(response: Response) -> Response:
    for key, value in _HEADERS.items():
        response.headers.setdefault(key, value)
    return response


def _status(exc: CairnError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, MissingFacetError):
        return 501
    return 400


def build_app(state: Any, *, token: str | None = None, debug: bool = False) -> Starlette:
    """The application over one project's ``State`` (from ``cairn.cli``); ``token`` guards it when set."""
    views = Views(state)
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    def api(method: str, *params: str) -> Any:
        """An endpoint calling ``views.<method>`` with path parameters and the named query parameters."""

        async def endpoint(request: Request) -> Response:
            args = dict(request.path_params)
            kwargs = {name: request.query_params.get(name) for name in params if name in request.query_params}
            try:
                data = getattr(views, method)(*args.values(), **kwargs)
            except CairnError as exc:
                return JSONResponse(views.out({"error": exc.message, "hint": exc.hint}), _status(exc))
            return Response(
                json.dumps(data, ensure_ascii=False, default=str, allow_nan=False),
                media_type="application/json",
            )

        return endpoint

    def page(template: str, title: str, facet: str | None) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                facets = views.facets()
                overview = views.overview()
            except CairnError as exc:
                return PlainTextResponse(f"error: {exc}\n", _status(exc))
            nav = [(path, name) for path, _, name, need in PAGES if need is None or need in facets]
            context = {
                "title": title,
                "nav": nav,
                "overview": overview,
                "available": facet is None or facet in facets,
                "facet": facet,
                "query": dict(request.query_params),
                "path_params": dict(request.path_params),
            }
            return templates.TemplateResponse(request, template, context)

        return endpoint

    routes = [
        Route("/api/overview", api("overview")),
        Route("/api/branches", api("branches")),
        Route("/api/graph", api("graph", "limit")),
        Route("/api/commits/{rev}", api("commit")),
        Route("/api/materialize", api("materialize", "rev", "as_of", "budget", "format", "dropped_limit")),
        Route("/api/diff", api("diff", "a", "b")),
        Route("/api/runs", api("runs", "type", "status", "since", "limit")),
        Route("/api/runs/{run_id}", api("run")),
        Route("/api/calls", api("calls", "model", "since", "limit")),
        Route("/api/threads", api("threads")),
        Route("/api/messages", api("messages", "thread", "run", "limit")),
        Route("/api/evals", api("evals", "limit")),
        Route("/api/evals/compare", api("compare", "base", "run", "resamples", "seed")),
        Route("/api/spend", api("spend", "since")),
        Route("/api/memory", api("memory", "subject", "episodes")),
        Route("/api/memory/search", api("memory_search", "q", "mode", "kind", "k")),
        Route("/api/sessions", api("sessions")),
        Route("/api/sessions/{session_id}", api("session")),
        Route("/api/checkpoints", api("checkpoints")),
        *[Route(path, page(template, title, facet)) for path, template, title, facet in PAGES],
        Route("/runs/{run_id}", page("run.html", "Run", "ledger")),
        Route("/sessions/{session_id}", page("session.html", "Session", None)),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": f"no API endpoint {request.url.path}", "hint": "see docs/serve.md"}, 404)
        return PlainTextResponse("not found\n", 404)

    app = Starlette(
        debug=debug,
        routes=routes,
        middleware=[Middleware(Guard, token=token)],
        exception_handlers={404: not_found},
    )
    app.state.views = views
    return app
