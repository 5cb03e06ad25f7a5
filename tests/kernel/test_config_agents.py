"""Typed [tools.NAME], [skills.NAME] and [mcp.servers.NAME]: structured, located errors, no secrets."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.agent_tools import mcp_readiness, readiness_of
from cairn.config import load_config
from cairn.config_agents import McpServerSpec, SkillSpec, ToolSpec, load_agent_config

GOOD = """
[tools.weather]
description = "The weather in a city"
handler = "weather_tool:lookup"
parameters = { type = "object", properties = { city = { type = "string" } }, required = ["city"] }
scopes = ["net"]
timeout_s = 5

[tools.shout]
description = "Print the arguments"
command = ["echo", "--"]

[skills.travel]
description = "Plan a trip"
instructions = "skills/travel.md"
tools = ["weather"]

[mcp.servers.files]
command = "python"
args = ["server.py", "--root", "."]
env = ["HOME", "FILES_TOKEN"]

[mcp.servers.web]
transport = "http"
url = "https://mcp.example.test/mcp"
enabled = false
"""


def load(directory: Path, text: str):
    (directory / "cairn.toml").write_text(text, encoding="utf-8")
    return load_config(directory, environ={"CAIRN_USER_CONFIG": ""})


def test_every_table_is_structured_into_its_frozen_class(tmp_path):
    agents, problems = load_agent_config(load(tmp_path, GOOD))
    assert problems == []
    weather = agents.tools["weather"]
    assert weather == ToolSpec(
        name="weather",
        description="The weather in a city",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        handler="weather_tool:lookup",
        scopes=["net"],
        timeout_s=5,
    )
    assert weather.to_provider()["parameters"]["required"] == ["city"]
    assert agents.tools["shout"].command == ["echo", "--"]
    assert agents.skills["travel"] == SkillSpec("travel", "Plan a trip", "skills/travel.md", ["weather"])
    assert agents.servers["files"].env == ["HOME", "FILES_TOKEN"] and agents.servers["files"].transport == "stdio"
    assert agents.servers["web"] == McpServerSpec("web", "http", url="https://mcp.example.test/mcp", enabled=False)
    with pytest.raises(AttributeError):
        weather.handler = "x:y"  # type: ignore[misc]


def test_the_sections_pass_cairn_config_validation(tmp_path):
    config = load(tmp_path, GOOD)
    assert [p for p in config.validate() if p.table and p.table.split(".")[0] in ("tools", "skills", "mcp")] == []


BAD = [
    # (the table text, the table, the key, the line of the key, a phrase of the message)
    ('[tools.t]\ndescription = "d"\nhandler = "no-colon"\n', "tools.t", "handler", 3, "entry point"),
    ('[tools.t]\ndescription = "d"\n', "tools.t", "handler", 1, "handler must be given"),
    ('[tools.t]\ndescription = "d"\nhandler = "m:f"\ncommand = ["x"]\n', "tools.t", "handler", 3, "not both"),
    (
        '[tools.t]\ndescription = "d"\nhandler = "m:f"\nparameters = { type = "array" }\n',
        "tools.t",
        "parameters",
        4,
        "object",
    ),
    ('[tools.t]\ndescription = "d"\nhandler = "m:f"\ntimeout_s = 0\n', "tools.t", "timeout_s", 4, "more than 0"),
    ('[tools.t]\ndescription = "d"\nhandler = "m:f"\nscopes = ["Net Access"]\n', "tools.t", "scopes", 4, "scope"),
    ('[tools.t]\ndescription = "d"\nhandler = "m:f"\ncolour = "red"\n', "tools.t", "colour", 4, "unknown"),
    ('[tools."bad name"]\ndescription = "d"\nhandler = "m:f"\n', "tools.bad name", None, 1, "tool name"),
    ('[skills.s]\ndescription = "d"\ntools = ["ghost"]\n', "skills.s", "tools", 3, "ghost"),
    ('[skills.s]\ninstructions = "a.md"\n', "skills.s", "description", 1, "required"),
    ('[mcp.servers.m]\nargs = ["x"]\n', "mcp.servers.m", "command", 1, "command must be given"),
    ('[mcp.servers.m]\ncommand = "x"\nenv = ["OK", "9BAD"]\n', "mcp.servers.m", "env", 3, "item 2"),
    ('[mcp.servers.m]\ntransport = "http"\n', "mcp.servers.m", "url", 1, "url must be given"),
    ('[mcp.servers.m]\ntransport = "http"\nurl = "ftp://x"\n', "mcp.servers.m", "url", 3, "http(s)"),
    ('[mcp.servers.m]\ntransport = "sse"\nurl = "http://x"\n', "mcp.servers.m", "transport", 2, "transport"),
    ("[mcp]\nserver = 1\n", "mcp", "server", 2, "unknown key"),
]


@pytest.mark.parametrize(("text", "table", "key", "line", "phrase"), BAD)
def test_a_mistake_is_located_by_file_table_key_and_line(tmp_path, text, table, key, line, phrase):
    config = load(tmp_path, "# a leading comment\n\n" + text)
    _, problems = load_agent_config(config)
    assert len(problems) == 1, [p.message for p in problems]
    [problem] = problems
    assert problem.file == str(tmp_path / "cairn.toml")
    assert problem.table == table and problem.key == key
    assert problem.line == line + 2, problem.message
    assert phrase in problem.problem, problem.problem
    # `cairn config validate` reports the same problem
    from cairn.config_check import check_config
    from cairn.plugins import load_plugins

    assert any(p.message == problem.message for p in check_config(load_plugins(), config))


SECRETS = ["sk-proj-" + "a1B2c3D4e5" * 4, "ghp_" + "x" * 36, "xoxb-1234567890-abcdefghij"]


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize(
    "template",
    [
        '[tools.t]\ndescription = "d"\ncommand = ["curl", "-H", "{s}"]\n',
        '[mcp.servers.m]\ncommand = "server"\nargs = ["--token", "{s}"]\n',
        '[mcp.servers.m]\ncommand = "server"\nenv = ["{s}"]\n',
        '[mcp.servers.m]\ntransport = "http"\nurl = "https://host/mcp?key={s}"\n',
    ],
)
def test_a_literal_secret_is_refused_and_never_echoed(tmp_path, secret, template):
    config = load(tmp_path, template.replace("{s}", secret))
    _, problems = load_agent_config(config)
    assert len(problems) == 1
    assert secret not in problems[0].message and secret[:12] not in problems[0].message
    assert "secret" in problems[0].message or "environment variable" in problems[0].message


NAME_CHARS = string.ascii_letters + string.digits + "_"


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(
        st.text(alphabet=NAME_CHARS, min_size=1, max_size=20).filter(lambda n: not n[0].isdigit()),
        min_size=0,
        max_size=5,
    ),
    # Control characters are the TOML reader's to refuse (tested there); everything else must be located here.
    bad=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20).filter(
        lambda t: not t.isidentifier() or not t.isascii()
    ),
    blank_lines=st.integers(0, 30),
)
def test_env_accepts_exactly_variable_names_and_locates_the_rest(tmp_path, names, bad, blank_lines):
    import json

    head = "\n" * blank_lines + '[mcp.servers.m]\ncommand = "server"\n'
    config = load(tmp_path, head + f"env = {json.dumps(names, ensure_ascii=False)}\n")
    agents, problems = load_agent_config(config)
    assert problems == [] and agents.servers["m"].env == names
    config = load(tmp_path, head + f"env = {json.dumps([*names, bad], ensure_ascii=False)}\n")
    _, problems = load_agent_config(config)
    assert len(problems) == 1
    assert problems[0].key == "env" and problems[0].line == blank_lines + 3
    assert f"item {len(names) + 1}" in problems[0].message


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tools=st.dictionaries(
        st.text(alphabet=string.ascii_lowercase + "_-", min_size=1, max_size=12),
        st.booleans(),
        min_size=1,
        max_size=6,
    ),
    missing=st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8),
)
def test_a_skill_may_name_only_declared_tools(tmp_path, tools, missing):
    text = "".join(
        f'[tools."{name}"]\ndescription = "d"\n' + ('handler = "m:f"\n' if by_handler else 'command = ["true"]\n')
        for name, by_handler in tools.items()
    )
    listed = sorted(tools)
    skill = '[skills.s]\ndescription = "d"\ntools = [' + ", ".join(f'"{n}"' for n in listed) + "]\n"
    agents, problems = load_agent_config(load(tmp_path, text + skill))
    assert problems == [] and agents.skills["s"].tools == listed
    assert {name: spec.handler is not None for name, spec in agents.tools.items()} == tools
    if missing not in tools:
        skill = skill.replace("tools = [", f'tools = ["{missing}", ')
        _, problems = load_agent_config(load(tmp_path, text + skill))
        assert [p.key for p in problems] == ["tools"] and repr(missing) in problems[0].message


def test_readiness_is_decided_locally(tmp_path, monkeypatch):
    (tmp_path / "weather_tool.py").write_text("def lookup(city):\n    return city\n")
    (tmp_path / "skills").mkdir()
    agents, _ = load_agent_config(load(tmp_path, GOOD))
    monkeypatch.delenv("FILES_TOKEN", raising=False)
    found = readiness_of(agents, tmp_path)
    tools = {item.name: item for item in found["tools"]}
    assert tools["weather"].ready and tools["shout"].ready  # found on the path, echo on PATH
    [skill] = found["skills"]
    assert not skill.ready and "skills/travel.md" in (skill.problem or "")
    (tmp_path / "skills" / "travel.md").write_text("Plan carefully.")
    assert readiness_of(agents, tmp_path)["skills"][0].ready
    servers = {item.name: item for item in found["mcp_servers"]}
    assert "disabled" in (servers["web"].problem or "")
    files = agents.servers["files"]
    assert not mcp_readiness(files, tmp_path, {"HOME": "/h"}).ready or not _on_path("python")
    assert "FILES_TOKEN" in (mcp_readiness(files, tmp_path, {"HOME": "/h"}).problem or "FILES_TOKEN")
    gone = ToolSpec("gone", "d", handler="no_such_module_anywhere:f")
    assert "no_such_module_anywhere" in (readiness_of(_only(gone), tmp_path)["tools"][0].problem or "")


def _on_path(program: str) -> bool:
    import shutil

    return shutil.which(program) is not None


def _only(tool: ToolSpec):
    from cairn.config_agents import AgentConfig

    return AgentConfig(tools={tool.name: tool})
