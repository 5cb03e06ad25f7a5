"""``cairn mcp serve``: cairn's context engine and ledger as MCP tools and resources (the official SDK).

Tools (each with a JSON schema from its signature; a bad argument is a tool
error naming it, never a crash):

- reading: ``materialize``, ``log``, ``diff``, ``show_commit``, ``list_runs``,
  ``list_calls``, ``list_sessions``;
- writing (left out with ``--read-only``): ``commit_item``, ``record_run``,
  ``append_run_events``, ``close_run``. Writes go through the same objects
  the CLI uses (``Repo.append``, ``Ledger``), so content is validated by its
  type, budgets apply, and run fields are redacted before they are stored.

Resources: ``cairn://branches/{branch}/materialized`` (a branch's messages),
``cairn://runs`` (the newest runs) and ``cairn://runs/{run_id}`` (one run
with its events).

Memory tools (``cairn_serve.mcp_memory``): ``search_memory`` (reading, as
``cairn search``) and ``remember_fact`` (writing, as ``cairn memory
remember``; left out with ``--read-only``).

Every tool and resource is ``async`` and does its (blocking, short) store
work on the event loop's thread: the SDK would run a plain function in a
worker thread, and a store connection is never shared across threads.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from pydantic import Field

from cairn.errors import CairnError
from cairn_serve.views import Views

__all__ = ["CairnMCP", "build_server"]

Format = Literal["openai", "anthropic", "text"]
Status = Literal["ok", "failed", "partial"]
Count = Annotated[int, Field(ge=1, le=2000)]
Budget = Annotated[int, Field(ge=1, le=2**31 - 1, description="token budget")]


def _fail(exc: CairnError) -> ToolError:
    return ToolError(f"{exc.message}" + (f" (hint: {exc.hint})" if exc.hint else ""))


class CairnMCP:
    """The MCP server of one project: an ``MCPServer`` with cairn's tools and resources."""

    def __init__(self, state: Any, *, read_only: bool = False) -> None:
        from cairn._version import kernel_version

        self.state = state
        self.views = Views(state)
        self.read_only = read_only
        self.server = MCPServer(
            name="cairn",
            version=kernel_version(),
            instructions=(
                "cairn keeps an agent's context as versioned history (branches of commits, materialized into "
                "messages under a token budget) and a ledger of runs with events. Use materialize to read a "
                "branch's context, log and diff to inspect history"
                + ("." if read_only else ", commit_item to add to it, and record_run / append_run_events to log work.")
            ),
            log_level="WARNING",
        )
        self._tools()
        from cairn_serve.mcp_memory import add_memory_tools

        add_memory_tools(self)
        self._resources()

    # -- helpers -----------------------------------------------------------------

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` with a cairn error turned into a tool error naming what was wrong."""
        return self._call(fn, *args, **kwargs)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CairnError as exc:
            raise _fail(exc) from None

    # -- tools -------------------------------------------------------------------

    def _tools(self) -> None:
        server, views = self.server, self.views

        @server.tool(description="The context of a branch or commit as messages, within a token budget.")
        async def materialize(
            rev: Annotated[str | None, Field(description="branch, commit or HEAD~N; default HEAD")] = None,
            budget: Budget | None = None,
            format: Format = "openai",
            as_of: Annotated[str | None, Field(description="a commit or an ISO-8601 time")] = None,
        ) -> dict[str, Any]:
            data = self._call(views.materialize, rev, as_of=as_of, budget=budget, format=format)
            data.pop("items", None)  # the messages say it; items repeat every content in full
            return dict(data)

        @server.tool(description="Commits reachable from a revision, newest first.")
        async def log(
            rev: Annotated[str | None, Field(description="branch or commit; default HEAD")] = None,
            limit: Count = 20,
            grep: Annotated[str | None, Field(description="only commits whose text contains this")] = None,
        ) -> list[dict[str, Any]]:
            entries = self._call(self.state.repo.log, rev, limit=limit, grep=grep)
            rows = []
            for entry in entries:
                record = entry.commit.to_record()
                record["content"] = entry.content.to_dict() if entry.content is not None else None
                rows.append(record)
            return list(views.out(rows))

        @server.tool(description="What differs in the materialized context between revisions a and b.")
        async def diff(a: str, b: str = "HEAD") -> dict[str, Any]:
            return dict(self._call(views.diff, a, b))

        @server.tool(description="One commit with its content, its item's annotations and edit history.")
        async def show_commit(rev: str) -> dict[str, Any]:
            return dict(self._call(views.commit, rev))

        @server.tool(description="Recorded runs, newest first.")
        async def list_runs(
            type: str | None = None, status: Literal["open", "ok", "failed", "partial"] | None = None, limit: Count = 20
        ) -> list[dict[str, Any]]:
            return list(self._call(views.runs, type=type, status=status, limit=limit))

        @server.tool(description="Provider calls cairn made (cairn ask), newest first, with their commits.")
        async def list_calls(model: str | None = None, limit: Count = 20) -> list[dict[str, Any]]:
            return list(self._call(views.calls, model=model, limit=limit))

        @server.tool(
            description="Sessions (cairn session list): record, branch and totals, most recently active first."
        )
        async def list_sessions() -> list[dict[str, Any]]:
            return list(self._call(views.sessions))

        if self.read_only:
            return

        @server.tool(
            description=(
                "Append an item to the current branch. Give text (a dialogue turn, with role) or content "
                '(a full item, e.g. {"content_type": "instruction", "text": "..."}).'
            )
        )
        async def commit_item(
            text: str | None = None,
            role: Literal["user", "assistant", "system"] = "user",
            content: Annotated[dict[str, Any] | None, Field(description="an item with its content_type")] = None,
            message: str = "",
            reply_to: Annotated[str | None, Field(description="the commit this replies to")] = None,
        ) -> dict[str, Any]:
            if (text is None) == (content is None):
                raise ToolError("give text or content, not both and not neither")
            item = content if content is not None else {"content_type": "dialogue", "role": role, "text": text}
            commit = self._call(self.state.repo.append, item, message=message, reply_to=reply_to)
            return dict(views.out({"hash": commit.hash, "branch": self.state.repo.branch, **commit.to_record()}))

        @server.tool(
            description="Record a run in the ledger: finished with its events, or open (events appended later)."
        )
        async def record_run(
            type: Annotated[str, Field(description="lowercase, e.g. agent, tool, eval")],
            status: Literal["open", "ok", "failed", "partial"] = "ok",
            summary: str = "",
            subtype: str | None = None,
            metadata: dict[str, Any] | None = None,
            events: Annotated[list[dict[str, Any]] | None, Field(description='each {"type": "...", ...fields}')] = None,
        ) -> dict[str, Any]:
            ledger = self.state.ledger
            fields = {"summary": summary, "subtype": subtype, "metadata": metadata or {}}
            if status == "open":
                opened = self._call(ledger.open, type, **fields)
                for event in _events(events):
                    self._call(opened.event, event.pop("type"), **event)
                return dict(views.out(opened.run.to_record()))
            run = self._call(ledger.record, type, status=status, events=_events(events), **fields)
            return dict(views.out(run.to_record()))

        @server.tool(description="Append events to an open run.")
        async def append_run_events(
            run_id: str,
            events: Annotated[list[dict[str, Any]], Field(min_length=1, description='each {"type": "...", ...}')],
        ) -> dict[str, Any]:
            opened = self._open_run(run_id)
            stored = [self._call(opened.event, e.pop("type"), **e) for e in _events(events)]
            return {"run_id": opened.run_id, "appended": [e.seq for e in stored]}

        @server.tool(description="Close an open run as ok, failed or partial.")
        async def close_run(run_id: str, status: Status = "ok", summary: str | None = None) -> dict[str, Any]:
            opened = self._open_run(run_id)
            return dict(views.out(self._call(opened.close, status, summary=summary).to_record()))

    def _open_run(self, run_id: str) -> Any:
        from cairn.ledger import OpenRun

        run = self._call(self.state.ledger.get, run_id)
        if not run.is_open:
            raise ToolError(f"run {run.run_id} is {run.status}, not open: events go to an open run")
        # OpenRun finds the next free position itself (its first append after others resynchronizes).
        return OpenRun(self.state.ledger, run)

    # -- resources ---------------------------------------------------------------

    def _resources(self) -> None:
        server, views = self.server, self.views

        def read(fn: Any, *args: Any, **kwargs: Any) -> str:
            try:
                return json.dumps(fn(*args, **kwargs), ensure_ascii=False, default=str)
            except CairnError as exc:
                raise ResourceError(str(exc)) from None

        @server.resource(
            "cairn://branches/{branch}/materialized",
            mime_type="application/json",
            description="A branch's materialized messages (openai format), token count and what was dropped.",
        )
        async def branch_materialized(branch: str) -> str:
            if branch not in self.state.repo.branches():
                raise ResourceError(f"no branch {branch!r}")
            return read(views.materialize, branch)

        @server.resource("cairn://runs", mime_type="application/json", description="The newest 100 runs.")
        async def runs() -> str:
            return read(views.runs)

        @server.resource("cairn://runs/{run_id}", mime_type="application/json", description="One run and its events.")
        async def run(run_id: str) -> str:
            return read(views.run, run_id)

    # -- transports --------------------------------------------------------------

    def run_stdio(self) -> None:
        self.server.run("stdio")

    def http_app(self, *, token: str | None) -> Any:
        from cairn_serve.app import Guard

        return Guard(self.server.streamable_http_app(), token=token)


def _events(events: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = []
    for n, event in enumerate(events or []):
        if not isinstance(event, dict) or not isinstance(event.get("type"), str) or not event["type"]:
            raise ToolError(f'event {n} needs a non-empty string type, e.g. {{"type": "step", "note": "..."}}')
        out.append(dict(event))
    return out


def build_server(state: Any, *, read_only: bool = False) -> CairnMCP:
    """The MCP server over one project's ``State`` (from ``cairn.cli``)."""
    return CairnMCP(state, read_only=read_only)
