"""cairn-hello through the real kernel: the installed entry point, the ``cairn`` CLI, a store.

Stores are in memory (or SQLite in a temp directory), and the CLI runs
in-process (``CliRunner``) or as a local subprocess. The one slow test
uninstalls the plugin and reinstalls it from this source tree; pip needs
network access for that only when the environment lacks the build tool
its pyproject requires (setuptools >= 77) and must fetch it.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cairn_hello import Greeting, make_greeting
from click.testing import CliRunner

from cairn.cli import State, cli, main
from cairn.errors import ValidationError
from cairn.model import ContentHints, Message, Priority, UnknownContent
from cairn.plugins import load_plugins
from cairn.repo import Repo
from cairn.testing.fakes import WordTokenizer
from cairn.testing.memory import MemoryStore

#: The distribution's own directory (holds pyproject.toml), reinstalled by the uninstall test.
PROJECT_DIR = Path(__file__).resolve().parent.parent

Run = Callable[..., subprocess.CompletedProcess]


def _greeting_plugin_info(plugins_json: str) -> dict | None:
    return next((p for p in json.loads(plugins_json) if p["name"] == "hello"), None)


def _help_commands(help_text: str) -> list[str]:
    """Command names from ``cairn --help`` (the first word of each line under ``Commands:``)."""
    _, _, listing = help_text.partition("Commands:")
    return [line.split()[0] for line in listing.splitlines() if line.startswith("  ") and line.split()]


# -- the content type ------------------------------------------------------------


def test_greeting_declares_tag_hints_and_renders() -> None:
    greeting = Greeting(greeter="Ada", text="Hello, Bob!", language="en")
    assert Greeting.content_type == "hello.greeting"
    assert Greeting.hints == ContentHints("user", Priority.NORMAL, order=50, compression_priority=90)
    assert greeting.render() == (Message("user", "Ada (en): Hello, Bob!"),)
    assert greeting.to_dict() == {
        "content_type": "hello.greeting",
        "greeter": "Ada",
        "text": "Hello, Bob!",
        "language": "en",
    }


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"greeter": "", "text": "Hi"}, "greeter must not be empty"),
        ({"greeter": "x" * 65, "text": "Hi"}, "greeter must be at most 64 characters"),
        ({"greeter": "Ada", "text": "   "}, "text must not be empty"),
        ({"greeter": "Ada", "text": "Hi", "language": "English"}, "language must be a language tag"),
        ({"greeter": 7, "text": "Hi"}, "greeter must be a string"),
    ],
)
def test_greeting_validates_its_fields(fields: dict, problem: str) -> None:
    with pytest.raises((TypeError, ValueError), match=problem):
        Greeting(**fields)


def test_make_greeting_uses_the_language_template() -> None:
    assert make_greeting(" Ada ", language="de").text == "Hallo, Ada!"
    assert make_greeting("Ada", language="fr", greeter="Bob") == Greeting("Bob", "Bonjour, Ada !", "fr")
    with pytest.raises(ValidationError, match=r"hello\.greeting\.language: no greeting in 'xx'") as info:
        make_greeting("Ada", language="xx")
    assert info.value.hint is not None and "en" in info.value.hint
    with pytest.raises(ValidationError, match=r"hello\.greeting\.name: must not be empty"):
        make_greeting("  ")


def test_registered_type_validates_stored_dicts(cairn_env: Path) -> None:
    types = load_plugins().content_types
    assert types.owner("hello.greeting") == "hello"
    item = types.create({"content_type": "hello.greeting", "greeter": "Ada", "text": "Hi", "language": "pt-BR"})
    assert item == Greeting("Ada", "Hi", "pt-BR")
    with pytest.raises(ValidationError, match="unknown field"):
        types.create({"content_type": "hello.greeting", "greeter": "Ada", "text": "Hi", "mood": "sunny"})
    with pytest.raises(ValidationError, match="language must be a language tag"):
        types.create({"content_type": "hello.greeting", "greeter": "Ada", "text": "Hi", "language": "EN"})


def test_greeting_round_trips_through_a_store(cairn_env: Path) -> None:
    store = MemoryStore()
    plugins = load_plugins()
    repo = Repo(store, WordTokenizer(), plugins.content_types)
    greeting = make_greeting("Ada", language="es", greeter="Bob")
    commit = repo.append(greeting, message="greet Ada")

    assert commit.content_type == "hello.greeting"
    assert commit.content_hash == greeting.hash
    assert store.get_blobs([greeting.hash])[greeting.hash] == greeting.canonical()
    # One token per word of "Bob (es): ¡Hola, Ada!", 1 for the role, 3 for the message.
    assert commit.token_count == 4 + 1 + 3

    # A fresh kernel (plugins loaded again) over the same store reads it back as the same value.
    again = Repo(store, WordTokenizer(), load_plugins().content_types)
    read = again.content_of(again.resolve("main"))
    assert type(read) is Greeting
    assert read == greeting and read.hash == commit.content_hash
    [message] = again.materialize().messages
    assert message["content"] == "Bob (es): ¡Hola, Ada!"


def test_blocked_plugin_preserves_items_as_unknown_content(cairn_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    repo = Repo(store, WordTokenizer(), load_plugins().content_types)
    greeting = make_greeting("Ada")
    commit = repo.append(greeting)

    monkeypatch.setenv("CAIRN_DISABLE_PLUGINS", "hello")
    plugins = load_plugins()
    assert plugins.info["hello"].status == "blocked"
    assert "hello.greeting" not in plugins.content_types

    blind = Repo(store, WordTokenizer(), plugins.content_types)
    read = blind.content_of(blind.commit(commit.hash))
    assert isinstance(read, UnknownContent)
    assert read.content_type == "hello.greeting"
    assert read.hash == commit.content_hash == greeting.hash
    assert read.to_dict() == greeting.to_dict()
    # Still in the materialized context (as its JSON), not silently dropped.
    [message] = blind.materialize().messages
    assert json.loads(message["content"]) == greeting.to_dict()
    # And it cannot be committed anew while nothing knows the type.
    with pytest.raises(ValidationError, match="unknown content type 'hello.greeting'"):
        blind.append(greeting.to_dict())


# -- the command, through the real CLI ----------------------------------------------


def test_installed_plugin_is_listed(cairn_run: Run) -> None:
    result = cairn_run("plugins", "--json")
    assert result.returncode == 0, result.stderr
    info = _greeting_plugin_info(result.stdout)
    assert info is not None, result.stdout
    assert info["status"] == "ok" and info["reason"] is None
    assert info["module"] == "cairn_hello.plugin"
    assert (info["distribution"], info["version"]) == ("cairn-hello", importlib.metadata.version("cairn-hello"))
    assert info["hooks"] == ["cairn_register_commands", "cairn_register_content_types"]
    assert info["registers"] == {"commands": ["hello"], "content_types": ["hello.greeting"]}


def test_greet_through_the_installed_script(cairn_run: Run) -> None:
    result = cairn_run("hello", "greet", "Ada", "--language", "de")
    assert (result.returncode, result.stdout, result.stderr) == (0, "Hallo, Ada!\n", "")

    listing = cairn_run("--help")
    assert listing.returncode == 0 and "hello" in _help_commands(listing.stdout)


def test_plugin_module_stays_light() -> None:
    # cairn imports the hook module on every `cairn --help`; the click commands load only when added.
    probe = "import sys, cairn_hello.plugin; print('cairn_hello.commands' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_greet_refuses_bad_input(cairn_env: Path, isolated_cli: None, capsys: pytest.CaptureFixture[str]) -> None:
    runner = CliRunner()
    unknown = runner.invoke(cli, ["hello", "greet", "Ada", "--language", "xx"])
    assert unknown.exit_code == 2
    assert "'xx' is not one of" in unknown.output

    # Through main(), as the `cairn` script runs it: a library error is one line and exit status 1.
    with pytest.raises(SystemExit) as exit_info:
        main(["hello", "greet", "  "])
    assert exit_info.value.code == 1
    assert "error: hello.greeting.name: must not be empty" in capsys.readouterr().err


def test_greet_commit_appends_an_item(isolated_cli: None, memory_state: Callable[[], State]) -> None:
    runner = CliRunner()
    argv = ["hello", "greet", "Ada", "-l", "fr", "--greeter", "Bob", "--commit"]
    result = runner.invoke(cli, argv, obj=memory_state())
    assert result.exit_code == 0, result.output
    first, second = result.stdout.splitlines()
    assert first == "Bonjour, Ada !"
    # Five words in "Bob (fr): Bonjour, Ada !", 1 for the role, 3 tokens of message overhead.
    assert second.startswith("[main ") and second.endswith("] append hello.greeting (9 tokens)")

    log = runner.invoke(cli, ["log", "--json"], obj=memory_state())
    assert log.exit_code == 0, log.output
    [entry] = json.loads(log.stdout)
    assert entry["message"] == "greet Ada"
    assert entry["content"] == {
        "content_type": "hello.greeting",
        "greeter": "Bob",
        "language": "fr",
        "text": "Bonjour, Ada !",
    }
    assert entry["content_hash"] == Greeting("Bob", "Bonjour, Ada !", "fr").hash

    materialized = runner.invoke(cli, ["materialize"], obj=memory_state())
    assert json.loads(materialized.stdout) == [{"role": "user", "content": "Bob (fr): Bonjour, Ada !"}]


def test_greet_without_commit_never_opens_the_repository(cairn_env: Path, isolated_cli: None) -> None:
    class NoRepo(State):
        @property
        def repo(self) -> Repo:
            raise AssertionError("greet without --commit opened the repository")

    result = CliRunner().invoke(cli, ["hello", "greet", "Ada"], obj=NoRepo())
    assert (result.exit_code, result.output) == (0, "Hello, Ada!\n")


def test_blocked_plugin_via_cli_keeps_history_readable(isolated_cli: None, memory_state: Callable[[], State]) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["hello", "greet", "Ada", "--commit"], obj=memory_state()).exit_code == 0

    blocked = {"CAIRN_DISABLE_PLUGINS": "hello"}
    plugins = runner.invoke(cli, ["plugins", "--json"], obj=memory_state(), env=blocked)
    info = _greeting_plugin_info(plugins.stdout)
    assert info is not None and (info["status"], info["reason"]) == ("blocked", "blocked by configuration")

    log = runner.invoke(cli, ["log", "--json"], obj=memory_state(), env=blocked)
    assert log.exit_code == 0, log.output
    [entry] = json.loads(log.stdout)
    assert entry["content"] == make_greeting("Ada").to_dict()
    assert entry["content_hash"] == make_greeting("Ada").hash


def test_end_to_end_on_the_default_backends(cairn_run: Run) -> None:
    plugins = load_plugins()
    missing = [
        name for name, registry in (("sqlite", plugins.storage), ("approx", plugins.tokenizers)) if name not in registry
    ]
    if missing:
        pytest.skip(f"the default backends are not installed: {', '.join(missing)}")

    assert cairn_run("init").returncode == 0
    greeted = cairn_run("hello", "greet", "Ada", "-l", "it", "--commit")
    assert greeted.returncode == 0, greeted.stderr
    assert greeted.stdout.splitlines()[0] == "Ciao, Ada!"

    expected = make_greeting("Ada", language="it")
    for env in ({}, {"CAIRN_DISABLE_PLUGINS": "hello"}):
        log = cairn_run("log", "--json", env=env)
        assert log.returncode == 0, log.stderr
        [entry] = json.loads(log.stdout)
        assert entry["content"] == expected.to_dict() and entry["content_hash"] == expected.hash, env
    checked = cairn_run("fsck", env={"CAIRN_DISABLE_PLUGINS": "hello"})
    assert checked.returncode == 0, checked.stderr


# -- uninstalling -----------------------------------------------------------------


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=600)


def _reinstall_args() -> list[str]:
    """``pip install -e`` of this tree, without fetching build tools when the environment already has them."""
    args = ["install", "--no-deps", "-e", str(PROJECT_DIR)]
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return args
    major_minor = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    # pyproject.toml's build-system: setuptools >= 77 (the SPDX license string); it builds wheels alone.
    if major_minor >= (77, 0):
        # The build tools are here: build offline, never reaching an index.
        args[1:1] = ["--no-build-isolation", "--no-index"]
    return args


@pytest.mark.slow
def test_uninstalling_leaves_the_cli_working(cairn_run: Run) -> None:
    try:
        removed = _pip("uninstall", "-y", "cairn-hello")
        assert removed.returncode == 0, removed.stderr

        listing = cairn_run("--help")
        assert listing.returncode == 0, listing.stderr
        commands = _help_commands(listing.stdout)
        assert "plugins" in commands and "hello" not in commands

        plugins = cairn_run("plugins", "--json")
        assert plugins.returncode == 0, plugins.stderr
        names = [p["name"] for p in json.loads(plugins.stdout)]
        assert "cairn" in names and "hello" not in names

        gone = cairn_run("hello", "greet", "Ada")
        assert gone.returncode == 2 and "No such command 'hello'" in gone.stderr
    finally:
        reinstalled = _pip(*_reinstall_args())
    assert reinstalled.returncode == 0, f"reinstalling cairn-hello failed:\n{reinstalled.stderr}"
    back = cairn_run("plugins", "--json")
    info = _greeting_plugin_info(back.stdout)
    assert info is not None and info["status"] == "ok", back.stdout + back.stderr
