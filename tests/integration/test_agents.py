"""`cairn tools / skills / mcp list` with readiness, `cairn mcp list --tools` against a real MCP server over stdio,
and `cairn ask --tools` round trips against the loopback fake OpenAI server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cairn.testing.fake_openai import FakeOpenAI, Reply

KEY = "sk-canary-tools-8842"
KEY_ENV = "CAIRN_TOOLS_OPENAI_KEY"
TEST_SERVER = Path(__file__).with_name("mcp_test_server.py")

WEATHER = """
[tools.weather]
description = "The weather in a city"
handler = "weather_tool:lookup"
parameters = { type = "object", properties = { city = { type = "string" } }, required = ["city"] }
scopes = ["net"]
"""


def add(project: Path, text: str) -> None:
    path = project / "cairn.toml"
    path.write_text(path.read_text() + "\n" + text)


@pytest.fixture
def server(cairn, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeOpenAI(api_key=KEY, model="gpt-4o-mini") as fake:
        path = cairn.project / "cairn.toml"
        path.write_text(path.read_text().replace('llm = "noop"', 'llm = "openai"'))
        add(cairn.project, f'[llm.openai]\nbase_url = "{fake.url}"\napi_key_env = "{KEY_ENV}"\nmodel = "gpt-4o-mini"\n')
        yield fake


@pytest.fixture
def weather(cairn) -> None:
    (cairn.project / "weather_tool.py").write_text(
        "def lookup(city):\n    return {'city': city, 'temperature_c': 21 if city == 'Oslo' else 30}\n"
    )
    add(cairn.project, WEATHER)


def call(name: str, arguments: dict | str, id: str = "call_1") -> dict:
    return {"id": id, "name": name, "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments)}


def items(cairn) -> list[dict]:
    return [c["content"] for c in reversed(cairn.json("log"))]


# -- listing -------------------------------------------------------------------------------


def test_lists_say_what_is_configured_and_what_each_lacks(cairn, monkeypatch):
    monkeypatch.delenv("AGENT_TEST_TOKEN", raising=False)
    (cairn.project / "weather_tool.py").write_text("def lookup(city):\n    return city\n")
    add(
        cairn.project,
        WEATHER
        + '\n[tools.gone]\ndescription = "x"\ncommand = ["no-such-program-anywhere"]\n'
        + '\n[skills.travel]\ndescription = "Plan"\ninstructions = "travel.md"\ntools = ["weather"]\n'
        + '\n[mcp.servers.files]\ncommand = "echo"\nenv = ["AGENT_TEST_TOKEN"]\n'
        + '\n[mcp.servers.web]\ntransport = "http"\nurl = "http://127.0.0.1:9/mcp"\n',
    )
    tools = {t["name"]: t for t in cairn.json("tools", "list")}
    assert tools["weather"]["ready"] and tools["weather"]["handler"] == "weather_tool:lookup"
    assert tools["weather"]["scopes"] == ["net"]
    assert not tools["gone"]["ready"] and "not on PATH" in tools["gone"]["problem"]
    [skill] = cairn.json("skills", "list")
    assert not skill["ready"] and "travel.md" in skill["problem"]
    (cairn.project / "travel.md").write_text("Be thorough.")
    assert cairn.json("skills", "list")[0]["ready"]
    servers = {s["name"]: s for s in cairn.json("mcp", "list")}
    assert not servers["files"]["ready"] and "AGENT_TEST_TOKEN" in servers["files"]["problem"]
    assert servers["web"]["ready"] and servers["web"]["transport"] == "http"
    monkeypatch.setenv("AGENT_TEST_TOKEN", "t")
    assert {s["name"]: s["ready"] for s in cairn.json("mcp", "list")} == {"files": True, "web": True}
    text = cairn("tools", "list").output
    assert "weather_tool:lookup" in text and "no: program 'no-such-program-anywhere' is not on PATH" in text


def test_empty_lists_say_how_to_configure_and_a_bad_table_is_located(cairn):
    assert "add a [tools.NAME] table" in cairn("tools", "list").output
    assert "add an [mcp.servers.NAME] table" in cairn("mcp", "list").output
    add(cairn.project, '[mcp.servers.m]\ntransport = "http"\nurl = "http://u:p@127.0.0.1/mcp"\n')
    result = cairn.run("mcp", "list", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    line = (cairn.project / "cairn.toml").read_text().splitlines().index('url = "http://u:p@127.0.0.1/mcp"') + 1
    assert f"cairn.toml:{line}: [mcp.servers.m] url" in result.stderr and "u:p@" not in result.stderr


def test_mcp_serve_from_cairn_serve_sits_beside_the_kernels_mcp_list(cairn):
    pytest.importorskip("cairn_serve")
    help_text = cairn.run("mcp", "--help").stdout
    assert "list" in help_text and "serve" in help_text
    plugins = {p["name"]: p["status"] for p in cairn.json("plugins")}
    assert plugins["serve"] == "ok"


def test_mcp_list_tools_asks_a_stdio_server_with_the_sdk(cairn, monkeypatch):
    pytest.importorskip("mcp")
    monkeypatch.setenv("GREETING_WORD", "Hei")
    add(
        cairn.project,
        f'[mcp.servers.test]\ncommand = "{sys.executable}"\nargs = ["{TEST_SERVER}"]\nenv = ["GREETING_WORD"]\n',
    )
    [server] = cairn.json("mcp", "list", "--tools")
    assert server["ready"] and [t["name"] for t in server["tools"]] == ["add", "greeting"]
    add_tool = server["tools"][0]
    assert add_tool["description"] == "Add two whole numbers."
    assert add_tool["input_schema"]["type"] == "object" and set(add_tool["input_schema"]["required"]) == {"a", "b"}
    text = cairn("mcp", "list", "--tools").output
    assert "test: 2 tool(s)" in text and "  add: Add two whole numbers." in text


def test_mcp_list_tools_reports_a_server_that_does_not_start(cairn):
    pytest.importorskip("mcp")
    add(
        cairn.project,
        f'[mcp.servers.broken]\ncommand = "{sys.executable}"\nargs = ["-c", "raise SystemExit(3)"]\ntimeout_s = 20\n',
    )
    result = cairn.run("mcp", "list", "--tools", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "MCP server 'broken'" in result.stderr


# -- ask --tools -----------------------------------------------------------------------------


def test_ask_tools_round_trip_commits_call_and_result_and_answers(cairn, server: FakeOpenAI, weather):
    server.script(Reply(None, tool_calls=[call("weather", {"city": "Oslo"})]), Reply("It is 21 °C in Oslo."))
    result = cairn.run("ask", "--tools", "What is the weather in Oslo?")
    assert result.stdout == "It is 21 °C in Oslo.\n" and "[tool weather: success]" in result.stderr

    first, second = server.calls("chat")
    [offered] = first.json["tools"]
    assert offered["function"]["name"] == "weather"
    assert offered["function"]["parameters"]["required"] == ["city"]
    roles = [m["role"] for m in second.json["messages"]]
    assert roles == ["user", "assistant", "tool"]
    sent_result = second.json["messages"][2]
    assert sent_result["tool_call_id"] == "call_1"
    assert json.loads(sent_result["content"]) == {"result": {"city": "Oslo", "temperature_c": 21}}

    question, tool_call, tool_result, reply = items(cairn)
    assert question == {"content_type": "dialogue", "role": "user", "text": "What is the weather in Oslo?"}
    assert tool_call["content_type"] == "tool_io" and tool_call["direction"] == "call"
    assert tool_call["payload"] == {"city": "Oslo"} and tool_call["call_id"] == "call_1"
    assert tool_result["direction"] == "result" and tool_result["status"] == "success"
    assert tool_result["payload"] == {"result": {"city": "Oslo", "temperature_c": 21}}
    assert reply["text"] == "It is 21 °C in Oslo."
    assert cairn.json("log")[0]["metadata"]["tool_rounds"] == 1
    # the handler ran through the execution path: an exec run of the python module recorded it
    runs = cairn.json("runs", "list")
    assert any(r["type"] == "exec" and r["subtype"] == "python" and r["status"] == "ok" for r in runs)


def test_several_calls_and_rounds_then_an_answer(cairn, server: FakeOpenAI, weather):
    add(cairn.project, '[tools.shout]\ndescription = "Echo the words"\ncommand = ["echo"]\n')
    server.script(
        Reply(None, tool_calls=[call("weather", {"city": "Oslo"}, "c1"), call("weather", {"city": "Rome"}, "c2")]),
        Reply("Let me shout it.", tool_calls=[call("shout", {"words": "warm"}, "c3")]),
        Reply("Oslo 21, Rome 30."),
    )
    out = json.loads(cairn.run("ask", "--tools", "--json", "Compare Oslo and Rome").stdout)
    assert out["content"] == "Oslo 21, Rome 30." and out["tool_rounds"] == 2
    kinds = [(i["content_type"], i.get("direction") or i.get("role")) for i in items(cairn)]
    assert kinds == [
        ("dialogue", "user"),
        ("tool_io", "call"),
        ("tool_io", "result"),
        ("tool_io", "call"),
        ("tool_io", "result"),
        ("dialogue", "assistant"),
        ("tool_io", "call"),
        ("tool_io", "result"),
        ("dialogue", "assistant"),
    ]
    shout = items(cairn)[7]
    assert shout["status"] == "success" and json.loads(shout["payload"]["stdout"]) == {"words": "warm"}


def test_bad_calls_are_told_to_the_model_not_crashed_on(cairn, server: FakeOpenAI, weather):
    server.script(
        Reply(
            None,
            tool_calls=[
                call("nope", {}, "c1"),
                call("weather", {"town": "Oslo"}, "c2"),
                call("weather", "{not json", "c3"),
            ],
        ),
        Reply("Sorry."),
    )
    cairn.run("ask", "--tools", "--no-stream", "Weather?")
    results = [i for i in items(cairn) if i.get("direction") == "result"]
    assert [r["status"] for r in results] == ["error", "error", "error"]
    assert "no tool called 'nope'" in results[0]["payload"]["error"]
    assert "invalid arguments" in results[1]["payload"]["error"]
    assert "not a JSON object" in results[2]["payload"]["error"]


def test_the_policy_gate_decides_tool_calls(cairn, server: FakeOpenAI, weather):
    add(
        cairn.project,
        '[policy.rules.no-net]\naction = "tool"\nscopes = ["net"]\ndecision = "deny"\nreason = "offline"\n',
    )
    server.script(Reply(None, tool_calls=[call("weather", {"city": "Oslo"})]), Reply("I cannot look."))
    cairn.run("ask", "--tools", "--no-stream", "Weather in Oslo?")
    result = [i for i in items(cairn) if i.get("direction") == "result"][0]
    assert result["status"] == "error" and "denied by policy: offline" in result["payload"]["error"]
    assert not any(r["type"] == "exec" for r in cairn.json("runs", "list"))  # nothing ran


def test_a_model_that_never_answers_is_stopped(cairn, server: FakeOpenAI, weather):
    server.script(*[Reply(None, tool_calls=[call("weather", {"city": "Oslo"}, f"c{i}")]) for i in range(9)])
    result = cairn.run("ask", "--tools", "--no-stream", "Loop", check=False)
    assert result.returncode == 1 and "still called tools after 8 rounds" in result.stderr
    assert "Traceback" not in result.stderr


def test_ask_tools_without_tools_configured_is_a_clear_error(cairn, server: FakeOpenAI):
    result = cairn.run("ask", "--tools", "Hi", check=False)
    assert result.returncode == 1 and "no tools are configured" in result.stderr
    assert cairn.json("log") == [] and server.calls("chat") == []
