"""``cairn.cli.main``, the ``cairn`` script's entry point: one shape for every error, exit status 2 for the
command line itself and 1 for a failed command, and a last-resort handler for bugs that is never a traceback
unless asked for (``CAIRN_DEBUG=1``)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from cairn.cli import INTERNAL_ERROR, cli, main
from cairn.cli._app import Count, SafePath


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), capsys.readouterr().err


@pytest.fixture
def command(monkeypatch: pytest.MonkeyPatch) -> click.Group:
    """The ``cli`` group with a private command table, so a test can add a command to it."""
    monkeypatch.setattr(cli, "commands", dict(cli.commands))
    return cli


def test_a_bug_is_an_internal_error_line_not_a_traceback(
    cairn_env: Path, command: click.Group, capsys: pytest.CaptureFixture[str]
) -> None:
    @command.command("explode")
    def explode() -> None:
        raise RuntimeError("the widget came loose")

    code, err = run(["explode"], capsys)
    assert code == INTERNAL_ERROR == 70
    lines = err.splitlines()
    assert lines[0] == "error: internal error: RuntimeError: the widget came loose"
    assert lines[1].startswith("  hint: this is a bug in cairn; please report it") and "CAIRN_DEBUG=1" in lines[1]
    assert "Traceback" not in err


def test_cairn_debug_shows_the_traceback_of_a_bug(
    cairn_env: Path, command: click.Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    @command.command("explode")
    def explode() -> None:
        raise RuntimeError("the widget came loose")

    monkeypatch.setenv("CAIRN_DEBUG", "1")
    with pytest.raises(RuntimeError, match="the widget came loose"):
        main(["explode"])


def test_a_click_exception_has_cairns_shape(
    cairn_env: Path, command: click.Group, capsys: pytest.CaptureFixture[str]
) -> None:
    @command.command("refuse")
    def refuse() -> None:
        raise click.ClickException("not today")

    assert run(["refuse"], capsys) == (1, "error: not today\n")


def test_an_unknown_command_is_a_usage_error(cairn_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["nosuchcommand"], capsys)
    assert code == 2
    first, hint = err.splitlines()
    assert first.startswith("error: No such command") and "nosuchcommand" in first
    assert hint.startswith("  hint: usage: cairn [OPTIONS] COMMAND [ARGS]...")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--set", "nokey", "config", "show"], "error: --set 'nokey' is not SECTION.KEY=VALUE"),
        (["--set", "context.max_tokens=" + "[" * 3000, "config", "show"], "error: --set context.max_tokens: "),
        (["--set", "cairn.data_dir=a\x00b", "config", "show"], "NUL character"),
        (["--config", "missing.toml", "config", "show"], "missing.toml: no such config file"),
        (["-C", "a\x00b", "config", "show"], "a path cannot hold a NUL character"),
        (["-C", "\udcff", "config", "show"], "is not valid UTF-8"),
        (["--config", "", "config", "show"], "the path is empty"),
    ],
)
def test_a_bad_global_option_exits_2(
    cairn_env: Path, capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    code, err = run(argv, capsys)
    assert code == 2 and err.startswith("error: ") and fragment in err, err


def test_config_validate_exits_2_for_a_bad_set_flag(cairn_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["--set", "context.max_tokens=" + "9" * 5000, "config", "validate"], capsys)
    assert code == 2 and err.startswith("error: --set context.max_tokens: a number is too long"), err


def test_count_reads_anything_huge_as_no_limit() -> None:
    count = Count()
    assert count.convert("7", None, None) == 7
    assert count.convert("9" * 40, None, None) == 2**31 - 1
    for bad in ("0", "-3", "x", "9" * 5000):
        with pytest.raises(click.BadParameter):
            count.convert(bad, None, None)
    assert Count(min=0).convert("0", None, None) == 0


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("a\x00b", "NUL"), ("\udcff", "UTF-8"), ("", "empty"), ("x" * 5000, "does not exist|too long")],
)
def test_safe_path_turns_every_bad_name_into_a_usage_error(tmp_path: Path, value: str, fragment: str) -> None:
    with pytest.raises(click.BadParameter, match=fragment):
        SafePath(exists=True).convert(value, None, None)
    assert SafePath(exists=True).convert(str(tmp_path), None, None) == str(tmp_path)


def test_a_command_imports_its_own_module_only(tmp_path) -> None:
    """`cairn status` imports the module of status, not the other built-in command modules."""
    import subprocess
    import sys

    code = (
        "import sys; from cairn.cli import main\n"
        "try:\n    main(['status'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('cairn.cli.') and m.endswith('_cmd')))"
    )
    (tmp_path / "cairn.toml").write_text("[cairn]\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "CAIRN_USER_CONFIG": "", "HOME": str(tmp_path)},
    )
    assert done.stdout.strip().splitlines()[-1] == "['cairn.cli.inspect_cmd']"


def test_every_lazy_command_is_the_one_its_module_registers() -> None:
    from cairn.cli import cli

    declared = {name for names in cli.lazy_modules.values() for name in names}
    assert set(cli.load_builtin_commands()) == declared
    with click.Context(cli) as ctx:
        assert set(cli.list_commands(ctx)) >= declared
