"""`--log-format json`: every log record is one JSON object on stderr."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from cairn.cli._logs import JsonFormatter


def test_a_record_is_one_json_line_with_its_extra_fields() -> None:
    record = logging.LogRecord("cairn.gate", logging.WARNING, __file__, 1, "denied %s", ("shell",), None)
    record.rule = "no-prod"
    line = JsonFormatter().format(record)
    data = json.loads(line)
    assert "\n" not in line
    assert (data["level"], data["logger"], data["message"], data["rule"]) == (
        "warning",
        "cairn.gate",
        "denied shell",
        "no-prod",
    )
    assert data["ts"].endswith("Z")


def test_the_cli_writes_json_records_to_stderr(cairn_env: Path) -> None:
    env = {**os.environ, "CAIRN_USER_CONFIG": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "cairn", "--log-format", "json", "--log-level", "debug", "plugins"],
        cwd=cairn_env,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines, "debug logging wrote nothing"
    for line in lines:
        record = json.loads(line)
        assert {"ts", "level", "logger", "message"} <= set(record)
