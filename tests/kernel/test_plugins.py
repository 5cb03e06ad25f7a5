"""Plugin loading: discovery through real entry points, failure isolation, strict mode,
blocking, tracing, ``cairn plugins --json``, the registries and factory configuration.

Two kinds of fake plugin are built here. In-memory plugin objects go straight
to ``Plugins.register``. Real ones are tiny distributions written into
``tmp_path`` (a module plus a ``.dist-info`` with ``entry_points.txt``) and put
on ``sys.path`` by ``cairn.testing.sites.FakeSite`` (the ``plugin_site``
fixture), so discovery runs exactly as for an installed package.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import click
import pytest
from click.testing import CliRunner

import cairn
from cairn.cli import cli, main
from cairn.config import load_config
from cairn.errors import ConfigError, DuplicateNameError, NotFoundError, PluginError
from cairn.hookspecs import hookimpl
from cairn.model import Content, ContentHints, Message
from cairn.plugins import REGISTRIES, FactoryContext, Plugins, load_plugins
from cairn.repo import Repo
from cairn.testing.fakes import WordTokenizer
from cairn.testing.memory import MemoryStore
from cairn.testing.sites import FakeSite

BUILTIN_TYPES = [
    "instruction",
    "dialogue",
    "tool_io",
    "reasoning",
    "artifact",
    "output",
    "freeform",
    "image",
    "memory.fact",
    "memory.episode",
    "compaction",
    "compaction.summary",
    "session.record",
    "session.checkpoint",
]


# -- fake distributions on sys.path ----------------------------------------------


@pytest.fixture
def site(plugin_site: FakeSite) -> FakeSite:
    return plugin_site


@pytest.fixture
def isolated_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plugins add commands to the process-wide ``cli`` group; give each test its own copy of the table."""
    monkeypatch.setattr(cli, "commands", dict(cli.commands))


GOOD = """
    from cairn.hookspecs import hookimpl

    @hookimpl
    def cairn_register_storage(register):
        register("good_store", lambda config, context: None, description="a store that is always fine")
"""

#: Each way of being broken: ({entry-point name: module source}, the plugin that breaks, what its reason says).
BROKEN_KINDS: dict[str, tuple[dict[str, str], str, str]] = {
    "import": (
        {"import-fails": "import cairn_no_such_sdk\n"},
        "import-fails",
        "import failed: ModuleNotFoundError: No module named 'cairn_no_such_sdk'",
    ),
    "signature": (
        {
            "bad-signature": """
            from cairn.hookspecs import hookimpl

            @hookimpl
            def cairn_register_storage(register, flavour):
                register("never", lambda config, context: None)
        """
        },
        "bad-signature",
        "bad hook implementation",
    ),
    "misspelled": (
        {
            "misspelled": """
            from cairn.hookspecs import hookimpl

            @hookimpl
            def cairn_registr_storage(register):
                register("never", lambda config, context: None)
        """
        },
        "misspelled",
        "cairn_registr_storage is not a cairn hook; did you mean cairn_register_storage?",
    ),
    "raises": (
        {
            "raises": """
            from cairn.hookspecs import hookimpl

            @hookimpl
            def cairn_register_storage(register):
                register("half_done", lambda config, context: None)
                raise RuntimeError("backend table exploded")
        """
        },
        "raises",
        "cairn_register_storage raised RuntimeError: backend table exploded",
    ),
    "duplicate": (
        {
            "dup-a": """
                from cairn.hookspecs import hookimpl

                @hookimpl
                def cairn_register_storage(register):
                    register("shared", lambda config, context: "a")
            """,
            "dup-b": """
                from cairn.hookspecs import hookimpl

                @hookimpl
                def cairn_register_storage(register):
                    register("shared", lambda config, context: "b")
            """,
        },
        "dup-b",
        "storage backend 'shared' is registered by both 'dup-a' and 'dup-b'",
    ),
}


def install_broken(site: FakeSite, kind: str) -> tuple[str, str]:
    plugins, broken, reason = BROKEN_KINDS[kind]
    site.install("cairn-fake-good", {"good": GOOD})
    site.install(f"cairn-fake-{kind}", plugins)
    return broken, reason


# -- failure isolation, through real entry points ----------------------------------


@pytest.mark.parametrize("kind", sorted(BROKEN_KINDS))
def test_a_broken_plugin_is_reported_and_skipped(site: FakeSite, kind: str) -> None:
    broken, reason = install_broken(site, kind)
    plugins = load_plugins(environ=site.only())

    info = plugins.info[broken]
    assert info.status == "broken"
    assert reason in info.reason
    assert info.registers == {}
    assert plugins.pm.get_plugin(broken) is None
    # Nothing it registered survives, and everyone else loaded normally.
    assert plugins.storage.names() == (["good_store", "shared"] if kind == "duplicate" else ["good_store"])
    assert plugins.info["good"].status == "ok"
    assert plugins.info["cairn"].status == "ok"
    assert plugins.content_types.names() == sorted(BUILTIN_TYPES)


def test_the_first_of_two_duplicates_keeps_its_registration(site: FakeSite) -> None:
    install_broken(site, "duplicate")
    plugins = load_plugins(environ=site.only())
    registration = plugins.storage.get("shared")
    assert registration.plugin == "dup-a"
    assert registration.factory(None, None) == "a"


@pytest.mark.parametrize("kind", sorted(BROKEN_KINDS))
@pytest.mark.parametrize("how", ["argument", "environment"])
def test_strict_mode_makes_each_failure_fatal(site: FakeSite, kind: str, how: str) -> None:
    broken, reason = install_broken(site, kind)
    environ = site.only()
    if how == "environment":
        environ["CAIRN_STRICT_PLUGINS"] = "1"
        strict = None
    else:
        strict = True
    with pytest.raises(PluginError) as info:
        load_plugins(strict=strict, environ=environ)
    assert info.value.plugin == broken
    assert reason in info.value.message
    if kind == "duplicate":
        # The DuplicateNameError itself, with its own hint.
        duplicate = info.value
        assert isinstance(duplicate, DuplicateNameError)
        assert (duplicate.first, duplicate.second, duplicate.name) == ("dup-a", "dup-b", "shared")
        assert "CAIRN_DISABLE_PLUGINS=dup-b" in duplicate.hint
    else:
        assert info.value.hint and "without --strict" in info.value.hint


def test_a_plugin_error_keeps_its_type_and_is_not_prefixed_twice(site: FakeSite) -> None:
    install_broken(site, "duplicate")
    plugins = load_plugins(environ=site.only())
    assert plugins.info["dup-b"].reason == "storage backend 'shared' is registered by both 'dup-a' and 'dup-b'"
    with pytest.raises(DuplicateNameError) as info:
        load_plugins(strict=True, environ=site.only())
    assert info.value.message.count("plugin 'dup-b'") == 1


def test_strict_environment_accepts_only_true_values(site: FakeSite) -> None:
    install_broken(site, "raises")
    env = {**site.only(), "CAIRN_STRICT_PLUGINS": "0"}
    assert load_plugins(environ=env).info["raises"].status == "broken"


@pytest.mark.parametrize("kind", sorted(BROKEN_KINDS))
def test_cli_keeps_working_beside_a_broken_plugin(site: FakeSite, isolated_cli: None, kind: str) -> None:
    broken, reason = install_broken(site, kind)
    runner = CliRunner()
    env = site.only()
    listing = runner.invoke(cli, ["--help"], env=env)
    assert listing.exit_code == 0, listing.output
    assert "plugins" in listing.output

    table = runner.invoke(cli, ["plugins"], env=env)
    assert table.exit_code == 0, table.output
    row = next(line for line in table.output.splitlines() if line.startswith(broken + "\t"))
    assert "\tbroken: " in row and reason in row


@pytest.mark.parametrize("how", ["--strict", "config"])
def test_strict_cli_fails_with_one_line(
    site: FakeSite,
    isolated_cli: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    cairn_env: Path,
    how: str,
) -> None:
    install_broken(site, "import")
    for key, value in site.only().items():
        monkeypatch.setenv(key, value)
    if how == "config":
        (cairn_env / "cairn.toml").write_text("[cairn]\nstrict_plugins = true\n", encoding="utf-8")
        argv = ["plugins"]
    else:
        argv = ["--strict", "plugins"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "error: plugin 'import-fails': import failed: ModuleNotFoundError" in err
    assert "hint: fix or uninstall the plugin" in err
    assert "Traceback" not in err


# -- blocking before import ------------------------------------------------------

TRIPWIRE = """
    raise RuntimeError("this module must never be imported")
"""


def test_disable_env_blocks_before_import(site: FakeSite) -> None:
    site.install("cairn-fake-tripwire", {"tripwire": TRIPWIRE, "good": GOOD})
    plugins = load_plugins(environ={**site.only(), "CAIRN_DISABLE_PLUGINS": " tripwire , unrelated"})
    info = plugins.info["tripwire"]
    assert (info.status, info.reason) == ("blocked", "blocked by configuration")
    assert not site.imported("tripwire")
    assert plugins.info["good"].status == "ok" and site.imported("good")


@pytest.mark.parametrize("source", ["file", "flag", "environment"])
def test_config_disabled_plugins_blocks_before_import(
    site: FakeSite, isolated_cli: None, source: str, cairn_env: Path
) -> None:
    site.install("cairn-fake-tripwire", {"tripwire": TRIPWIRE, "good": GOOD})
    args = ["plugins", "--json"]
    env = site.only()
    if source == "file":
        (cairn_env / "cairn.toml").write_text('[cairn]\ndisabled_plugins = ["tripwire"]\n', encoding="utf-8")
    elif source == "flag":
        args = ["--set", 'cairn.disabled_plugins=["tripwire"]', *args]
    else:
        env["CAIRN__CAIRN__DISABLED_PLUGINS"] = '["tripwire"]'
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    by_name = {p["name"]: p for p in json.loads(result.stdout)}
    assert (by_name["tripwire"]["status"], by_name["tripwire"]["reason"]) == ("blocked", "blocked by configuration")
    assert by_name["good"]["status"] == "ok"
    assert not site.imported("tripwire")


def test_load_plugins_env_loads_only_the_named(site: FakeSite) -> None:
    site.install("cairn-fake-tripwire", {"tripwire": TRIPWIRE, "good": GOOD})
    plugins = load_plugins(environ={"CAIRN_LOAD_PLUGINS": "good"})
    assert plugins.info["good"].status == "ok"
    tripwire = plugins.info["tripwire"]
    assert (tripwire.status, tripwire.reason) == ("blocked", "not in CAIRN_LOAD_PLUGINS")
    assert not site.imported("tripwire")


def test_empty_load_plugins_env_loads_only_the_builtins(site: FakeSite) -> None:
    site.install("cairn-fake-tripwire", {"tripwire": TRIPWIRE, "good": GOOD})
    plugins = load_plugins(environ={"CAIRN_LOAD_PLUGINS": ""})
    loaded = [name for name, info in plugins.info.items() if info.status == "ok"]
    assert loaded == ["cairn"]
    # Every entry point, the fakes and whatever else is installed, is listed as blocked.
    assert {"good", "tripwire"} <= {name for name, info in plugins.info.items() if info.status == "blocked"}
    assert not site.imported("good") and not site.imported("tripwire")
    assert plugins.content_types.names() == sorted(BUILTIN_TYPES)
    assert len(plugins.storage) == 0


def test_disable_wins_over_load(site: FakeSite) -> None:
    site.install("cairn-fake-good", {"good": GOOD})
    plugins = load_plugins(disabled=["good"], environ={"CAIRN_LOAD_PLUGINS": "good"})
    assert (plugins.info["good"].status, plugins.info["good"].reason) == ("blocked", "blocked by configuration")
    assert not site.imported("good")


# -- cairn plugins --json ------------------------------------------------------------


def test_plugins_json_fields(site: FakeSite, isolated_cli: None) -> None:
    install_broken(site, "import")
    result = CliRunner().invoke(cli, ["plugins", "--json"], env=site.only())
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [p["name"] for p in listed][0] == "cairn"  # the built-in plugin first
    by_name = {p["name"]: p for p in listed}
    fields = {
        "name",
        "module",
        "status",
        "reason",
        "distribution",
        "version",
        "builtin",
        "hooks",
        "registers",
        "failures",
    }
    assert all(set(p) == fields for p in listed)

    assert by_name["cairn"] == {
        "name": "cairn",
        "module": "cairn.builtin",
        "status": "ok",
        "reason": None,
        "distribution": "cairn",
        "version": cairn.__version__,
        "builtin": True,
        "hooks": ["cairn_register_content_types", "cairn_register_executors"],
        "registers": {"content_types": BUILTIN_TYPES, "executors": ["shell", "http", "python"]},
        "failures": {},
    }
    assert by_name["good"] == {
        "name": "good",
        "module": site.module("good"),
        "status": "ok",
        "reason": None,
        "distribution": "cairn-fake-good",
        "version": "1.2.3",
        "builtin": False,
        "hooks": ["cairn_register_storage"],
        "registers": {"storage": ["good_store"]},
        "failures": {},
    }
    broken = by_name["import-fails"]
    assert (broken["status"], broken["distribution"], broken["version"]) == ("broken", "cairn-fake-import", "1.2.3")
    assert broken["reason"].startswith("import failed: ModuleNotFoundError")
    assert (broken["hooks"], broken["registers"]) == ([], {})


# -- hook tracing ----------------------------------------------------------------------


def test_trace_hooks_prints_every_call_to_stderr(site: FakeSite, capsys: pytest.CaptureFixture[str]) -> None:
    site.install("cairn-fake-good", {"good": GOOD})
    load_plugins(environ={**site.only(), "CAIRN_TRACE_HOOKS": "1"})
    err = capsys.readouterr().err
    assert "cairn hook: cairn_register_content_types(register=" in err and "-> [cairn]" in err
    assert "cairn hook: cairn_register_storage(register=" in err and "-> [good]" in err

    load_plugins(environ=site.only())
    assert "cairn hook:" not in capsys.readouterr().err


def test_trace_hooks_shows_notification_arguments(capsys: pytest.CaptureFixture[str], cairn_env: Path) -> None:
    plugins = Plugins(trace=True)
    plugins.register(Recorder(), "recorder")
    capsys.readouterr()
    # The context engine calls cairn_commit_created on the hook relay just like this.
    plugins.pm.hook.cairn_commit_created(commit="c0ffee", branch="main")
    err = capsys.readouterr().err
    assert "cairn hook: cairn_commit_created(commit='c0ffee', branch='main') -> [recorder]" in err


def test_trace_hooks_reports_a_hook_that_raises_in_strict_mode(
    capsys: pytest.CaptureFixture[str], cairn_env: Path
) -> None:
    class Faulty:
        @hookimpl
        def cairn_commit_created(self, commit: Any) -> None:
            raise RuntimeError("listener down")

    plugins = Plugins(strict=True, trace=True)
    plugins.register(Faulty(), "faulty")
    with pytest.raises(PluginError, match="listener down"):
        plugins.pm.hook.cairn_commit_created(commit="c0ffee", branch=None)
    err = capsys.readouterr().err
    assert "cairn hook: cairn_commit_created raised PluginError: plugin 'faulty': " in err


def test_trace_hooks_through_the_cli(site: FakeSite, isolated_cli: None) -> None:
    site.install("cairn-fake-good", {"good": GOOD})
    result = CliRunner().invoke(cli, ["plugins"], env={**site.only(), "CAIRN_TRACE_HOOKS": "1"})
    assert result.exit_code == 0, result.output
    assert "cairn hook: cairn_register_storage(register=" in result.stderr
    assert "cairn hook:" not in result.stdout  # tracing never pollutes what a pipeline reads


# -- in-memory plugins: the registries -------------------------------------------------

#: Every registration hook and the registry it fills; spelled out so a renamed hook fails here.
REGISTRATION_HOOKS = {
    "storage": "cairn_register_storage",
    "tokenizers": "cairn_register_tokenizers",
    "llm": "cairn_register_llm_providers",
    "embeddings": "cairn_register_embedding_providers",
    "evaluators": "cairn_register_evaluators",
    "vector_indexes": "cairn_register_vector_indexes",
    "artifact_stores": "cairn_register_artifact_stores",
    "executors": "cairn_register_executors",
}


def test_the_registries_match_the_hooks() -> None:
    assert {kind: hook for kind, (hook, _) in REGISTRIES.items()} == REGISTRATION_HOOKS


def plugin_with(hook: str, body: Callable[..., Any]) -> object:
    """A plugin object whose only hook implementation is ``body`` under the name ``hook``."""
    body.__name__ = hook
    return type("FakePlugin", (), {hook: staticmethod(hookimpl(body))})()


@attrs.frozen
class FakeConfig:
    path: str = "fake.db"
    size: int = 1


def _factory(config: Any, context: FactoryContext) -> tuple[Any, FactoryContext]:
    return config, context


@pytest.mark.parametrize("kind", sorted(REGISTRATION_HOOKS))
def test_each_registration_hook_fills_its_registry(kind: str, cairn_env: Path) -> None:
    hook = REGISTRATION_HOOKS[kind]

    def register_one(register: Callable[..., None]) -> None:
        register("fake", _factory, FakeConfig, description=f"a fake {kind} backend")

    plugins = load_plugins(entry_points=False)
    assert plugins.register(plugin_with(hook, register_one), "maker")
    registration = plugins.registries[kind].get("fake")
    assert (registration.kind, registration.plugin, registration.config_cls) == (kind, "maker", FakeConfig)
    assert registration.description == f"a fake {kind} backend"
    assert plugins.info["maker"].hooks == [hook]
    assert plugins.info["maker"].registers == {kind: ["fake"]}
    # Only that registry: the same plugin's name appears nowhere else.
    assert [k for k, r in plugins.registries.items() if "fake" in r] == [kind]
    config, context = plugins.create(kind, "fake")
    assert config == FakeConfig() and context.name == "fake"


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        (("Bad Name!", _factory), "storage backend name"),
        (("fine", "not callable"), "storage backend 'fine': factory 'not callable' is not callable"),
        (("fine", _factory, dict), "config class <class 'dict'> is not an attrs class"),
    ],
)
def test_register_checks_its_arguments(arguments: tuple, problem: str, cairn_env: Path) -> None:
    def register_bad(register: Callable[..., None]) -> None:
        register(*arguments)

    plugins = load_plugins(entry_points=False)
    assert not plugins.register(plugin_with("cairn_register_storage", register_bad), "sloppy")
    assert problem in plugins.info["sloppy"].reason
    assert len(plugins.storage) == 0

    with pytest.raises(PluginError, match="plugin 'sloppy'") as info:
        Plugins(strict=True).register(plugin_with("cairn_register_storage", register_bad), "sloppy")
    assert problem in info.value.message


def test_duplicate_names_in_memory_name_both_plugins(cairn_env: Path) -> None:
    def register_shared(register: Callable[..., None]) -> None:
        register("shared", _factory)

    plugins = load_plugins(entry_points=False)
    assert plugins.register(plugin_with("cairn_register_tokenizers", register_shared), "first")
    assert not plugins.register(plugin_with("cairn_register_tokenizers", register_shared), "second")
    assert "tokenizer 'shared' is registered by both 'first' and 'second'" in plugins.info["second"].reason
    assert plugins.tokenizers.get("shared").plugin == "first"
    # The same name in another registry is no clash.
    assert plugins.register(plugin_with("cairn_register_evaluators", register_shared), "third")


def test_unmarked_helpers_with_a_hook_like_name_are_ignored(cairn_env: Path) -> None:
    class Helpful:
        def cairn_helper(self) -> None:  # not marked with @hookimpl: just an unlucky name
            raise AssertionError("never called")

        @hookimpl
        def cairn_register_storage(self, register: Callable[..., None]) -> None:
            register("helped", _factory)

    plugins = load_plugins(entry_points=False)
    assert plugins.register(Helpful(), "helpful")
    assert plugins.info["helpful"].status == "ok" and "helped" in plugins.storage


def test_hooks_may_take_a_subset_of_the_arguments(cairn_env: Path) -> None:
    calls: list[str] = []

    class Quiet:
        @hookimpl
        def cairn_commit_created(self) -> None:  # wants to know that, not what
            calls.append("called")

    plugins = load_plugins(entry_points=False)
    assert plugins.register(Quiet(), "quiet")
    plugins.pm.hook.cairn_commit_created(commit=None, branch=None)
    assert calls == ["called"]


# -- content types: the historic hook ---------------------------------------------------


@attrs.frozen
class Note(Content):
    content_type = "fake.note"
    hints = ContentHints("user")
    text: str

    def render(self) -> tuple[Message, ...]:
        return (Message("user", self.text),)


def _typing_plugin(*types: type) -> object:
    def register_types(register: Callable[..., None]) -> None:
        for content_type in types:
            register(content_type)

    return plugin_with("cairn_register_content_types", register_types)


def test_a_late_plugin_still_gets_the_historic_content_type_hook(cairn_env: Path) -> None:
    plugins = load_plugins(entry_points=False)  # the built-ins are in, the hook was called long ago
    assert "fake.note" not in plugins.content_types
    assert plugins.register(_typing_plugin(Note), "late")
    assert plugins.content_types.get("fake.note") is Note
    assert plugins.content_types.owner("fake.note") == "late"
    assert plugins.info["late"].registers == {"content_types": ["fake.note"]}
    assert plugins.content_types.create({"content_type": "fake.note", "text": "hi"}) == Note("hi")


def test_a_content_type_registered_twice_names_both_plugins(cairn_env: Path) -> None:
    plugins = load_plugins(entry_points=False)
    assert plugins.register(_typing_plugin(Note), "first")
    assert not plugins.register(_typing_plugin(_other_note()), "second")
    assert "content type 'fake.note' is registered by both 'first' and 'second'" in plugins.info["second"].reason
    assert plugins.content_types.owner("fake.note") == "first"


def _other_note() -> type:
    @attrs.frozen
    class OtherNote(Content):
        content_type = "fake.note"
        hints = ContentHints("assistant")
        body: str

        def render(self) -> tuple[Message, ...]:
            return (Message("assistant", self.body),)

    return OtherNote


def test_an_invalid_content_type_breaks_only_its_plugin(cairn_env: Path) -> None:
    class NotAttrs(Content):
        content_type = "fake.plain"
        hints = ContentHints("user")

    plugins = load_plugins(entry_points=False)
    assert not plugins.register(_typing_plugin(NotAttrs), "careless")
    assert "must be an attrs class deriving from cairn.model.Content" in plugins.info["careless"].reason
    assert "fake.plain" not in plugins.content_types
    assert plugins.content_types.names() == sorted(BUILTIN_TYPES)


# -- notification and command hooks -------------------------------------------------------


class Recorder:
    """A plugin that records the notification and command hooks it receives."""

    def __init__(self) -> None:
        self.commits: list[tuple[str, str | None]] = []
        self.groups: list[click.Group] = []

    @hookimpl
    def cairn_commit_created(self, commit: Any, branch: str | None) -> None:
        self.commits.append((getattr(commit, "hash", commit), branch))

    @hookimpl
    def cairn_register_commands(self, cli: click.Group) -> None:
        self.groups.append(cli)

        @cli.command("recorded")
        def recorded() -> None:
            """A command a plugin added."""
            click.echo("recorded ran")


def test_commit_created_is_called_with_the_commit_and_branch(cairn_env: Path) -> None:
    plugins = load_plugins(entry_points=False)
    recorder = Recorder()
    plugins.register(recorder, "recorder")
    repo = Repo(MemoryStore(), WordTokenizer(), plugins.content_types, hooks=plugins.pm.hook)

    first = repo.append({"content_type": "dialogue", "role": "user", "text": "hello"})
    assert recorder.commits == [(first.hash, "main")]
    repo.switch("side", create=True)
    second = repo.append({"content_type": "dialogue", "role": "user", "text": "again"})
    assert recorder.commits[-1] == (second.hash, "side")


def test_a_raising_commit_hook_never_loses_the_commit(cairn_env: Path) -> None:
    class Faulty:
        @hookimpl
        def cairn_commit_created(self, commit: Any) -> None:
            raise RuntimeError("listener down")

    plugins = load_plugins(entry_points=False)
    recorder = Recorder()
    plugins.register(Faulty(), "faulty")
    plugins.register(recorder, "recorder")
    store = MemoryStore()
    repo = Repo(store, WordTokenizer(), plugins.content_types, hooks=plugins.pm.hook)

    commit = repo.append({"content_type": "instruction", "text": "be brief"})
    assert commit.hash in store.commits
    assert recorder.commits == [(commit.hash, "main")]
    faulty = plugins.info["faulty"]
    assert faulty.status == "failing"
    assert faulty.reason is not None and faulty.reason.endswith("RuntimeError: listener down")
    assert faulty.failures["cairn_commit_created"]["count"] == 1
    # A notification failure is counted, not fatal: the plugin stays registered and is called again.
    repo.append({"content_type": "instruction", "text": "be kind"})
    assert len(recorder.commits) == 2 and len(store.commits) == 2
    assert faulty.failures["cairn_commit_created"]["count"] == 2
    assert plugins.pm.get_plugin("faulty") is not None


def test_register_commands_is_called_once_per_plugin_set(cairn_env: Path) -> None:
    plugins = load_plugins(entry_points=False)
    recorder = Recorder()
    plugins.register(recorder, "recorder")
    first = plugins.commands()
    assert plugins.commands() is first
    assert len(recorder.groups) == 1
    assert "recorded" in first


COMMANDS = """
    import click
    from cairn.hookspecs import hookimpl

    @hookimpl
    def cairn_register_commands(cli):
        @cli.command("fake-cmd")
        def fake_cmd():
            '''A command from a fake plugin.'''
            click.echo("fake command ran")
"""


def test_plugin_commands_reach_the_cli(site: FakeSite, isolated_cli: None) -> None:
    site.install("cairn-fake-commands", {"commands": COMMANDS})
    runner = CliRunner()
    listing = runner.invoke(cli, ["--help"], env=site.only())
    assert listing.exit_code == 0 and "fake-cmd" in listing.output
    ran = runner.invoke(cli, ["fake-cmd"], env=site.only())
    assert (ran.exit_code, ran.output) == (0, "fake command ran\n")


def test_a_blocked_plugin_adds_no_command(site: FakeSite, isolated_cli: None) -> None:
    site.install("cairn-fake-commands", {"commands": COMMANDS})
    blocked = CliRunner().invoke(cli, ["fake-cmd"], env={**site.only(), "CAIRN_DISABLE_PLUGINS": "commands"})
    assert blocked.exit_code == 2 and "No such command 'fake-cmd'" in blocked.output
    assert not site.imported("commands")


def test_plugin_commands_do_not_outlive_their_invocation(site: FakeSite, isolated_cli: None) -> None:
    site.install("cairn-fake-commands", {"commands": COMMANDS})
    runner = CliRunner()
    assert runner.invoke(cli, ["fake-cmd"], env=site.only()).exit_code == 0
    blocked = runner.invoke(cli, ["fake-cmd"], env={**site.only(), "CAIRN_DISABLE_PLUGINS": "commands"})
    assert blocked.exit_code == 2 and "No such command 'fake-cmd'" in blocked.output


MCP_EXTENSION = '''
    import click
    from cairn.hookspecs import hookimpl

    @click.group("mcp")
    def mcp():
        """The plugin's half of the mcp group."""

    @mcp.command("ping")
    def ping():
        click.echo("pong")

    @hookimpl
    def cairn_register_commands(cli):
        cli.add_command(mcp)
'''


def test_a_plugin_group_extends_the_builtin_mcp_group(site: FakeSite, isolated_cli: None) -> None:
    site.install("cairn-fake-mcp", {"mcpext": MCP_EXTENSION})
    runner = CliRunner()
    listing = runner.invoke(cli, ["mcp", "--help"], env=site.only())
    assert listing.exit_code == 0 and "list" in listing.output and "ping" in listing.output
    ran = runner.invoke(cli, ["mcp", "ping"], env=site.only())
    assert (ran.exit_code, ran.output) == (0, "pong\n")
    listed = runner.invoke(cli, ["plugins", "--json"], env=site.only())
    assert {p["name"]: p["status"] for p in json.loads(listed.output)}["mcpext"] == "ok"
    # without the plugin, only the built-in half is there
    blocked = runner.invoke(cli, ["mcp", "ping"], env={**site.only(), "CAIRN_DISABLE_PLUGINS": "mcpext"})
    assert blocked.exit_code == 2 and "No such command 'ping'" in blocked.output


def test_a_plain_command_named_like_an_extensible_group_still_clashes(cairn_env: Path) -> None:
    def plain(cli: Any) -> None:
        cli.add_command(click.Command("mcp", callback=lambda: None))

    def group(cli: Any) -> None:
        cli.add_command(click.Group("mcp", commands={"ping": click.Command("ping", callback=lambda: None)}))

    plugins = load_plugins(entry_points=False)
    plugins.register(plugin_with("cairn_register_commands", plain), "plain")
    plugins.register(plugin_with("cairn_register_commands", group), "grouped")
    found = plugins.commands(reserved={"mcp", "status"}, extensible={"mcp"})
    assert plugins.info["plain"].status == "broken" and "mcp" in (plugins.info["plain"].reason or "")
    assert plugins.info["grouped"].status == "ok"
    assert isinstance(found["mcp"], click.Group) and list(found["mcp"].commands) == ["ping"]


# -- factories: config tables and FactoryContext -----------------------------------------


def _with_fake_storage(config_cls: type | None = FakeConfig) -> Plugins:
    def register_one(register: Callable[..., None]) -> None:
        if config_cls is None:
            register("plain", _factory)
        else:
            register("fake", _factory, config_cls)

    plugins = load_plugins(entry_points=False)
    plugins.register(plugin_with("cairn_register_storage", register_one), "maker")
    return plugins


def _project(root: Path, toml: str) -> Path:
    path = root / "cairn.toml"
    path.write_text(textwrap.dedent(toml), encoding="utf-8")
    return path


def test_create_structures_the_table_and_passes_the_context(cairn_env: Path) -> None:
    _project(
        cairn_env,
        """\
        [cairn]
        data_dir = "state"

        [storage.fake]
        size = 3
    """,
    )
    config = load_config(cairn_env, environ={"CAIRN_USER_CONFIG": "", "CAIRN__STORAGE__FAKE__PATH": '"env.db"'})
    settings, context = _with_fake_storage().create("storage", "fake:shard-1", config)
    assert settings == FakeConfig(path="env.db", size=3)
    assert context == FactoryContext(
        name="fake",
        argument="shard-1",
        project_dir=cairn_env.resolve(),
        data_dir=(cairn_env / "state").resolve(),
        config=config,
    )


def test_create_without_config_uses_the_defaults(cairn_env: Path) -> None:
    settings, context = _with_fake_storage().create("storage", "fake")
    assert settings == FakeConfig()
    assert (context.argument, context.project_dir, context.config) == (None, None, None)
    assert context.data_dir == Path.cwd() / ".cairn"


def test_an_unknown_key_is_refused_naming_file_table_and_key(cairn_env: Path) -> None:
    path = _project(
        cairn_env,
        """\
        [storage.fake]
        size = 3
        colour = "red"
    """,
    )
    config = load_config(cairn_env, environ={"CAIRN_USER_CONFIG": ""})
    with pytest.raises(ConfigError) as info:
        _with_fake_storage().create("storage", "fake", config)
    error = info.value
    assert (error.file, error.table, error.key, error.line) == (str(path.resolve()), "storage.fake", "colour", 3)
    assert "unknown field(s): colour" in error.problem
    assert error.hint == "valid keys: path, size"
    assert str(error).startswith(f"{path.resolve()}:3: [storage.fake] colour: ")


def test_a_wrong_value_is_refused_naming_the_key(cairn_env: Path) -> None:
    _project(
        cairn_env,
        """\
        [storage.fake]
        size = "big"
    """,
    )
    config = load_config(cairn_env, environ={"CAIRN_USER_CONFIG": ""})
    with pytest.raises(ConfigError) as info:
        _with_fake_storage().create("storage", "fake", config)
    assert (info.value.table, info.value.key, info.value.line) == ("storage.fake", "size", 2)
    assert "expected an integer" in info.value.problem


def test_a_backend_without_a_config_class_refuses_every_key(cairn_env: Path) -> None:
    _project(
        cairn_env,
        """\
        [storage.plain]
        anything = 1
    """,
    )
    config = load_config(cairn_env, environ={"CAIRN_USER_CONFIG": ""})
    with pytest.raises(ConfigError) as info:
        _with_fake_storage(None).create("storage", "plain", config)
    assert (info.value.table, info.value.key) == ("storage.plain", "anything")
    assert info.value.hint == "this table takes no keys; remove it"


def test_create_an_unknown_backend_lists_the_known(cairn_env: Path) -> None:
    with pytest.raises(NotFoundError) as info:
        _with_fake_storage().create("storage", "nosuch")
    assert info.value.message == "no storage backend 'nosuch'"
    assert "known: fake" in (info.value.hint or "")


def test_check_config_reports_every_backend_problem(cairn_env: Path) -> None:
    path = _project(
        cairn_env,
        """\
        [cairn]
        storage = "nosuch"

        [storage.fake]
        colour = "red"

        [storage.ghost]
        x = 1
    """,
    )
    config = load_config(cairn_env, environ={"CAIRN_USER_CONFIG": ""})
    problems = _with_fake_storage().check_config(config)
    described = sorted((p.table, p.key, p.problem) for p in problems)
    assert ("cairn", "storage", "no storage backend called 'nosuch'") in described
    assert ("storage.ghost", None, "no storage backend called 'ghost'") in described
    assert any(t == "storage.fake" and k == "colour" for t, k, _ in described)
    assert all(p.file == str(path.resolve()) for p in problems if p.table in ("storage.fake", "storage.ghost"))


def test_check_config_locates_every_problem_by_line(cairn_env: Path) -> None:
    _project(
        cairn_env,
        """\
        [cairn]
        storage = "nosuch"

        [bogus]
        x = 1
    """,
    )
    config = load_config(cairn_env, environ={"CAIRN_USER_CONFIG": ""})
    lines = {(p.table, p.key): p.line for p in _with_fake_storage().check_config(config)}
    assert lines[("cairn", "storage")] == 2
    assert lines[("bogus", None)] == 4


# -- what a backend needs: modules it imports, and its own check ---------------------------


def _registering(hook: str, **options: Any) -> Plugins:
    def register_one(register: Callable[..., None]) -> None:
        register("fake", _factory, FakeConfig, **options)

    plugins = load_plugins(entry_points=False)
    assert plugins.register(plugin_with(hook, register_one), "maker")
    return plugins


def test_a_backend_whose_module_is_missing_says_what_to_install(cairn_env: Path) -> None:
    _project(cairn_env, '[cairn]\ntokenizer = "fake:arg"\n')
    config = load_config(cairn_env, environ={"CAIRN_USER_CONFIG": ""})
    plugins = _registering("cairn_register_tokenizers", requires={"cairn_no_such_module_xyz": "cairn-fake-dist[extra]"})
    with pytest.raises(ConfigError) as info:
        plugins.create("tokenizers", "fake:arg", config)
    error = info.value
    assert (error.table, error.key, error.line) == ("cairn", "tokenizer", 2)
    assert "needs the Python module 'cairn_no_such_module_xyz', which is not installed" in error.problem
    assert error.hint is not None and "pip install 'cairn-fake-dist[extra]'" in error.hint
    # config validate reports the same, located, without creating anything.
    reported = [p for p in plugins.check_config(config) if p.key == "tokenizer"]
    assert [(p.line, p.hint) for p in reported] == [(2, error.hint)]


def test_an_undeclared_missing_module_is_named_too(cairn_env: Path) -> None:
    def factory(config: Any, context: FactoryContext) -> Any:
        import cairn_no_such_module_xyz  # noqa: F401  (the point: it is not installed)

    def register_one(register: Callable[..., None]) -> None:
        register("fake", factory)

    plugins = load_plugins(entry_points=False)
    plugins.register(plugin_with("cairn_register_tokenizers", register_one), "maker")
    with pytest.raises(ConfigError, match="needs the Python module 'cairn_no_such_module_xyz'") as info:
        plugins.create("tokenizers", "fake")
    assert info.value.hint is not None and "plugin 'maker'" in info.value.hint


@pytest.mark.parametrize("requires", [{"": "x"}, {"mod": ""}, {"mod": 3}])
def test_requires_must_map_modules_to_what_to_install(requires: dict[str, Any], cairn_env: Path) -> None:
    def register_one(register: Callable[..., None]) -> None:
        register("fake", _factory, requires=requires)

    plugins = load_plugins(entry_points=False)
    assert not plugins.register(plugin_with("cairn_register_storage", register_one), "maker")
    assert "requires must map module names" in (plugins.info["maker"].reason or "")


def test_a_backend_check_is_reported_at_its_key(cairn_env: Path) -> None:
    seen: list[FactoryContext] = []

    def check(config: FakeConfig, context: FactoryContext) -> list[tuple[str, str]]:
        seen.append(context)
        return [("path", f"{config.path} is not a regular file")] if config.path == "/dev/null" else []

    _project(cairn_env, '[cairn]\nstorage = "fake"\n\n[storage.fake]\nsize = 2\npath = "/dev/null"\n')
    config = load_config(cairn_env, environ={"CAIRN_USER_CONFIG": ""})
    plugins = _registering("cairn_register_storage", check=check)
    problems = [p for p in plugins.check_config(config) if p.table == "storage.fake"]  # no tokenizer is loaded here
    assert [(p.table, p.key, p.line, p.problem) for p in problems] == [
        ("storage.fake", "path", 6, "/dev/null is not a regular file")
    ]
    assert seen[0].data_dir == config.data_dir and seen[0].name == "fake"


def test_cairn_plugins_lists_the_commands_a_plugin_registers(site: FakeSite, isolated_cli: None) -> None:
    site.install("cairn-fake-commands", {"commands": COMMANDS})
    listed = CliRunner().invoke(cli, ["plugins", "--json"], env=site.only())
    assert listed.exit_code == 0, listed.output
    (fake,) = [info for info in json.loads(listed.output) if info["name"] == "commands"]
    assert fake["registers"] == {"commands": ["fake-cmd"]}
    table = CliRunner().invoke(cli, ["plugins"], env=site.only())
    assert "commands: fake-cmd" in table.output
