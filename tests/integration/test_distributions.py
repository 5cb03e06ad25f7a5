"""Every installed distribution reports the version its pyproject.toml declares, through the real CLI."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

# distribution -> the plugin (entry point) it declares
FIRST_PARTY = {
    "cairn-sqlite": "sqlite",
    "cairn-git": "git",
    "cairn-tokenizers": "tokenizers",
    "cairn-noop": "noop",
    "cairn-openai": "openai",
    "cairn-local": "local",
    "cairn-evals": "evals",
    "cairn-hello": "hello",
}


def _cairn(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CAIRN_USER_CONFIG": ""}
    return subprocess.run(
        [sys.executable, "-m", "cairn", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def test_version_lists_the_kernel_and_every_plugin_distribution(tmp_path: Path) -> None:
    proc = _cairn(tmp_path, "--version")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"cairn {importlib.metadata.version('cairn')}"
    for dist, plugin in FIRST_PARTY.items():
        assert f"{dist} {importlib.metadata.version(dist)} ({plugin})" in lines[1:], proc.stdout


def test_plugins_json_reports_each_distribution_version(tmp_path: Path) -> None:
    proc = _cairn(tmp_path, "plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    by_name = {p["name"]: p for p in json.loads(proc.stdout)}
    assert (by_name["cairn"]["distribution"], by_name["cairn"]["version"]) == (
        "cairn",
        importlib.metadata.version("cairn"),
    )
    for dist, plugin in FIRST_PARTY.items():
        assert (by_name[plugin]["distribution"], by_name[plugin]["version"]) == (dist, importlib.metadata.version(dist))
