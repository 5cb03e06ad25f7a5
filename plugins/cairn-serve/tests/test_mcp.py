"""`cairn mcp serve` driven by the official MCP SDK's own client: over stdio, and once over streamable HTTP."""

from __future__ import annotations

import json
import sys

import anyio
import httpx
import pytest
from conftest import Project, Server, clean_env
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError

READ_TOOLS = {
    "materialize", "log", "diff", "show_commit", "list_runs", "list_calls", "list_sessions", "search_memory"
}  # fmt: skip
WRITE_TOOLS = {"commit_item", "record_run", "append_run_events", "close_run", "remember_fact"}
LEAKED = "sk-mcp-canary-9a8b7c6d5e4f3a2b"


@pytest.fixture
def small(tmp_path, monkeypatch) -> Project:
    """A fresh project (the MCP tests write): an instruction and two turns on main, a side branch."""
    for name in list(__import__("os").environ):
        if name.startswith("CAIRN"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CAIRN_USER_CONFIG", "")
    cairn = Project(tmp_path / "mcp-project")
    cairn.path.mkdir()
    cairn("init")
    cairn("commit", "-t", "instruction", "Answer briefly.")
    cairn("commit", "What is 2 + 2?")
    cairn("switch", "-c", "side")
    cairn("commit", "A side remark.")
    cairn("switch", "main")
    return cairn


def session(project: Project, *args: str) -> Client:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "cairn", "-C", str(project.path), "mcp", "serve", *args],
        env=clean_env(),
    )
    return Client(params, read_timeout_seconds=60)


def run(coroutine_fn) -> None:
    anyio.run(coroutine_fn)


def data(result):
    assert not result.is_error, result.content[0].text
    if result.structured_content is not None:
        content = result.structured_content
        return content.get("result", content) if set(content) == {"result"} else content
    return json.loads(result.content[0].text)


def error(result) -> str:
    assert result.is_error
    return result.content[0].text


def test_lists_every_tool_with_a_json_schema(small):
    async def main():
        async with session(small) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) == READ_TOOLS | WRITE_TOOLS
            for tool in tools.values():
                assert tool.input_schema["type"] == "object" and tool.description
            budget = tools["materialize"].input_schema["properties"]["budget"]
            assert {"minimum": 1}.items() <= budget["anyOf"][0].items()
            assert tools["materialize"].input_schema["properties"]["format"]["enum"] == ["openai", "anthropic", "text"]
            assert tools["append_run_events"].input_schema["required"] == ["run_id", "events"]
            search = tools["search_memory"].input_schema
            assert search["required"] == ["query"]
            assert search["properties"]["mode"]["anyOf"][0]["enum"] == ["semantic", "lexical", "hybrid"]
            assert tools["remember_fact"].input_schema["required"] == ["text"]

    run(main)


def test_read_only_offers_only_the_reading_tools(small):
    async def main():
        async with session(small, "--read-only") as client:
            assert {t.name for t in (await client.list_tools()).tools} == READ_TOOLS
            assert "commit_item" in error(await client.call_tool("commit_item", {"text": "no"}))
            assert "remember_fact" in error(await client.call_tool("remember_fact", {"text": "no"}))
        assert small.json("memory", "facts") == []

    run(main)


def test_a_remembered_fact_is_found_by_search_memory(small):
    async def main():
        async with session(small) as client:
            fact = data(await client.call_tool("remember_fact", {"text": "The deploy host is atlas", "subject": "ops"}))
            assert fact["subject"] == "ops" and fact["content_type"] == "memory.fact"
            found = data(await client.call_tool("search_memory", {"query": "atlas deploy", "mode": "lexical"}))
            assert [(r["kind"], r["id"]) for r in found][:1] == [("memory", fact["id"])]
            newer = data(
                await client.call_tool(
                    "remember_fact", {"text": "The deploy host is now zephyr", "supersedes": fact["id"]}
                )
            )
            assert newer["id"] == fact["id"] and newer["subject"] == "ops"
            hits = data(await client.call_tool("search_memory", {"query": "zephyr", "kind": ["memory"]}))
            assert [r["id"] for r in hits] == [fact["id"]]
            assert data(await client.call_tool("search_memory", {"query": "atlas", "mode": "lexical"})) == []
            context = data(await client.call_tool("search_memory", {"query": "zephyr", "kind": ["context"]}))
            assert context == []
        # the same facts the CLI sees, and the CLI search agrees
        assert [(f["id"], f["text"]) for f in small.json("memory", "facts")] == [(fact["id"], newer["text"])]
        assert [r["id"] for r in small.json("search", "zephyr", "--mode", "lexical")] == [fact["id"]]

    run(main)


def test_memory_tools_refuse_bad_arguments_clearly(small):
    async def main():
        async with session(small) as client:
            assert "query" in error(await client.call_tool("search_memory", {}))
            assert "query" in error(await client.call_tool("search_memory", {"query": ""}))
            assert "the query is empty" in error(await client.call_tool("search_memory", {"query": "   "}))
            assert "less than or equal to 10000" in error(
                await client.call_tool("search_memory", {"query": "a", "k": 10_001})
            )
            assert "mode" in error(await client.call_tool("search_memory", {"query": "a", "mode": "fuzzy"}))
            assert "kind" in error(await client.call_tool("search_memory", {"query": "a", "kind": ["files"]}))
            semantic = error(await client.call_tool("search_memory", {"query": "a", "mode": "semantic"}))
            assert "noop" in semantic
            assert "text" in error(await client.call_tool("remember_fact", {}))
            missing = error(await client.call_tool("remember_fact", {"text": "x", "supersedes": "abcdef12"}))
            assert "abcdef12" in missing
            assert "source" in error(await client.call_tool("remember_fact", {"text": "x", "source": "nowhere:1"}))
        assert small.json("memory", "facts") == []  # nothing was remembered by a refused call

    run(main)


def test_the_reading_tools_answer_as_the_cli_does(small):
    async def main():
        async with session(small) as client:
            whole = data(await client.call_tool("materialize", {}))
            assert whole["messages"] == small.json("materialize")["messages"]
            text = data(await client.call_tool("materialize", {"rev": "side", "format": "text", "budget": 1000}))
            assert "A side remark." in text["messages"] and text["format"] == "text"
            log = data(await client.call_tool("log", {"limit": 1}))
            assert [c["hash"] for c in log] == [small.json("log")[0]["hash"]]
            assert [c["content"]["text"] for c in data(await client.call_tool("log", {"grep": "2 + 2"}))] == [
                "What is 2 + 2?"
            ]
            diff = data(await client.call_tool("diff", {"a": "main", "b": "side"}))
            assert [(e["status"], e["after"]["text"]) for e in diff["entries"]] == [("added", "A side remark.")]
            shown = data(await client.call_tool("show_commit", {"rev": "HEAD"}))
            assert shown["content"]["text"] == "What is 2 + 2?" and shown["branches"] == ["main"]
            assert data(await client.call_tool("list_runs", {})) == []
            assert data(await client.call_tool("list_calls", {})) == []
            assert data(await client.call_tool("list_sessions", {})) == []

    run(main)


def test_list_sessions_answers_as_cairn_session_list_does(small):
    small("session", "new", "--title", "First", "--no-switch")
    small("session", "new", "--title", "Second")

    async def main():
        async with session(small, "--read-only") as client:
            listed = data(await client.call_tool("list_sessions", {}))
            assert listed == small.json("session", "list")
            assert [s["title"] for s in listed] == ["Second", "First"] and listed[0]["branch"].startswith("sessions/")

    run(main)


def test_bad_arguments_are_tool_errors_that_say_what_was_wrong(small):
    async def main():
        async with session(small) as client:
            assert "greater than or equal to 1" in error(await client.call_tool("materialize", {"budget": 0}))
            assert "format" in error(await client.call_tool("materialize", {"format": "yaml"}))
            assert "no commit or branch 'nope'" in error(await client.call_tool("materialize", {"rev": "nope"}))
            assert "give text or content" in error(await client.call_tool("commit_item", {}))
            assert "dialogue.text: required field missing" in error(
                await client.call_tool("commit_item", {"content": {"content_type": "dialogue", "role": "user"}})
            )
            assert "not a valid run type" in error(await client.call_tool("record_run", {"type": "Not A Type"}))
            assert "not a valid run id" in error(
                await client.call_tool("append_run_events", {"run_id": "../x", "events": [{"type": "a"}]})
            )
            assert "needs a non-empty string type" in error(
                await client.call_tool("record_run", {"type": "agent", "events": [{"note": "no type"}]})
            )
            assert "drop_everything" in error(await client.call_tool("drop_everything", {}))
        assert len(small.json("log")) == 2  # nothing was committed by a refused call

    run(main)


def test_writes_go_through_the_context_engine_and_the_ledger(small):
    async def main():
        async with session(small) as client:
            made = data(
                await client.call_tool("commit_item", {"text": "Four.", "role": "assistant", "reply_to": "HEAD"})
            )
            note = data(
                await client.call_tool(
                    "commit_item", {"content": {"content_type": "instruction", "text": "Be exact."}, "message": "mcp"}
                )
            )
            finished = data(
                await client.call_tool(
                    "record_run",
                    {
                        "type": "agent",
                        "summary": "answered",
                        "metadata": {"api_key": LEAKED, "model": "m"},
                        "events": [{"type": "step", "n": 1}, {"type": "step", "n": 2}],
                    },
                )
            )
            opened = data(await client.call_tool("record_run", {"type": "tool", "status": "open"}))
            appended = data(
                await client.call_tool(
                    "append_run_events",
                    {"run_id": opened["run_id"], "events": [{"type": "call", "tool": "grep"}, {"type": "result"}]},
                )
            )
            closed = data(await client.call_tool("close_run", {"run_id": opened["run_id"], "status": "partial"}))
            late = await client.call_tool("append_run_events", {"run_id": opened["run_id"], "events": [{"type": "x"}]})
            return made, note, finished, opened, appended, closed, error(late)

    made, note, finished, opened, appended, closed, late = anyio.run(main)
    log = small.json("log")
    assert [c["hash"] for c in log[:2]] == [note["hash"], made["hash"]]
    assert log[1]["reply_to"] == log[2]["hash"] and log[1]["content"]["role"] == "assistant"
    assert log[0]["message"] == "mcp" and log[0]["content"]["content_type"] == "instruction"
    runs = {r["run_id"]: r for r in small.json("runs", "list")}
    assert runs[finished["run_id"]]["status"] == "ok" and runs[finished["run_id"]]["summary"] == "answered"
    assert LEAKED not in json.dumps(runs) and runs[finished["run_id"]]["metadata"]["model"] == "m"
    assert [e["fields"] for e in small.json("runs", "events", finished["run_id"])] == [{"n": 1}, {"n": 2}]
    assert appended["appended"] == [0, 1]
    assert [e["type"] for e in small.json("runs", "events", opened["run_id"])] == ["call", "result"]
    assert closed["status"] == "partial" and runs[opened["run_id"]]["status"] == "partial"
    assert "not open" in late


def test_resources_hold_a_branchs_messages_and_the_runs(small):
    small("run", "--", sys.executable, "-c", "print('hi')")
    [recorded] = small.json("runs", "list")

    async def main():
        async with session(small) as client:
            listed = {str(r.uri) for r in (await client.list_resources()).resources}
            assert listed == {"cairn://runs"}
            templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
            assert templates == {"cairn://branches/{branch}/materialized", "cairn://runs/{run_id}"}
            side = json.loads((await client.read_resource("cairn://branches/side/materialized")).contents[0].text)
            assert side["messages"] == small.json("materialize", "side")["messages"]
            runs = json.loads((await client.read_resource("cairn://runs")).contents[0].text)
            assert [r["run_id"] for r in runs] == [recorded["run_id"]]
            one = json.loads((await client.read_resource(f"cairn://runs/{recorded['run_id']}")).contents[0].text)
            assert one["run"]["run_id"] == recorded["run_id"] and one["events"]
            with pytest.raises(MCPError, match="no branch 'gone'"):
                await client.read_resource("cairn://branches/gone/materialized")
            with pytest.raises(MCPError, match="no run"):
                await client.read_resource("cairn://runs/20260101T000000.000000Z_x_00000000")

    run(main)


def test_streamable_http_on_loopback_behind_a_token(small):
    token = "mcp-http-test-token-0123456789"
    server = Server(small.path, "mcp", "serve", "--transport", "http", "--port", "0", "--token", token)
    try:
        url = server.base
        assert url.endswith("/mcp")
        refused = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert refused.status_code == 401

        async def main():
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(headers=headers, timeout=30) as http:
                from mcp.client.streamable_http import streamable_http_client

                async with Client(streamable_http_client(url, http_client=http)) as client:
                    names = {t.name for t in (await client.list_tools()).tools}
                    assert names == READ_TOOLS | WRITE_TOOLS
                    assert data(await client.call_tool("log", {"limit": 1}))[0]["content"]["text"] == "What is 2 + 2?"

        run(main)
    finally:
        server.stop()
