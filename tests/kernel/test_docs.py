"""The docs keep up with the code: Quickstart lines, commands, config keys."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import click

from cairn.cli import cli
from cairn.config import KERNEL_SECTIONS

ROOT = Path(__file__).resolve().parents[2]
DOCS = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
README = (ROOT / "README.md").read_text(encoding="utf-8")


def quickstart_lines() -> list[str]:
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_quickstart_has_exactly_two_command_lines_and_ci_runs_the_second():
    lines = quickstart_lines()
    assert len(lines) == 2
    install, test = lines
    assert "cairn demo" in install and "plugins/cairn-sqlite" in install
    ci = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd "))
    ]
    assert ci == [test]


def _commands(group: click.Group, prefix: str = "cairn") -> list[str]:
    out = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        out.append(path)
        if isinstance(command, click.Group):
            out.extend(_commands(command, path))
    return out


def test_every_builtin_command_is_documented():
    missing = [path for path in _commands(cli) if path not in DOCS and path not in README]
    assert not missing, f"undocumented commands: {missing}"


def test_every_kernel_config_key_is_documented():
    config_doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for section, cls in KERNEL_SECTIONS.items():
        assert f"[{section}]" in config_doc
        for field in attrs.fields(cls):
            assert f"`{field.name}`" in config_doc, f"[{section}] {field.name} is not documented"
