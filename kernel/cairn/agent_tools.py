"""Configured tools, skills and MCP servers: whether each is usable, and running a tool through the gate.

Readiness is decided locally, with no network and without importing user
code: a handler's top-level module can be found on the path, a command's
program is on ``PATH`` (or is a file that can be run), an instructions file
exists, the environment variables a server is given are set.

``run_tool`` is how the kernel runs a tool the model called: the policy gate
sees a ``tool`` action (the tool's name and scopes, a digest of the
arguments), then the handler runs through the kernel's one execution path
(``cairn.execution``): a ``handler`` by the ``python`` execution module, a
``command`` by the ``shell`` module with the arguments as one JSON argument
appended. Its result (or what went wrong) is what the model is told.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from cairn.config_agents import AgentConfig, McpServerSpec, SkillSpec, ToolSpec

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.gate import Gate

__all__ = ["Readiness", "ToolOutcome", "mcp_readiness", "run_tool", "skill_readiness", "tool_readiness"]


@attrs.frozen
class Readiness:
    """Whether a configured item can be used now, and if not, what is missing."""

    name: str
    kind: str  # tool | skill | mcp
    ready: bool
    problem: str | None = None
    detail: dict[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "ready": self.ready, "problem": self.problem, **self.detail}


def _program_problem(program: str, base: Path) -> str | None:
    if os.sep in program or (os.altsep and os.altsep in program):
        path = Path(program) if Path(program).is_absolute() else base / program
        if not (path.is_file() and os.access(path, os.X_OK)):
            return f"program {program!r:.80} is not an executable file"
        return None
    if shutil.which(program) is None:
        return f"program {program!r:.80} is not on PATH"
    return None


def _module_problem(entry: str, base: Path) -> str | None:
    import importlib.machinery
    import sys

    top = entry.partition(":")[0].split(".")[0]
    if top in sys.builtin_module_names:
        return None
    # A path search finds the module without importing it (nor any package above it).
    if importlib.machinery.PathFinder.find_spec(top, [str(base), *sys.path]) is None:
        return f"module {top!r} cannot be found (run cairn from the directory that holds it, or install it)"
    return None


def tool_readiness(spec: ToolSpec, base: Path) -> Readiness:
    detail: dict[str, Any]
    if spec.handler is not None:
        problem = _module_problem(spec.handler, base)
        detail = {"handler": spec.handler}
    else:
        assert spec.command is not None  # a ToolSpec has one of them
        problem = _program_problem(spec.command[0], base)
        detail = {"command": list(spec.command)}
    detail.update(description=spec.description, scopes=list(spec.scopes), timeout_s=spec.timeout_s)
    return Readiness(spec.name, "tool", problem is None, problem, detail)


def skill_readiness(spec: SkillSpec, base: Path, tools: Mapping[str, Readiness]) -> Readiness:
    problem = None
    if spec.instructions is not None and not (base / spec.instructions).is_file():
        problem = f"instructions file {spec.instructions!r:.80} does not exist"
    blocked = [name for name in spec.tools if name in tools and not tools[name].ready]
    if problem is None and blocked:
        problem = f"tool(s) not ready: {', '.join(blocked)}"
    detail = {"description": spec.description, "instructions": spec.instructions, "tools": list(spec.tools)}
    return Readiness(spec.name, "skill", problem is None, problem, detail)


def mcp_readiness(spec: McpServerSpec, base: Path, environ: Mapping[str, str] | None = None) -> Readiness:
    environ = os.environ if environ is None else environ
    problem = None
    if not spec.enabled:
        problem = "disabled (enabled = false)"
    elif spec.command is not None:
        problem = _program_problem(spec.command, base)
    if problem is None:
        unset = [name for name in spec.env if name not in environ]
        if unset:
            problem = f"environment variable(s) not set: {', '.join(unset)}"
    detail: dict[str, Any] = {"transport": spec.transport, "enabled": spec.enabled, "env": list(spec.env)}
    if spec.transport == "stdio":
        detail.update(command=spec.command, args=list(spec.args))
    else:
        from cairn.redact import redact_url

        detail["url"] = redact_url(spec.url or "")
    return Readiness(spec.name, "mcp", problem is None, problem, detail)


def readiness_of(agents: AgentConfig, base: Path) -> dict[str, list[Readiness]]:
    """Every tool, skill and server with its readiness, by kind, in name order."""
    tools = {name: tool_readiness(spec, base) for name, spec in sorted(agents.tools.items())}
    return {
        "tools": list(tools.values()),
        "skills": [skill_readiness(spec, base, tools) for _, spec in sorted(agents.skills.items())],
        "mcp_servers": [mcp_readiness(spec, base) for _, spec in sorted(agents.servers.items())],
    }


@attrs.frozen
class ToolOutcome:
    """What a tool call came to: ``success`` with the handler's result, or ``error`` saying why (for the model)."""

    status: str
    payload: dict[str, Any]
    run_id: str | None = None


def run_tool(
    spec: ToolSpec,
    arguments: Mapping[str, Any],
    *,
    config: Config,
    plugins: Any,
    store: Any,
    gate: Gate,
) -> ToolOutcome:
    """Run ``spec``'s handler on ``arguments`` through the gate and the execution path (module docstring).

    Arguments the schema refuses and a policy denial are outcomes the model is
    told (``error``); a call waiting for a person's approval raises
    ``ApprovalRequiredError``, since nothing can answer it now.
    """
    from cairn.errors import PolicyDeniedError, ValidationError
    from cairn.execution import execute
    from cairn.executor import check_input
    from cairn.model import canonical_json, sha256_hex
    from cairn.policy import Action

    args = dict(arguments)
    try:
        check_input(spec.parameters, args)
    except ValidationError as exc:
        return ToolOutcome("error", {"error": f"invalid arguments: {exc.message}"})
    digest = sha256_hex(canonical_json(args, check_keys=False))
    action = Action("tool", spec.name, scopes=tuple(spec.scopes), details={"input_sha256": digest})
    try:
        gate.check(action)
    except PolicyDeniedError as exc:
        return ToolOutcome("error", {"error": f"denied by policy: {exc.decision.reason}"})
    if spec.handler is not None:
        executor = "python"
        allowed = _with_entry(config, spec.handler)
        exec_input: dict[str, Any] = {"entry": spec.handler, "args": args, "timeout_s": spec.timeout_s}
    else:
        assert spec.command is not None
        executor, allowed = "shell", config
        argv = [*spec.command, json.dumps(args, ensure_ascii=False, sort_keys=True)]
        exec_input = {"argv": argv, "timeout_s": spec.timeout_s}
    try:
        outcome = execute(executor, exec_input, config=allowed, plugins=plugins, store=store)
    except PolicyDeniedError as exc:
        return ToolOutcome("error", {"error": f"denied by policy: {exc.decision.reason}"})
    except ValidationError as exc:  # the execution module refused the call (a program not allowed ...)
        return ToolOutcome("error", {"error": exc.message})
    result = outcome.result
    if result.status != "ok":
        return ToolOutcome("error", {"error": result.error or result.status, **_shown(result.output)}, outcome.run_id)
    if executor == "python":
        return ToolOutcome("success", {"result": result.output.get("result")}, outcome.run_id)
    return ToolOutcome("success", _shown(result.output), outcome.run_id)


def _shown(output: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("exit_code", "stdout", "stderr")
    return {key: output[key] for key in keep if key in output and output[key] not in ("", None)}


def _with_entry(config: Config, entry: str) -> Config:
    """``config`` with ``entry`` allowed in ``[exec.python] entries``: declaring the tool is allowing its handler."""
    data = dict(config.data)
    section = dict(data.get("exec", {}))
    table = dict(section.get("python", {}))
    table["entries"] = [*table.get("entries", []), entry]
    section["python"] = table
    data["exec"] = section
    return attrs.evolve(config, data=data)
