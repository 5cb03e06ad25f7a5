"""Typed ``[tools.NAME]``, ``[skills.NAME]`` and ``[mcp.servers.NAME]`` tables: what an agent may use.

- ``[tools.NAME]``: a function the model may call. ``description``, the JSON
  schema of its ``parameters``, and one handler: ``handler`` (a Python entry
  point ``package.module:function``, run by the ``python`` execution module)
  or ``command`` (an argv list, run by the ``shell`` execution module, the
  arguments as JSON on standard input); ``timeout_s`` and the ``scopes`` it
  touches (``fs``, ``net``, ``process`` ...), which the policy gate sees.
- ``[skills.NAME]``: ``description``, an ``instructions`` file (relative to
  the project) and the ``tools`` it may use (names of ``[tools]`` tables).
- ``[mcp.servers.NAME]``: a Model Context Protocol server, ``transport =
  "stdio"`` with ``command`` and ``args``, or ``"http"`` with ``url``;
  ``env`` lists the NAMES of the environment variables passed to it, never
  their values; ``enabled``.

Each table is a frozen attrs class; a problem is a ``ConfigError`` naming
the file, the table, the key and the line. Secrets are never written here:
a variable's value where its name belongs, a key-shaped string in an
argument, a URL with a password, are all refused without echoing them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import attrs

from cairn.config_tables import AGENT_SECTIONS, check_env_name
from cairn.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config

__all__ = [
    "AGENT_SECTIONS",
    "AgentConfig",
    "McpServerSpec",
    "SkillSpec",
    "ToolSpec",
    "check_agent_tables",
    "load_agent_config",
]

T = TypeVar("T")


#: A tool's name as every provider takes it (OpenAI: 1-64 of these).
_TOOL_NAME = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
#: Skill and server names: used in commands and file names, so plain.
_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_ENTRY = re.compile(r"\A[A-Za-z_][\w.]*:[A-Za-z_]\w*\Z")
_SCOPE = re.compile(r"\A[a-z][a-z0-9_.-]{0,31}\Z")


def _secret_free(what: str, value: str) -> str | None:
    """Why ``value`` cannot be written in a config file (it holds a key shape or a NUL), or None."""
    if "\x00" in value:
        return f"{what} holds a NUL character"
    from cairn.redact import redact_text

    if redact_text(value) != value:
        # Never echo it: the point is that it must not reach a terminal or a log.
        return (
            f"{what} looks like it holds a secret; secrets are passed by environment variable name only "
            "(list the name in env, and read it in the program)"
        )
    return None


def _text(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")
    problem = _secret_free(attribute.name, value)
    if problem:
        raise ValueError(problem)


def _argv(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    for index, arg in enumerate(value):
        if not isinstance(arg, str):
            raise ValueError(f"{attribute.name} must be a list of strings (item {index + 1} is not)")
        problem = _secret_free(f"item {index + 1}", arg)
        if problem:
            raise ValueError(f"{attribute.name} must hold no secret: {problem}")


def _env_names(instance: Any, attribute: attrs.Attribute[Any], value: list[str]) -> None:
    for index, name in enumerate(value):
        problem = check_env_name(name) or (_secret_free("it", name) if isinstance(name, str) else None)
        if problem:
            raise ValueError(f"{attribute.name} must list variable names: item {index + 1} {problem}")


def _scopes(instance: Any, attribute: attrs.Attribute[Any], value: list[str]) -> None:
    for scope in value:
        if not isinstance(scope, str) or not _SCOPE.match(scope):
            raise ValueError(
                f"{attribute.name} must list scope names such as fs, net or process (lowercase), got {scope!r:.40}"
            )


def _timeout(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0 < value <= 3600:
        raise ValueError(f"{attribute.name} must be more than 0 and at most 3600 seconds, got {value}")


def _schema(instance: Any, attribute: attrs.Attribute[Any], value: dict[str, Any]) -> None:
    if value.get("type") != "object":
        raise ValueError(f'{attribute.name} must be the JSON schema of an object (type = "object")')
    properties = value.get("properties", {})
    if not isinstance(properties, dict) or not all(isinstance(p, dict) for p in properties.values()):
        raise ValueError(f"{attribute.name} must map each parameter to its schema (a table) in properties")
    required = value.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) and r in properties for r in required):
        raise ValueError(f"{attribute.name} must list in required only names of parameters in properties")


@attrs.frozen
class ToolSpec:
    """``[tools.NAME]``: a function the model may call, and what runs when it does."""

    name: str
    description: str = attrs.field(validator=_text)
    #: The JSON schema of the arguments (an object); sent to the model as is.
    parameters: dict[str, Any] = attrs.field(factory=lambda: {"type": "object", "properties": {}}, validator=_schema)
    #: A Python entry point ``package.module:function``, called with the arguments as keywords.
    handler: str | None = None
    #: A program and its arguments (never a shell string); the arguments arrive as JSON on standard input.
    command: list[str] | None = attrs.field(default=None, validator=_argv)
    timeout_s: float = attrs.field(default=30.0, validator=_timeout)
    #: What the tool touches, for the policy gate and directives' scopes.
    scopes: list[str] = attrs.field(factory=list, validator=_scopes)

    def __attrs_post_init__(self) -> None:
        if (self.handler is None) == (self.command is None):
            raise ValueError(
                "handler must be given, or command, not both: an entry point package.module:function, or an argv list"
            )
        if self.handler is not None and not _ENTRY.match(self.handler):
            raise ValueError(f"handler must be an entry point package.module:function, got {self.handler!r:.80}")
        if self.command is not None and not self.command:
            raise ValueError('command must name a program: a list such as ["python", "tool.py"]')

    def to_provider(self) -> dict[str, Any]:
        """The tool as a provider request takes it (``cairn.providers.Tool``'s fields)."""
        return {"name": self.name, "description": self.description, "parameters": dict(self.parameters)}


@attrs.frozen
class SkillSpec:
    """``[skills.NAME]``: a described capability, its instructions file and the tools it may use."""

    name: str
    description: str = attrs.field(validator=_text)
    #: A file of instructions, relative to the project directory.
    instructions: str | None = attrs.field(default=None, validator=attrs.validators.optional(_text))
    tools: list[str] = attrs.field(factory=list)


@attrs.frozen
class McpServerSpec:
    """``[mcp.servers.NAME]``: a Model Context Protocol server, reached over stdio or HTTP."""

    name: str
    transport: str = attrs.field(default="stdio", validator=attrs.validators.in_(("stdio", "http")))
    command: str | None = attrs.field(default=None, validator=attrs.validators.optional(_text))
    args: list[str] = attrs.field(factory=list, validator=_argv)
    url: str | None = None
    #: The NAMES of the environment variables passed to the server (their values never live in config).
    env: list[str] = attrs.field(factory=list, validator=_env_names)
    enabled: bool = True
    timeout_s: float = attrs.field(default=30.0, validator=_timeout)

    def __attrs_post_init__(self) -> None:
        if self.transport == "stdio":
            if self.command is None:
                raise ValueError('command must be given with transport "stdio": the program to start')
            if self.url is not None:
                raise ValueError('url must not be given with transport "stdio", which takes command and args')
            return
        if self.command is not None or self.args:
            raise ValueError('command must not be given with transport "http", which takes url (and no args)')
        if self.url is None:
            raise ValueError('url must be given with transport "http", e.g. "http://127.0.0.1:8000/mcp"')
        from cairn.redact import redact_url

        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url must be an http(s) URL, got {redact_url(self.url)!r:.80}")
        if "@" in parts.netloc:
            raise ValueError("url must not hold a user name or password: pass secrets by variable name in env")
        problem = _secret_free("url", self.url)
        if problem:
            raise ValueError(problem)


@attrs.frozen
class AgentConfig:
    """Every tool, skill and MCP server the configuration declares, by name."""

    tools: dict[str, ToolSpec] = attrs.field(factory=dict)
    skills: dict[str, SkillSpec] = attrs.field(factory=dict)
    servers: dict[str, McpServerSpec] = attrs.field(factory=dict)


def _named_tables(
    config: Config, path: tuple[str, ...], pattern: re.Pattern[str], what: str, problems: list[ConfigError]
) -> Mapping[str, Any]:
    try:
        tables = config.table(*path)
    except ConfigError as exc:
        problems.append(exc)
        return {}
    out = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            problems.append(config.error(f"expected a table [{'.'.join((*path, name))}]", path, name))
        elif not pattern.match(name):
            problems.append(
                config.error(
                    f"{what} name {name!r:.70} must be 1-64 letters, digits, '_' or '-'",
                    (*path, name),
                    hint="rename the table",
                )
            )
        elif "name" in table:
            problems.append(config.error("unknown key 'name': the table's name is the name", (*path, name), "name"))
        else:
            out[name] = table
    return out


def _structure(config: Config, path: tuple[str, ...], cls: type[T], problems: list[ConfigError]) -> T | None:
    """The table at ``path`` as ``cls`` (its name added), or None with the located problem appended."""
    named = attrs.evolve(config, data={**config.data, path[0]: _with_name(config.data, path)})
    try:
        return named.structure_table(path, cls)
    except ConfigError as exc:
        if exc.line is None and exc.file:  # a key left out (or a rule across keys): point at the table
            from cairn.config_toml import find_line

            line = find_line(exc.file, path)
            exc = ConfigError(exc.problem, file=exc.file, table=exc.table, key=exc.key, line=line, hint=exc.hint)
        problems.append(exc)
        return None


def _with_name(data: Mapping[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """A copy of section ``path[0]`` where the table at ``path`` also holds ``name``."""
    section = dict(data.get(path[0], {}))
    node = section
    for part in path[1:-1]:
        node[part] = dict(node.get(part, {}))
        node = node[part]
    node[path[-1]] = {**node[path[-1]], "name": path[-1]}
    return section


def load_agent_config(config: Config) -> tuple[AgentConfig, list[ConfigError]]:
    """The tools, skills and servers that read cleanly, and every problem found (each located)."""
    problems: list[ConfigError] = []
    tools: dict[str, ToolSpec] = {}
    skills: dict[str, SkillSpec] = {}
    servers: dict[str, McpServerSpec] = {}
    for name in _named_tables(config, ("tools",), _TOOL_NAME, "tool", problems):
        spec = _structure(config, ("tools", name), ToolSpec, problems)
        if spec is not None:
            tools[name] = spec
    for name in _named_tables(config, ("skills",), _NAME, "skill", problems):
        skill = _structure(config, ("skills", name), SkillSpec, problems)
        if skill is None:
            continue
        unknown = [t for t in skill.tools if t not in config.table("tools")]
        if unknown:
            problems.append(
                config.error(
                    f"tools names {', '.join(repr(t)[:70] for t in unknown)}, which no [tools.NAME] table declares",
                    ("skills", name),
                    "tools",
                    hint="declare the tool in a [tools.NAME] table, or remove it from the list",
                )
            )
            continue
        skills[name] = skill
    try:
        mcp = config.table("mcp")
    except ConfigError as exc:
        problems.append(exc)
        mcp = {}
    for key in mcp:
        if key != "servers":
            problems.append(config.error(f"unknown key {key!r:.70} in [mcp]", ("mcp",), key, hint="valid: servers"))
    for name in _named_tables(config, ("mcp", "servers"), _NAME, "server", problems):
        server = _structure(config, ("mcp", "servers", name), McpServerSpec, problems)
        if server is not None:
            servers[name] = server
    return AgentConfig(tools, skills, servers), problems


def check_agent_tables(config: Config) -> list[ConfigError]:
    """Every problem in ``[tools]``, ``[skills]`` and ``[mcp]`` (what ``cairn config validate`` adds)."""
    return load_agent_config(config)[1]
