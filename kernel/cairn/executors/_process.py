"""Running a child process for an execution module: a timeout, resource limits, bounded and redacted output."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from cairn.executor import ExecResult
from cairn.redact import Redactor

__all__ = ["run_bounded"]


def _limits(max_memory_mb: int | None, max_cpu_s: int | None) -> Any:
    if sys.platform == "win32" or (max_memory_mb is None and max_cpu_s is None):
        return None

    def apply() -> None:  # runs in the child between fork and exec
        import resource

        if max_memory_mb is not None:
            size = max_memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (size, size))
        if max_cpu_s is not None:
            resource.setrlimit(resource.RLIMIT_CPU, (max_cpu_s, max_cpu_s))

    return apply


def _cut(data: bytes, limit: int) -> tuple[str, bool]:
    return data[:limit].decode("utf-8", "replace"), len(data) > limit


def run_bounded(
    argv: Sequence[str],
    *,
    timeout_s: float,
    max_output_bytes: int,
    stdin: bytes | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    max_memory_mb: int | None = None,
    max_cpu_s: int | None = None,
    redactor: Redactor | None = None,
) -> tuple[ExecResult, bytes]:
    """Run ``argv`` (no shell); the result (output redacted and cut at ``max_output_bytes``) and raw stdout.

    Timed out: the child is killed, ``timed_out``. Interrupted (Ctrl-C): the
    child is terminated, ``cancelled``. A program that cannot start: ``failed``.
    """
    redactor = redactor or Redactor.from_environment()
    try:
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env={**os.environ, **dict(env)} if env else None,
            preexec_fn=_limits(max_memory_mb, max_cpu_s),
        )
    except OSError as exc:
        return ExecResult("failed", {}, f"could not start {argv[0]!r}: {exc.strerror}"), b""
    status = "ok"
    try:
        out, err = child.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        status = "timed_out"
    except KeyboardInterrupt:
        child.terminate()
        out, err = child.communicate()
        status = "cancelled"
    stdout, stdout_cut = _cut(out, max_output_bytes)
    stderr, stderr_cut = _cut(err, max_output_bytes)
    output = {
        "exit_code": child.returncode,
        "stdout": redactor.text(stdout),
        "stderr": redactor.text(stderr),
        "truncated": stdout_cut or stderr_cut,
    }
    error = None
    if status == "timed_out":
        error = f"no exit within {timeout_s:g} s; the process was killed"
    elif status == "cancelled":
        error = "interrupted; the process was terminated"
    elif child.returncode != 0:
        status = "failed"
        error = f"exit status {child.returncode}"
    return ExecResult(status, output, error), out
