"""``cairn tools list``, ``cairn skills list`` and ``cairn mcp list``: the configured ones with their readiness.

``cairn mcp`` is a built-in group plugins may extend: cairn-serve adds
``cairn mcp serve`` to it (see ``ExtensibleGroup``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from cairn.cli._app import ExtensibleGroup, State, echo_json, json_option, pass_state, print_table

if TYPE_CHECKING:  # pragma: no cover
    from cairn.agent_tools import Readiness


def register(cli: click.Group) -> None:
    for command in (tools_group, skills_group, mcp_group):
        cli.add_command(command)


def _readiness(state: State) -> dict[str, list[Readiness]]:
    """Every tool, skill and server; a problem in their tables stops the command, located."""
    from cairn.agent_tools import readiness_of
    from cairn.config_agents import load_agent_config

    config = state.config
    agents, problems = load_agent_config(config)
    if problems:
        if len(problems) > 1:
            problems[0].hint = (problems[0].hint or "") + f"; `cairn config validate` lists all {len(problems)}"
        raise problems[0]
    return readiness_of(agents, config.project_dir or config.cwd)


def _ready(item: Readiness) -> str:
    return "yes" if item.ready else f"no: {item.problem}"


@click.group("tools")
def tools_group() -> None:
    """Tools configured in [tools.NAME] tables, which `cairn ask --tools` offers the model."""


@tools_group.command("list")
@json_option()
@pass_state
def tools_list(state: State, as_json: bool) -> None:
    """Each tool, its handler or command, its scopes, and whether it can run now."""
    items = _readiness(state)["tools"]
    if as_json:
        echo_json([item.to_dict() for item in items])
        return
    if not items:
        click.echo("no tools configured; add a [tools.NAME] table to cairn.toml (docs/configuration.md)")
        return
    rows = []
    for item in items:
        runs = item.detail.get("handler") or " ".join(item.detail.get("command", []))
        rows.append([item.name, runs, ", ".join(item.detail["scopes"]), _ready(item), item.detail["description"]])
    print_table(["tool", "runs", "scopes", "ready", "description"], rows)


@click.group("skills")
def skills_group() -> None:
    """Skills configured in [skills.NAME] tables: instructions and the tools they may use."""


@skills_group.command("list")
@json_option()
@pass_state
def skills_list(state: State, as_json: bool) -> None:
    """Each skill, its instructions file, its tools, and whether it is usable now."""
    items = _readiness(state)["skills"]
    if as_json:
        echo_json([item.to_dict() for item in items])
        return
    if not items:
        click.echo("no skills configured; add a [skills.NAME] table to cairn.toml (docs/configuration.md)")
        return
    rows = [
        [i.name, i.detail["instructions"] or "", ", ".join(i.detail["tools"]), _ready(i), i.detail["description"]]
        for i in items
    ]
    print_table(["skill", "instructions", "tools", "ready", "description"], rows)


@click.group("mcp", cls=ExtensibleGroup)
def mcp_group() -> None:
    """MCP servers: the ones cairn.toml configures (list), and cairn's own server (serve, with cairn-serve[mcp])."""


@mcp_group.command("list")
@click.option("--tools", "with_tools", is_flag=True, help="Start each ready stdio server and list its tools.")
@json_option()
@pass_state
def mcp_list(state: State, with_tools: bool, as_json: bool) -> None:
    """Each server in [mcp.servers.NAME], its transport, and whether it is usable now.

    With --tools, each ready stdio server is started in the project directory
    and asked for its tools (needs cairn[mcp]); an http server is not contacted.
    """
    items = _readiness(state)["mcp_servers"]
    listed: dict[str, Any] = {}
    if with_tools:
        from cairn.config_agents import load_agent_config
        from cairn.errors import CairnError
        from cairn.mcp_client import list_server_tools

        config = state.config
        servers = load_agent_config(config)[0].servers
        for item in items:
            if item.ready and item.detail["transport"] == "stdio":
                try:
                    listed[item.name] = list_server_tools(servers[item.name], config.project_dir or config.cwd)
                except CairnError as exc:
                    if len(items) == 1:
                        raise
                    listed[item.name] = {"error": exc.message}
    if as_json:
        echo_json(
            [{**item.to_dict(), **({"tools": listed[item.name]} if item.name in listed else {})} for item in items]
        )
        return
    if not items:
        click.echo("no MCP servers configured; add an [mcp.servers.NAME] table to cairn.toml (docs/configuration.md)")
        return
    rows = []
    for item in items:
        where = item.detail.get("url") or " ".join([item.detail["command"], *item.detail["args"]])
        rows.append([item.name, item.detail["transport"], where, ", ".join(item.detail["env"]), _ready(item)])
    print_table(["server", "transport", "command / url", "env", "ready"], rows)
    for name, tools in listed.items():
        if isinstance(tools, dict):
            click.echo(f"{name}: could not list tools: {tools['error']}")
            continue
        click.echo(f"{name}: {len(tools)} tool(s)")
        for tool in tools:
            click.echo(
                f"  {tool['name']}: {(tool['description'] or '').strip().splitlines()[0] if tool['description'] else ''}"
            )
