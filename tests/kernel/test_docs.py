"""The docs keep up with the code: Quickstart lines, commands, config keys."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import click

from cairn.cli import cli
from cairn.cli._app import CairnGroup
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
        # preparation (another .ci script, an exported variable) may come first; the test line is the rest
        if line and not line.startswith(("#", "set ", "cd ", ".ci/", "export "))
    ]
    # Before it, only the system packages a clean machine lacks (chromium for the browser tests).
    assert ci[-1] == test
    assert all(line.startswith("command -v ") and "apt-get install" in line for line in ci[:-1])


def _commands(group: click.Group, prefix: str = "cairn") -> list[str]:
    out = []
    commands = group.load_builtin_commands() if isinstance(group, CairnGroup) else group.commands
    for name, command in commands.items():
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


STORAGE_DOC = (ROOT / "docs" / "storage.md").read_text(encoding="utf-8")


def markdown_table(text: str, header_start: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the markdown table whose header row starts with ``header_start``, cells unquoted."""

    def cells(line: str) -> list[str]:
        return [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]

    start = text.index("\n" + header_start) + 1
    lines = text[start:].split("\n")
    rows = []
    for line in lines[2:]:  # past the header and its |---| line
        if not line.startswith("|"):
            break
        rows.append(cells(line))
    return cells(lines[0]), rows


def test_the_storage_guide_lists_every_facet_contract():
    import cairn.storage as storage

    contracts = {
        cls.facet: name
        for name, cls in vars(storage).items()
        if isinstance(cls, type) and issubclass(cls, storage.Facet) and "facet" in vars(cls) and cls.facet
    }
    _, rows = markdown_table(STORAGE_DOC, "| facet | contract (`cairn.storage`) |")
    assert {row[0]: row[1] for row in rows} == contracts
    _, suites = markdown_table(STORAGE_DOC, "| facet | suite |")
    from cairn.testing import storage as suites_module

    assert {row[0]: getattr(suites_module, row[1]).facet for row in suites} == {f: f for f in contracts}


def test_the_storage_guide_says_what_the_memory_store_keeps():
    from cairn.storage import facets_of
    from cairn.testing.memory import MemoryStore

    header, rows = markdown_table(STORAGE_DOC, "| backend | objects |")
    row = next(r for r in rows if "MemoryStore" in r[0])
    assert {name for name, mark in zip(header[1:], row[1:], strict=True) if mark == "✓"} == facets_of(MemoryStore)


def test_the_storage_guide_shows_cairn_files_as_it_is():
    """A code block headed ``# contrib/cairn-files/<path>`` is copied from that file; a line ``...`` separates
    excerpts, which must appear in the file in that order."""
    shown = 0
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", STORAGE_DOC, flags=re.MULTILINE | re.DOTALL):
        first, _, body = block.partition("\n")
        match = re.fullmatch(r"# (contrib/cairn-files/\S+)", first.strip())
        if not match:
            continue
        source = (ROOT / match.group(1)).read_text(encoding="utf-8")
        position = 0
        for excerpt in re.split(r"^\.\.\.\n", body, flags=re.MULTILINE):
            found = source.find(excerpt, position)
            assert found >= 0, f"{match.group(1)} does not hold, after what the block showed before:\n{excerpt}"
            position = found + len(excerpt)
        shown += 1
    assert shown == 4, "docs/storage.md should show cairn-files' entry point, hook module, store and tests"


def test_the_plugin_guides_memory_state_example_runs_as_written(cairn_env: Path) -> None:
    # docs/plugins.md shows how to hand the CLI a State over a MemoryStore; its class must work as printed
    # (it once assigned to the read-only State.store property).
    from click.testing import CliRunner

    from cairn.cli import State
    from cairn.repo import Repo
    from cairn.testing.fakes import WordTokenizer
    from cairn.testing.memory import MemoryStore

    guide = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", guide, flags=re.S) if "class MemoryState" in b)
    source = block.split("class MemoryState", 1)[1].split("\n\n\n", 1)[0]
    namespace = {"State": State, "Repo": Repo, "WordTokenizer": WordTokenizer}
    exec("class MemoryState" + source, namespace)  # the documented class, run as a reader would
    store = MemoryStore()
    state = namespace["MemoryState"](store)
    result = CliRunner().invoke(cli, ["commit", "hello from the guide"], obj=state)
    assert result.exit_code == 0, result.output
    (head,) = [value for name, value in store.list_refs().items() if name.startswith("refs/heads/")]
    (commit,) = store.get_commits([head]).values()  # the command wrote to the State's own store
    assert b"hello from the guide" in store.get_blobs([commit.content_hash])[commit.content_hash]
