"""``shell``: run a program with an argument list -- never a shell string -- bounded in time, memory and output.

Input: ``{"argv": ["prog", "arg", ...], "cwd": "dir", "timeout_s": 10}``.
Output: exit code, stdout and stderr (secrets masked, cut at
``max_output_bytes``). ``[exec.shell] programs`` lists the programs it may
run (glob patterns on the name or path; empty: any).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from typing import Any

import attrs

from cairn.errors import ValidationError
from cairn.executor import ExecResult, Executor
from cairn.executors._process import run_bounded

__all__ = ["ShellConfig", "ShellExecutor"]


@attrs.frozen
class ShellConfig:
    """``[exec.shell]``."""

    #: Programs it may run (glob patterns on the name or path); empty: any.
    programs: list[str] = attrs.field(factory=list)
    timeout_s: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    max_output_bytes: int = attrs.field(default=1_000_000, validator=attrs.validators.gt(0))
    max_memory_mb: int | None = None
    max_cpu_s: int | None = None


class ShellExecutor(Executor):
    input_schema = {
        "type": "object",
        "properties": {
            "argv": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
            "cwd": {"type": "string", "minLength": 1},
            "timeout_s": {"type": "number", "minimum": 0.001},
        },
        "required": ["argv"],
        "additionalProperties": False,
    }
    scopes = ("process", "fs")

    def __init__(self, config: ShellConfig) -> None:
        self.config = config
        self.timeout_s = config.timeout_s

    def check(self, input: Mapping[str, Any]) -> None:
        program = input["argv"][0]
        if "\x00" in "".join(input["argv"]):
            raise ValidationError("an argument holds a NUL character, which no program can receive")
        allowed = self.config.programs
        if allowed and not any(
            fnmatch.fnmatchcase(program, p) or fnmatch.fnmatchcase(os.path.basename(program), p) for p in allowed
        ):
            raise ValidationError(
                f"program {program!r} is not in [exec.shell] programs", hint=f"allowed: {', '.join(allowed)}"
            )

    def paths_for(self, input: Mapping[str, Any]) -> tuple[str, ...]:
        return (input["cwd"],) if "cwd" in input else ()

    def describe(self, input: Mapping[str, Any]) -> dict[str, Any]:
        return {"program": os.path.basename(input["argv"][0]), "args": len(input["argv"]) - 1}

    def execute(self, input: Mapping[str, Any], *, timeout_s: float) -> ExecResult:
        self.check(input)
        result, _ = run_bounded(
            input["argv"],
            timeout_s=min(timeout_s, input.get("timeout_s", timeout_s)),
            max_output_bytes=self.config.max_output_bytes,
            cwd=input.get("cwd"),
            max_memory_mb=self.config.max_memory_mb,
            max_cpu_s=self.config.max_cpu_s,
        )
        return result
