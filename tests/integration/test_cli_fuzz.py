"""The command line under hostile input, on both storage backends.

Hypothesis draws ids, revisions, branch names, config files and ``--set``
values, whole command lines, and import files (JSONL records with arbitrary
JSON values, bytes that are not UTF-8, absurd nesting and numbers). For every
input it draws, the CLI must:

- never print a traceback, and never reach ``main``'s last-resort handler
  (``error: internal error``, exit 70): every mistake is a user error;
- print a user error as ``error: ...`` and exit non-zero, always when the
  input is invalid by construction (a revision with a character no
  revision has, a branch name the documented rules refuse, an import line
  that is no valid record ...);
- leave the store as ``cairn fsck`` finds it: clean.

Commands run in process through ``cairn.cli.main``, the ``cairn`` script's own
entry point, inside click's stream isolation (real byte streams under
``sys.stdin``/``sys.stdout``), so thousands of examples take a minute; a few
subprocess cases at the end check the same things through a real process
with real bytes in ``argv``.

Examples are derandomized (``CAIRN_FUZZ_SEED=random`` explores new ones), so
CI runs the same inputs every time; ``CAIRN_FUZZ_SCALE`` multiplies their
number. Argument strategies never hold NUL (no shell can pass one); bytes
that are not UTF-8 reach Python as lone surrogates (``surrogateescape``) and
are drawn as such.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.cli import INTERNAL_ERROR, main
from cairn.errors import ValidationError
from cairn.model import validate_branch_name

BACKENDS = ("sqlite", "git")
SCALE = float(os.environ.get("CAIRN_FUZZ_SCALE", "1"))
RANDOM = os.environ.get("CAIRN_FUZZ_SEED") == "random"

#: Examples per property and backend; the sum over both backends is asserted to be at least 2,000.
BUDGET = {
    "revisions": 160,
    "run_ids": 80,
    "branch_names": 120,
    "config_files": 110,
    "set_flags": 90,
    "command_lines": 240,
    "stdin": 40,
    "run_args": 40,
    "json_args": 80,
    "project_options": 60,
    "import_records": 140,
    "import_edits": 60,
}

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Fuzz",
    "GIT_AUTHOR_EMAIL": "fuzz@example.org",
    "GIT_COMMITTER_NAME": "Fuzz",
    "GIT_COMMITTER_EMAIL": "fuzz@example.org",
}


def fuzz_settings(name: str) -> settings:
    return settings(
        max_examples=max(1, int(BUDGET[name] * SCALE)),
        derandomize=not RANDOM,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


# -- running cairn in process -------------------------------------------------------------


@attrs.frozen
class Outcome:
    argv: tuple[str, ...]
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return (
            f"cairn {' '.join(map(repr, self.argv))} exited {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"
        )


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


#: Commands whose non-zero exit is not an error report: fsck lists problems, run passes its child's status on.
REPORTS_PROBLEMS = {"fsck", "run"}
#: Global options that take a value.
GLOBAL_OPTIONS = {"-C", "--project", "--config", "--set"}


def command_of(argv: tuple[str, ...]) -> str | None:
    """The command word of a command line: the first argument that is not a global option or its value."""
    words = iter(argv)
    for word in words:
        if word in GLOBAL_OPTIONS:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


class Cli:
    """``cairn`` in one project, through ``cairn.cli.main`` with click's stream isolation."""

    def __init__(self, project: Path, backend: str, home: Path) -> None:
        self.project = project
        self.backend = backend
        # Nothing from the developer's machine: no CAIRN_* variable, no user config file.
        self.env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("CAIRN")}
        self.env.update({"CAIRN_USER_CONFIG": "", "XDG_CONFIG_HOME": str(home), "XDG_CACHE_HOME": str(home), **GIT_ENV})

    def __call__(self, *args: str, stdin: bytes | None = None, env: dict[str, str | None] | None = None) -> Outcome:
        argv = ("-C", str(self.project), *args)
        runner = CliRunner()
        code: Any = None
        with (
            working_directory(self.project),
            runner.isolation(input=stdin or b"", env={**self.env, **(env or {})}) as (
                out,
                err,
                _,
            ),
        ):
            try:
                main(list(argv))
            except SystemExit as exc:
                code = exc.code
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
        outcome = Outcome(
            tuple(args),
            code if isinstance(code, int) else (0 if code is None else 1),
            out.getvalue().decode("utf-8", "replace"),
            err.getvalue().decode("utf-8", "replace"),
        )
        assert_no_crash(outcome)
        return outcome

    def ok(self, *args: str, **kwargs: Any) -> Outcome:
        outcome = self(*args, **kwargs)
        assert outcome.code == 0, str(outcome)
        return outcome

    def fsck_clean(self) -> str:
        """``cairn fsck`` passes; returns its summary line (counts of commits, blobs, refs, annotations)."""
        outcome = self("fsck")
        assert outcome.code == 0, f"fsck after the example:\n{outcome}"
        return outcome.out.strip()

    def branches(self) -> set[str]:
        return {b["name"] for b in json.loads(self.ok("branch", "--json").out)}


def assert_no_crash(outcome: Outcome) -> None:
    """The property every command meets for every input: no traceback, no internal error, errors in cairn's shape."""
    text = outcome.out + outcome.err
    assert "Traceback (most recent call last)" not in text, str(outcome)
    assert outcome.code != INTERNAL_ERROR and "internal error" not in outcome.err, str(outcome)
    if outcome.code != 0 and command_of(outcome.argv) not in REPORTS_PROBLEMS:
        assert "error: " in outcome.err, f"a failure without an error line:\n{outcome}"


def assert_refused(outcome: Outcome) -> None:
    assert outcome.code != 0, f"invalid input accepted:\n{outcome}"


@pytest.fixture(scope="module", params=BACKENDS)
def cli(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """A project on one backend with a little of everything: commits, a branch, a pin, a run, a thread."""
    backend = request.param
    root = tmp_path_factory.mktemp(f"fuzz-{backend}")
    project = root / "project"
    project.mkdir()
    tool = Cli(project, backend, root / "home")
    tool.ok("init")
    if backend == "git":
        subprocess.run(["git", "init", "-q", "-b", "work"], cwd=project, check=True, env={**os.environ, **GIT_ENV})
        toml = project / "cairn.toml"
        toml.write_text(toml.read_text(encoding="utf-8").replace('storage = "sqlite"', 'storage = "git"'))
    tool.ok("commit", "-t", "instruction", "be brief")
    tool.ok("commit", "hello")
    tool.ok("commit", "--role", "assistant", "hi there")
    tool.ok("branch", "create", "b1")
    tool.ok("pin", "HEAD~2")
    tool.ok("run", "--", sys.executable, "-c", "print('fuzz')")
    tool.ok("thread", "new", "fuzzing", "--id", "t1")
    tool.ok("chat", "send", "--thread", "t1", "first")
    (project / "ds.jsonl").write_text('{"id": "a", "output": "x", "expected": "x"}\n', encoding="utf-8")
    tool.ok("eval", "run", "ds.jsonl", "-e", "exact")
    tool.fsck_clean()
    return tool


def test_the_budget_is_at_least_2000_examples_across_both_backends() -> None:
    assert sum(BUDGET.values()) * len(BACKENDS) >= 2000


def run_property(name: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], None]) -> None:
    """Run ``check`` on every example Hypothesis draws from ``strategy``, and make sure they all ran."""
    ran = 0

    @fuzz_settings(name)
    @given(strategy)
    def prop(example: Any) -> None:
        nonlocal ran
        ran += 1
        check(example)

    prop()
    assert ran >= max(1, int(BUDGET[name] * SCALE)), f"only {ran} examples of {name} ran"


# -- what hostile arguments look like --------------------------------------------------------

#: One character of argv: anything but NUL; bytes that are not UTF-8 arrive as lone surrogates.
ARG_CHAR = st.one_of(
    st.characters(exclude_characters="\x00"),
    st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF),
)
ARG = st.text(ARG_CHAR, max_size=24)
NASTY = st.sampled_from(
    [
        "",
        " ",
        "-",
        "--",
        "-x",
        "--zzz",
        "..",
        "../../etc/passwd",
        "HEAD",
        "HEAD~1",
        "HEAD~99999999999999999999999",
        "main",
        "b1",
        "@last",
        "ffff",
        "0" * 64,
        "a" * 300,
        "\udcff\udcfe",
        "refs/heads/-x",
        "💥",
        "a..b",
        "x.lock",
        "/dev/null",
        "/proc/nope/x",
        "9" * 5000,
        "-1",
        "0",
        "nan",
        "1e400",
        "~nosuchuser/x",
        "t1",
    ]
)
ANY_ARG = st.one_of(ARG, NASTY)

#: Characters no revision, hash, branch name or run id can hold (whitespace is stripped, so it is not here).
NEVER_IN_A_NAME = list(":?*[\\^{}\"'<>|!$%&()=,;`é💥\udcff\x7f")


def holding(bad: list[str]) -> st.SearchStrategy[str]:
    return st.tuples(ARG, st.sampled_from(bad), ARG).map("".join)


HEX64 = st.text("0123456789abcdef", min_size=64, max_size=64)

#: Revisions that can name nothing: a character none has, an unknown full hash, more ancestors than exist.
BAD_REVISION = st.one_of(
    holding(NEVER_IN_A_NAME),
    HEX64,
    st.integers(min_value=10**6, max_value=10**30).map(lambda n: f"HEAD~{n}"),
    st.sampled_from(["", "HEAD~99999999999999999999999", "refs/heads/nope", "zzzz", "no-such-branch"]),
)

#: Commands that need an existing revision where the placeholder R is.
REVISION_COMMANDS = [
    ["show", "R"],
    ["log", "R"],
    ["diff", "R"],
    ["diff", "HEAD", "R"],
    ["edit", "R", "new text"],
    ["delete", "R"],
    ["pin", "R"],
    ["skip", "R"],
    ["unpin", "R"],
    ["switch", "--detach", "R"],
    ["branch", "create", "fresh-from-rev", "R"],
    ["materialize", "R"],
    ["commit", "--reply-to", "R", "an answer"],
]


def fill(template: list[str], value: str) -> list[str]:
    return [value if part == "R" else part for part in template]


@pytest.mark.parametrize("kind", ["revisions"])
def test_an_unknown_revision_is_refused_everywhere(cli: Cli, kind: str) -> None:
    def check(example: tuple[list[str], str]) -> None:
        template, revision = example
        assert_refused(cli(*fill(template, revision)))
        cli.fsck_clean()

    run_property(kind, st.tuples(st.sampled_from(REVISION_COMMANDS), BAD_REVISION), check)


BAD_RUN_ID = st.one_of(
    holding([c for c in NEVER_IN_A_NAME]),
    st.text("abcdef0123456789", min_size=1, max_size=20).map(lambda s: f"no-such-run-{s}"),
    st.sampled_from(["", "..", "@lastx", "-x", "a" * 200]),
)
RUN_COMMANDS = [
    ["runs", "show", "R"],
    ["runs", "events", "R"],
    ["runs", "delete", "-y", "R"],
    ["chat", "send", "note", "--run", "R"],
    ["chat", "list", "--run", "R"],
    ["eval", "show", "R"],
    ["eval", "compare", "@last", "R"],
    ["trace", "show", "R"],
]


def test_an_unknown_run_id_is_refused_everywhere(cli: Cli) -> None:
    def check(example: tuple[list[str], str]) -> None:
        template, run_id = example
        assert_refused(cli(*fill(template, run_id)))
        cli.fsck_clean()

    run_property("run_ids", st.tuples(st.sampled_from(RUN_COMMANDS), BAD_RUN_ID), check)


# -- branch names -----------------------------------------------------------------------------


def valid_branch_name(name: str) -> bool:
    try:
        validate_branch_name(name)
    except ValidationError:
        return False
    return True


BRANCH_NAME = st.one_of(
    ANY_ARG,
    st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9._/-]{0,24}\Z"),
    st.text("0123456789abcdef", min_size=4, max_size=64),
    holding(NEVER_IN_A_NAME),
)


def test_branch_names_follow_the_documented_rules_on_every_command(cli: Cli) -> None:
    def check(name: str) -> None:
        existing = cli.branches()
        created = cli("branch", "create", name)
        if not valid_branch_name(name):
            assert_refused(created)
            assert_refused(cli("switch", "-c", name))
            assert_refused(cli("branch", "rename", "b1", name))
        elif name not in existing:
            assert created.code == 0, f"a valid new branch name was refused:\n{created}"
            cli.ok("branch", "delete", name)
        if name not in existing:  # (no longer) a branch
            assert_refused(cli("branch", "delete", name))
            assert_refused(cli("switch", name))
            assert_refused(cli("export", "--branch", name))
        assert cli.branches() == existing
        cli.fsck_clean()

    run_property("branch_names", BRANCH_NAME, check)


# -- configuration: files and --set ---------------------------------------------------------


def toml_string(text: str) -> str:
    """A TOML basic string holding ``text`` exactly (any character, escaped as TOML requires)."""
    out = []
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")  # TOML cannot hold a lone surrogate; keep the position
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = repr(value)
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(text, text)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


SCALAR = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    ANY_ARG,
)
TOML_VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.from_regex(r"\A[a-z_]{1,8}\Z"), inner, max_size=3)
    ),
    max_leaves=6,
)

#: Values that are not text: a path key given one of these must be refused, and creates nothing.
NOT_TEXT = TOML_VALUE.filter(lambda v: not isinstance(v, str))
#: Data directories a test may create: under the project, or nowhere at all (never a random absolute path).
DATA_DIR = st.one_of(
    st.sampled_from(
        [
            ".cairn",
            "state",
            "deep/er/data",
            "",
            " ",
            "/proc/nope",
            "cairn.toml",
            "cairn.toml/x",
            "a\x00b",
            "~nosuchuser/x",
        ]
    ),
    st.sampled_from(["x" * 300, "9" * 5000, "\udcff", "💥", "-1", "b1"]),
    st.from_regex(r"\A[a-z][a-z0-9_]{0,8}\Z"),
    NOT_TEXT,
)
SQLITE_PATH = st.one_of(
    st.sampled_from(
        # "." and ".." are directories: the class of /dev/null, without touching /dev if a check ever regressed.
        ["cairn.db", "other.db", ":memory:", "", " ", "sub/x.db", "/proc/nope/x.db", "../cairn.toml", ".", ".."]
    ),
    st.from_regex(r"\A[a-z]{1,8}\.db\Z"),
    NOT_TEXT,
)

#: Known keys with values from the right domain or from anywhere; unknown keys and tables too.
CONFIG_ENTRY = st.one_of(
    st.tuples(st.just("cairn"), st.just("data_dir"), DATA_DIR),
    st.tuples(st.just("cairn"), st.just("storage"), st.one_of(st.sampled_from(["sqlite", "nosuch", ""]), TOML_VALUE)),
    st.tuples(
        st.just("cairn"), st.just("tokenizer"), st.one_of(st.sampled_from(["approx", "nosuch", "approx:x"]), TOML_VALUE)
    ),
    st.tuples(st.just("cairn"), st.just("disabled_plugins"), st.one_of(st.just(["evals"]), TOML_VALUE)),
    st.tuples(st.just("cairn"), st.just("strict_plugins"), TOML_VALUE),
    st.tuples(st.just("context"), st.just("default_branch"), st.one_of(BRANCH_NAME, TOML_VALUE)),
    st.tuples(st.just("context"), st.just("max_tokens"), st.one_of(st.integers(), TOML_VALUE)),
    st.tuples(
        st.just("context"), st.just("budget_action"), st.one_of(st.sampled_from(["reject", "warn", "x"]), TOML_VALUE)
    ),
    st.tuples(st.just("chat"), st.just("key_env"), st.one_of(ANY_ARG, TOML_VALUE)),
    st.tuples(st.just("providers"), st.sampled_from(["max_attempts", "backoff_max_s", "call_deadline_s"]), TOML_VALUE),
    st.tuples(st.just("storage.sqlite"), st.just("path"), SQLITE_PATH),
    st.tuples(st.just("storage.sqlite"), st.sampled_from(["busy_timeout_ms", "synchronous", "colour"]), TOML_VALUE),
    st.tuples(st.just("tokenizer.approx"), st.sampled_from(["scale", "per_message"]), TOML_VALUE),
    st.tuples(
        st.just("storage.git"),
        st.sampled_from(["namespace", "ledger_branch", "run_refs", "remote", "gc_auto"]),
        st.one_of(BRANCH_NAME, st.sampled_from(["cairn", "tags", "heads", "origin"]), TOML_VALUE),
    ),
    # Repositories a test may use: the project's own, or none at all.
    st.tuples(
        st.just("storage.git"),
        st.just("repo"),
        st.one_of(st.sampled_from([".", "sub", "nowhere", "cairn.toml", "", "/proc/nope"]), NOT_TEXT),
    ),
    st.tuples(
        st.sampled_from(["bogus", "llm.nosuch", "evaluators.exact"]), st.from_regex(r"\A[a-z_]{1,8}\Z"), TOML_VALUE
    ),
)


def render_config(backend: str, entries: list[tuple[str, str, Any]]) -> str:
    tables: dict[str, dict[str, Any]] = {"cairn": {"storage": backend}}
    for table, key, value in entries:
        tables.setdefault(table, {})[key] = value
    lines = []
    for table, keys in tables.items():
        lines.append(f"[{table}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in keys.items())
        lines.append("")
    return "\n".join(lines)


NASTY_FILES = st.sampled_from(
    [
        "[cairn]\nx = " + "[" * 3000 + "]" * 3000 + "\n",
        "[cairn]\nx = " + "{a = " * 3000 + "}" * 3000 + "\n",
        "[context]\nmax_tokens = " + "9" * 5000 + "\n",
        "[cairn]\n" + ".".join(["a"] * 500) + " = 1\n",
        "[cairn\nstorage = ",
        "\ufeff[cairn]\n",
        "cairn = 5\n",
        "[[cairn]]\n",
        "storage = {sqlite = 3}\n",
        "[tool]\ncairn = 1\n",
    ]
)


def config_validates_completely(cli: Cli, text: str | bytes) -> None:
    """Whatever the file holds: no crash; and when `config validate` passes, commands work."""
    path = cli.project / "fuzz.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    validated = cli("--config", str(path), "config", "validate")
    status = cli("--config", str(path), "status")
    cli("--config", str(path), "config", "show", "--json")
    if validated.code == 0:
        assert status.code == 0, f"config validate passed, status failed:\n{validated}\n{status}\n{text!r:.2000}"


def test_config_validate_is_complete_and_nothing_crashes(cli: Cli) -> None:
    files = st.one_of(
        st.lists(CONFIG_ENTRY, max_size=4).map(lambda entries: render_config(cli.backend, entries)),
        NASTY_FILES,
        st.binary(max_size=200),
        st.text(ARG_CHAR, max_size=200),
    )
    run_property("config_files", files, lambda text: config_validates_completely(cli, text))
    cli.fsck_clean()


SET_FLAG = st.one_of(
    st.tuples(
        st.sampled_from(
            ["cairn.storage", "context.max_tokens", "context.default_branch", "chat.key_env", "bogus.x", "a.b.c.d"]
        ),
        st.one_of(ANY_ARG, TOML_VALUE.map(toml_value)),
    ).map(lambda kv: f"{kv[0]}={kv[1]}"),
    DATA_DIR.map(lambda v: f"cairn.data_dir={v if isinstance(v, str) else toml_value(v)}"),
    SQLITE_PATH.map(lambda v: f"storage.sqlite.path={v if isinstance(v, str) else toml_value(v)}"),
    # No "=" in it, or no section: never a setting (and never a path anything could create).
    ANY_ARG.filter(lambda a: "=" not in a),
    st.tuples(st.sampled_from(["", "x", ".x", "x.", "a..b", " . "]), ANY_ARG).map(lambda kv: f"{kv[0]}={kv[1]}"),
)


def test_set_flags_are_validated_like_files(cli: Cli) -> None:
    def check(flag: str) -> None:
        key, sep, _ = flag.partition("=")
        validated = cli("--set", flag, "config", "validate")
        status = cli("--set", flag, "status")
        malformed = not sep or len(key.split(".")) < 2 or not all(p.strip() for p in key.split("."))
        if malformed:
            assert validated.code == 2 and status.code == 2, f"{validated}\n{status}"
        elif validated.code == 0:
            assert status.code == 0, f"config validate passed, status failed:\n{validated}\n{status}"
        if status.code != 0 and "--set" in status.err.splitlines()[0]:
            assert status.code == 2, f"a bad --set value is a usage error:\n{status}"
        if not malformed and "\x00" not in flag:
            # The same setting from the environment: checked alike, but not a usage error.
            variable = "CAIRN__" + "__".join(p.strip().upper() for p in key.split("."))
            value = flag.partition("=")[2].strip()
            validated = cli("config", "validate", env={variable: value})
            status = cli("status", env={variable: value})
            if validated.code == 0:
                assert status.code == 0, f"config validate passed, status failed:\n{validated}\n{status}"
            assert status.code in (0, 1), str(status)

    run_property("set_flags", SET_FLAG, check)
    cli.fsck_clean()


# -- whole command lines ---------------------------------------------------------------------------

#: Every command that only touches the project (no network, no arbitrary programs, no other directories).
COMMANDS = [
    ["commit"],
    ["commit", "-t"],
    ["commit", "--payload"],
    ["commit", "--field"],
    ["commit", "--meta"],
    ["commit", "x", "--reply-to"],
    ["edit"],
    ["edit", "HEAD"],
    ["delete"],
    ["log"],
    ["log", "-n"],
    ["log", "--since"],
    ["log", "--until"],
    ["log", "-t"],
    ["log", "--grep"],
    ["show"],
    ["diff"],
    ["branch"],
    ["branch", "create"],
    ["branch", "delete"],
    ["branch", "rename", "b1"],
    ["switch"],
    ["switch", "-c"],
    ["switch", "--detach"],
    ["pin"],
    ["skip", "-r"],
    ["unpin"],
    ["materialize"],
    ["materialize", "--budget"],
    ["materialize", "--as-of"],
    ["materialize", "--format"],
    ["status"],
    ["gc", "--dry-run"],
    ["fsck"],
    ["export", "--branch"],
    ["runs", "list", "--since"],
    ["runs", "list", "--type"],
    ["runs", "list", "-n"],
    ["runs", "show"],
    ["runs", "events"],
    ["runs", "prune", "--dry-run", "--older-than"],
    ["chat", "send"],
    ["chat", "send", "x", "--thread"],
    ["chat", "list", "--thread"],
    ["chat", "list", "-n"],
    ["thread", "new"],
    ["thread", "new", "t", "--id"],
    ["thread", "new", "t", "--tag"],
    ["thread", "list"],
    ["trace", "status"],
    ["trace", "list", "-n"],
    ["trace", "show"],
    ["spend", "--since"],
    ["providers"],
    ["evaluators"],
    ["eval", "show"],
    ["eval", "run", "ds.jsonl", "-e"],
    ["eval", "run"],
    ["eval", "compare", "@last"],
    ["eval", "compare", "@last", "@last", "--seed"],
    ["eval", "compare", "@last", "@last", "--resamples"],
    ["ask"],
    ["logs", "-n"],
    ["logs", "--since"],
    ["logs", "-q"],
    ["logs", "show"],
    ["embed"],
    ["plugins"],
    ["config", "show"],
    ["config", "validate"],
    ["--strict", "status"],
    ["nosuchcommand"],
]


def test_any_command_line_is_a_clear_answer(cli: Cli) -> None:
    def check(example: tuple[list[str], list[str], bool]) -> None:
        command, extra, as_json = example
        cli(*command, *extra, *(["--json"] if as_json else []))
        cli.fsck_clean()

    run_property(
        "command_lines",
        st.tuples(st.sampled_from(COMMANDS), st.lists(ANY_ARG, max_size=3), st.booleans()),
        check,
    )


#: JSON as a command line carries it: any value, nested deep or shallow, or text that only looks like JSON.
JSON_ARG = st.one_of(
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
        max_leaves=10,
    ).map(json.dumps),
    st.integers(min_value=1, max_value=50_000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=1, max_value=50_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.sampled_from(["NaN", "Infinity", "1e400", "9" * 5000, '{"content_type": "nosuch"}', "{", '"\ud800"']),
)
JSON_COMMANDS = [
    ["commit", "--payload"],
    ["commit", "-t", "freeform", "--payload"],
    ["commit", "x", "--meta", "k="],
    ["commit", "x", "--field", "text="],
    ["commit", "-t", "tool_io", "--field", "arguments="],
    ["edit", "HEAD", "--payload"],
    ["edit", "HEAD", "x", "--meta", "k="],
    ["eval", "run", "ds.jsonl", "-e", "exact:threshold="],
    ["eval", "run", "ds.jsonl", "-e", "regex:pattern="],
]


def test_any_json_on_the_command_line_is_stored_or_refused(cli: Cli) -> None:
    def check(example: tuple[list[str], str]) -> None:
        command, value = example
        *head, last = command
        argv = [*head, last + value] if last.endswith("=") else [*command, value]
        cli(*argv)
        cli.fsck_clean()

    run_property("json_args", st.tuples(st.sampled_from(JSON_COMMANDS), JSON_ARG), check)


def test_run_records_any_arguments_it_passes_on(cli: Cli) -> None:
    """`cairn run` hands arguments to a real program: any of them, not only UTF-8 ones, without a traceback."""

    def check(args: list[str]) -> None:
        outcome = cli("run", "--", sys.executable, "-c", "import sys; print(len(sys.argv))", *args)
        assert outcome.code in (0, 1), str(outcome)
        cli.fsck_clean()

    run_property("run_args", st.lists(ANY_ARG, max_size=3), check)


def test_standard_input_that_is_not_text_is_refused(cli: Cli) -> None:
    def check(example: tuple[list[str], bytes]) -> None:
        command, data = example
        outcome = cli(*command, stdin=data)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            assert_refused(outcome)
        cli.fsck_clean()

    run_property(
        "stdin",
        st.tuples(
            st.sampled_from([["commit", "-"], ["chat", "send", "-"], ["commit", "--payload", "-"]]),
            st.binary(max_size=64),
        ),
        check,
    )


#: Where -C and --config may point: inside the project, or nowhere (never a random directory to write in).
PROJECT_OPTION = st.one_of(
    st.sampled_from(
        ["", ".", "sub", "nope", "cairn.toml", "fuzz.toml", "/proc/nope", "x" * 300, "\udcff", "a\nb", "-", "--"]
    ),
    st.from_regex(r"\A[a-z]{1,8}\Z"),
)


def test_project_options_point_somewhere_or_say_why_not(cli: Cli) -> None:
    (cli.project / "sub").mkdir(exist_ok=True)

    def check(example: tuple[str, str, list[str]]) -> None:
        option, value, command = example
        outcome = cli(option, value, *command)
        wanted = Path.is_dir if option == "-C" else Path.is_file
        if not value or value.startswith("-") or not _exists(cli.project / value, wanted):
            assert_refused(outcome)
        cli.fsck_clean()

    run_property(
        "project_options",
        st.tuples(
            st.sampled_from(["-C", "--config"]),
            PROJECT_OPTION,
            st.sampled_from([["status"], ["config", "show"], ["log"]]),
        ),
        check,
    )


# -- import records -------------------------------------------------------------------------------

JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
FIELD = st.one_of(
    JSON, HEX64, BAD_REVISION, st.sampled_from(["ultra", "pinned", "skip", "refs/heads/x", "ref: ../../etc"])
)


def record(kind: st.SearchStrategy[Any], keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"type": kind}, optional={key: FIELD for key in keys})


HEADER = '{"commits":0,"format":"cairn-export/1","tokenizer":"approx","type":"header"}'

#: Lines that are never a valid record after a header, each a class the issue names.
BAD_LINE = st.one_of(
    JSON.filter(lambda v: not isinstance(v, dict)).map(json.dumps),  # [1,2], "x", 3 ...
    record(st.just("blob"), ["hash", "data"]).map(json.dumps),  # no data, or data not matching its hash
    record(st.just("commit"), ["hash", "fields", "derived"]).map(json.dumps),
    record(st.just("ref"), ["name", "value"]).map(json.dumps),  # no name, a bad name, a commit not in the file
    # An unknown key makes it invalid whatever the rest holds.
    st.tuples(record(st.just("annotation"), ["target", "priority", "reason", "created_at"]), FIELD)
    .map(lambda r: {**r[0], "colour": r[1]})
    .map(json.dumps),
    record(st.one_of(st.text(max_size=8), JSON), ["x"]).filter(lambda r: r["type"] not in ("header",)).map(json.dumps),
    st.integers(min_value=1000, max_value=200_000).map(lambda n: "[" * n + "]" * n),
    st.just('{"type":"blob","hash":"' + "0" * 64 + '","data":{"text":"x","token_count":' + "9" * 31 + "}}"),
)


def import_lines(cli: Cli, lines: list[bytes]) -> Outcome:
    path = cli.project / "fuzz-import.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return cli("import", str(path))


def test_an_import_with_any_invalid_record_stores_nothing(cli: Cli) -> None:
    before = cli.fsck_clean()

    def check(example: tuple[list[str], str, list[str], bytes | None]) -> None:
        head, bad, tail, raw = example
        lines = [HEADER.encode(), *(line.encode("utf-8", "surrogatepass") for line in (*head, bad, *tail))]
        if raw is not None:
            lines.insert(1, raw)
        assert_refused(import_lines(cli, lines))
        assert cli.fsck_clean() == before, "a refused import changed the store"

    run_property(
        "import_records",
        st.tuples(
            st.lists(st.just(""), max_size=2),
            BAD_LINE,
            st.lists(BAD_LINE, max_size=2),
            st.one_of(st.none(), st.binary(min_size=1, max_size=16).filter(lambda b: not _is_utf8(b))),
        ),
        check,
    )
    # Not a file with a header: nothing, blank lines, or records alone.
    for lines in ([], [b""], [b"   "], [b'{"type":"ref","name":"refs/heads/x","value":"' + b"0" * 64 + b'"}']):
        assert_refused(import_lines(cli, lines))
    assert cli.fsck_clean() == before


def _exists(path: Path, kind: Callable[[Path], bool]) -> bool:
    try:
        return kind(path)
    except (OSError, ValueError):
        return False


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_an_edited_export_is_refused_or_stored_correctly(cli: Cli) -> None:
    """Change one field of one record of a real export: a hashed field or a blob must be refused;
    a derived field is refused or recomputed, and fsck stays clean either way."""
    exported = cli.ok("export").out.splitlines()
    records = [json.loads(line) for line in exported]
    editable = [i for i, r in enumerate(records) if r["type"] in ("blob", "commit")]

    def check(example: tuple[int, str, Any]) -> None:
        index, where, value = example
        original = records[editable[index % len(editable)]]
        edited = json.loads(json.dumps(original))
        if original["type"] == "blob":
            target, key = edited, "data"
        else:
            target = edited["fields"] if where == "fields" else edited["derived"]
            key = sorted(target)[len(str(value)) % len(target)]
        if target.get(key) == value:
            return  # not an edit
        target[key] = value
        lines = [json.dumps(r if r is not original else edited, sort_keys=True).encode() for r in records]
        outcome = import_lines(cli, lines)
        if original["type"] == "blob" or where == "fields":
            assert_refused(outcome)
        cli.fsck_clean()

    run_property(
        "import_edits",
        st.tuples(st.integers(min_value=0, max_value=10**6), st.sampled_from(["fields", "derived"]), FIELD),
        check,
    )


# -- through a real process ------------------------------------------------------------------------


def cairn_process(project: Path, *args: str | bytes, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN")}
    env.update({"CAIRN_USER_CONFIG": "", **GIT_ENV})
    return subprocess.run(
        [sys.executable, "-m", "cairn", *args], cwd=project, env=env, input=stdin, capture_output=True, timeout=120
    )


def test_smoke_bytes_that_are_not_utf8_in_argv_and_stdin(cli: Cli) -> None:
    for args, stdin in (
        ([b"branch", b"delete", b"\xff\xfe"], b""),
        ([b"branch", b"create", b"\xff\xfe"], b""),
        ([b"show", b"\xff"], b""),
        ([b"commit", b"-"], b"\xff\xfe not text"),
        ([b"import", b"-"], HEADER.encode() + b"\n\xff\xfe\n"),
    ):
        proc = cairn_process(cli.project, *args, stdin=stdin)
        assert proc.returncode == 1, proc
        assert b"Traceback" not in proc.stderr and proc.stderr.startswith(b"error: "), proc.stderr
    assert cairn_process(cli.project, "fsck").returncode == 0


def test_smoke_hostile_config_through_a_real_process(cli: Cli, tmp_path: Path) -> None:
    for text, code in (
        ('[cairn]\ndata_dir = "a\\u0000b"\n', 1),
        ("[cairn]\nx = " + "[" * 3000 + "]" * 3000 + "\n", 1),
    ):
        (tmp_path / "cairn.toml").write_text(text, encoding="utf-8")
        proc = cairn_process(tmp_path, "status")
        assert proc.returncode == code and b"Traceback" not in proc.stderr
        assert proc.stderr.startswith(f"error: {tmp_path / 'cairn.toml'}:2".encode()), proc.stderr
    proc = cairn_process(cli.project, "--set", "context.max_tokens=" + "9" * 5000, "status")
    assert proc.returncode == 2 and proc.stderr.startswith(b"error: --set context.max_tokens"), proc.stderr
