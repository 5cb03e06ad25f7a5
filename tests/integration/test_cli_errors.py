"""Each hostile input the hardening issue names, through ``cairn.cli.main`` as the ``cairn`` script runs it:
an ``error:`` line that says where, a ``hint:`` line that says what to do, exit 1 (or 2 for the command
line itself), never a traceback, and nothing stored."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cairn.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "internal error" not in err, err
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), out, err


@pytest.fixture
def project(cairn_env: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert run(["init"], capsys)[0] == 0
    return cairn_env


def write_config(project: Path, text: str) -> Path:
    path = project / "cairn.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("command", [["status"], ["commit", "hello"]])
def test_a_tokenizer_whose_package_is_missing_says_what_to_install(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    # What Python does when the extra is not installed: no spec, and `import tiktoken` fails.
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    path = write_config(project, '[cairn]\nstorage = "sqlite"\ntokenizer = "tiktoken:cl100k_base"\n')
    code, _, err = run(command, capsys)
    assert code == 1
    first, hint = err.splitlines()[:2]
    assert first == (
        f"error: {path}:3: [cairn] tokenizer: tokenizer 'tiktoken:cl100k_base' needs the Python module "
        "'tiktoken', which is not installed"
    )
    assert hint == "  hint: pip install 'cairn-tokenizers[tiktoken]', or choose another tokenizer"
    code, out, _ = run(["--set", "cairn.tokenizer=approx", "log", "--json"], capsys)
    assert (code, out.strip()) == (0, "[]")  # nothing was stored


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('[cairn]\ndata_dir = "a\\u0000b"\n', 2, "[cairn] data_dir: the value holds a NUL character"),
        ("[cairn]\nx = " + "[" * 3000 + "]" * 3000 + "\n", 2, "nested more than 32 levels deep"),
        ("[context]\nmax_tokens = " + "9" * 5000 + "\n", 2, "a number is too long to read"),
    ],
)
def test_a_hostile_config_file_is_one_located_error(
    project: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, fragment: str
) -> None:
    path = write_config(project, text)
    for command in (["status"], ["config", "show"], ["config", "validate"]):
        code, _, err = run(command, capsys)
        assert code == 1 and err.startswith(f"error: {path}:{line}: ") and fragment in err, err
    # The way out still works: init --force rewrites the file.
    assert run(["init", "--force"], capsys)[0] == 0
    assert run(["status"], capsys)[0] == 0


def test_a_huge_number_given_with_set_is_a_usage_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["--set", f"context.max_tokens={'9' * 5000}", "status"], capsys)
    assert code == 2 and err.startswith("error: --set context.max_tokens: a number is too long to read"), err


def test_config_validate_locates_every_problem_the_issue_names(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    (project / "a-file").write_text("x")
    path = write_config(
        project,
        f"""[cairn]
storage = "nosuch"
tokenizer = "tiktoken:cl100k_base"
data_dir = "{project / "a-file" / "data"}"

[context]
default_branch = "../../x"

[chat]
key_env = ""

[storage.sqlite]
path = "/dev/null"

[bogus]
x = 1
""",
    )
    code, out, err = run(["config", "validate"], capsys)
    assert code == 1 and out == ""
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    expected = {
        2: "[cairn] storage: no storage backend called 'nosuch'",
        3: "[cairn] tokenizer: tokenizer 'tiktoken:cl100k_base' needs the Python module 'tiktoken'",
        4: "[cairn] data_dir: data_dir ",
        7: "[context] default_branch: default_branch must be a valid branch name",
        10: "[chat] key_env: key_env must name an environment variable",
        13: "[storage.sqlite] path: /dev/null is not a regular file",
        15: "[bogus]: unknown section [bogus]",
    }
    for line, fragment in expected.items():
        assert any(e.startswith(f"error: {path}:{line}: {fragment}") for e in errors), (line, err)
    assert len(errors) == len(expected), err
    assert err.count("  hint: ") >= len(expected)


@pytest.mark.parametrize("branch", ["-x", "a..b", ""])
def test_config_validate_refuses_each_invalid_default_branch(
    project: Path, capsys: pytest.CaptureFixture[str], branch: str
) -> None:
    path = write_config(project, f'[context]\ndefault_branch = "{branch}"\n')
    code, _, err = run(["config", "validate"], capsys)
    assert code == 1 and err.startswith(f"error: {path}:2: [context] default_branch: "), err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_config_validate_refuses_a_data_dir_in_proc(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(project, '[cairn]\ndata_dir = "/proc/nope"\n')
    code, _, err = run(["config", "validate"], capsys)
    assert code == 1 and err.startswith(f"error: {path}:2: [cairn] data_dir: data_dir /proc/nope cannot be created")


def test_a_click_usage_error_has_cairns_shape(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["commit", "--nope"], capsys)
    assert code == 2
    first, hint = err.splitlines()
    assert first.startswith("error: No such option") and "--nope" in first
    assert hint == "  hint: usage: cairn commit [OPTIONS] [TEXT]; `cairn commit --help` explains it"


@pytest.mark.parametrize(
    ("argv", "code", "fragment"),
    [
        (["-C", "nowhere", "status"], 2, "error: Invalid value for '-C' / '--project'"),
        (["--config", "nope.toml", "status"], 2, "nope.toml: no such config file"),
        (["--config", "x" * 5000, "status"], 2, "File name too long"),
        (["log", "-n", "9" * 30], 0, ""),
        (["materialize", "--budget", "9" * 30], 0, ""),
        (["runs", "list", "--since", "99999999999d"], 0, ""),
        (["runs", "prune", "--dry-run", "--older-than", "999999999999999999999d"], 0, ""),
        (["spend", "--since", "9999999999d"], 0, ""),
        (["runs", "list", "--since", "9" * 5000 + "d"], 1, "is not a time"),
        (["commit", "--payload", "@missing.json"], 1, "error: cannot read --payload file 'missing.json'"),
        (["commit", "--payload", "@" + "x" * 5000], 1, "File name too long"),
        (["branch", "delete", "\udcff\udcfe"], 1, "holds bytes that are not valid UTF-8"),
        (["branch", "rename", "\udcff", "x"], 1, "holds bytes that are not valid UTF-8"),
        (["chat", "list", "--run", "no-such-run"], 1, "error: no run 'no-such-run'"),
        (["eval", "run", "x" * 5000, "-e", "exact"], 1, "error: no dataset"),
        (["init", "cairn.toml/sub"], 1, "cannot create the project"),
        (["run", "--", "echo", "a\x00b"], 2, "NUL character"),
        (["commit", "--payload", '{"text": ' + "[" * 3000 + "]" * 3000 + "}"], 1, "--payload is nested too deeply"),
        (["commit", "x", "--meta", "k=" + "[" * 101 + "]" * 101], 1, "nested more than 100 levels deep"),
        (["commit", "x", "--meta", "k=" + "[" * 3000 + "]" * 3000], 1, "--meta k is nested too deeply"),
        (["eval", "run", "ds.jsonl", "-e", "exact:threshold=" + "9" * 5000], 1, "a number is too long to read"),
        (["eval", "run", "ds.jsonl", "-e", "exact:ignore_case=" + "[" * 3000], 1, "nested more than 32 levels"),
        (["eval", "run", "deep.jsonl", "-e", "exact"], 1, "deep.jsonl:1: JSON nested too deeply to read"),
    ],
)
def test_hostile_arguments_get_clear_answers(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, fragment: str
) -> None:
    (project / "ds.jsonl").write_text('{"id": "a", "output": "x", "expected": "x"}\n')
    (project / "deep.jsonl").write_text('{"id": "a", "output": ' + "[" * 5000 + "]" * 5000 + "}\n")
    got, _, err = run(argv, capsys)
    assert got == code and fragment in err, err
    if code:
        assert err.startswith("error: ") and "  hint: " in err or code == 2, err


def test_standard_input_that_is_not_utf8_is_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from click.testing import CliRunner

    with CliRunner().isolation(input=b"\xff\xfe not text") as (_, err, _):
        with pytest.raises(SystemExit) as exit_info:
            main(["commit", "-"])
        sys.stderr.flush()
        text = err.getvalue().decode()
    assert exit_info.value.code == 1
    assert text.startswith("error: the text from standard input is not UTF-8 text"), text
