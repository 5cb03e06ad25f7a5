"""``python``: call ``module:function`` in a fresh Python subprocess with JSON in and JSON out.

Input: ``{"entry": "package.module:function", "args": {...}}``; the function
is called with the keyword arguments ``args`` and must return a JSON value
(the output's ``result``). ``[exec.python] entries`` lists the entry points
it may call (glob patterns); empty allows none, so nothing runs until the
project says what may.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from collections.abc import Mapping
from typing import Any

import attrs

from cairn.errors import ValidationError
from cairn.executor import ExecResult, Executor
from cairn.executors._process import run_bounded

__all__ = ["PythonConfig", "PythonExecutor"]

_ENTRY = re.compile(r"\A[A-Za-z_][\w.]*:[A-Za-z_]\w*\Z")
_MARK = "\x1ecairn-result\x1e"
_BOOT = f"""
import importlib, json, sys
request = json.loads(sys.stdin.read())
module, _, name = request["entry"].partition(":")
result = getattr(importlib.import_module(module), name)(**request["args"])
sys.stdout.write({_MARK!r} + json.dumps(result))
"""


@attrs.frozen
class PythonConfig:
    """``[exec.python]``."""

    #: Entry points it may call (glob patterns on ``module:function``); empty allows none.
    entries: list[str] = attrs.field(factory=list)
    timeout_s: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    max_output_bytes: int = attrs.field(default=1_000_000, validator=attrs.validators.gt(0))
    max_memory_mb: int | None = None
    max_cpu_s: int | None = None


class PythonExecutor(Executor):
    input_schema = {
        "type": "object",
        "properties": {
            "entry": {"type": "string", "minLength": 3, "maxLength": 200},
            "args": {"type": "object"},
            "timeout_s": {"type": "number", "minimum": 0.001},
        },
        "required": ["entry"],
        "additionalProperties": False,
    }
    scopes = ("process",)

    def __init__(self, config: PythonConfig) -> None:
        self.config = config
        self.timeout_s = config.timeout_s

    def describe(self, input: Mapping[str, Any]) -> dict[str, Any]:
        return {"entry": input["entry"]}

    def check(self, input: Mapping[str, Any]) -> None:
        entry = input["entry"]
        if not _ENTRY.match(entry):
            raise ValidationError(f"{entry!r:.80} is not an entry point", hint="write it as package.module:function")
        if not any(fnmatch.fnmatchcase(entry, p) for p in self.config.entries):
            raise ValidationError(
                f"entry point {entry!r} is not in [exec.python] entries",
                hint=f'add it (or a pattern) to [exec.python] entries = ["{entry}"] in cairn.toml',
            )

    def execute(self, input: Mapping[str, Any], *, timeout_s: float) -> ExecResult:
        self.check(input)
        entry = input["entry"]
        request = json.dumps({"entry": entry, "args": input.get("args", {})}).encode()
        result, raw = run_bounded(
            [sys.executable, "-c", _BOOT],
            stdin=request,
            timeout_s=min(timeout_s, input.get("timeout_s", timeout_s)),
            max_output_bytes=self.config.max_output_bytes,
            max_memory_mb=self.config.max_memory_mb,
            max_cpu_s=self.config.max_cpu_s,
        )
        output = dict(result.output)
        text = raw.decode("utf-8", "replace")
        if result.status == "ok":
            printed, mark, answer = text.rpartition(_MARK)
            if not mark:
                return ExecResult("failed", output, "the function returned no result")
            try:
                output["result"] = json.loads(answer)
            except ValueError:
                return ExecResult("failed", output, "the function's result is not JSON")
            output["stdout"] = output["stdout"].split(_MARK)[0]
        else:
            output["stdout"] = output["stdout"].split(_MARK)[0]
        return attrs.evolve(result, output=output)
