"""Plumbing shared by every command: lazy state, the plugin-aware group, output helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cairn.errors import CairnError

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.ledger import Ledger
    from cairn.plugins import Plugins
    from cairn.repo import Repo
    from cairn.storage import Store


class State:
    """What commands share: config, plugins and the repository, each built on first use."""

    def __init__(
        self,
        *,
        project: str | None = None,
        config_file: str | None = None,
        settings: Sequence[str] = (),
        strict: bool | None = None,
    ) -> None:
        self.project = Path(project).resolve() if project else None
        self.config_file = config_file
        self.settings = tuple(settings)
        self.strict = strict
        self._config: Config | None = None
        self._plugins: Plugins | None = None
        self._repo: Repo | None = None
        self._ledger: Ledger | None = None
        self._store: Store | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> State:
        return cls(
            project=params.get("project"),
            config_file=params.get("config_file"),
            settings=params.get("settings") or (),
            strict=params.get("strict"),
        )

    @property
    def cwd(self) -> Path:
        return self.project or Path.cwd()

    @property
    def config(self) -> Config:
        if self._config is None:
            from cairn.config import load_config

            self._config = load_config(self.cwd, flags=self.settings, config_file=self.config_file)
        return self._config

    @property
    def plugins(self) -> Plugins:
        if self._plugins is None:
            import os

            from cairn.errors import ConfigError
            from cairn.plugins import load_plugins

            disabled: list[str] = []
            strict = self.strict
            try:
                settings = self.config.cairn
                disabled = list(settings.disabled_plugins)
                if strict is None and settings.strict_plugins:
                    strict = True
            except ConfigError:
                # A broken config must not stop `cairn config validate` or `cairn plugins`
                # from running; the commands that need config report it themselves.
                pass
            self._plugins = load_plugins(disabled=disabled, strict=strict, environ=os.environ)
        return self._plugins

    @property
    def store(self) -> Store:
        """The configured store, opened once and shared by the context engine and the ledger."""
        if self._store is None:
            self._store = self.plugins.create("storage", self.config.cairn.storage, self.config)
        return self._store

    @property
    def repo(self) -> Repo:
        if self._repo is None:
            from cairn.repo import open_repo

            self._repo = open_repo(config=self.config, plugins=self.plugins, store=self.store)
            if self.config.context.compact_at is not None:  # automatic compaction asks the configured LLM
                from cairn.cli._summarizer import summarizer_for

                repo = self._repo
                repo.summarize, repo.summarizer = summarizer_for(
                    self.config, self.plugins, self.store, repo, lambda: self.ledger
                )
        return self._repo

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            from cairn.ledger import open_ledger

            self._ledger = open_ledger(config=self.config, plugins=self.plugins, store=self.store)
        return self._ledger

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        self._store = self._repo = self._ledger = None

    def report_hook_failures(self) -> None:
        """Warn once per plugin and hook that failed in this command, and remember it for `cairn plugins`."""
        if self._plugins is None or not self._plugins.hook_failures:
            return
        failures = self._plugins.hook_failures
        for failure in failures.failed.values():
            times = "" if failure.count == 1 else f" ({failure.count} times)"
            click.secho(
                f"warning: plugin {failure.plugin} failed in {failure.hook}{times}: {failure.error}; {failure.kept}",
                fg="yellow",
                err=True,
            )
            click.echo(
                f"  hint: `cairn plugins` lists it as failing; fix or update the plugin, "
                f"or disable it (CAIRN_DISABLE_PLUGINS={failure.plugin})",
                err=True,
            )
        from cairn.errors import ConfigError

        try:
            data_dir = self.config.data_dir
        except ConfigError:
            return
        failures.save(data_dir)


pass_state = click.make_pass_decorator(State, ensure=True)


class Count(click.IntRange):
    """A whole number of at least ``min`` for limits and sizes; anything above ``ceiling`` means
    "no limit" and is read as the ceiling, so a huge number never overflows SQLite or C."""

    def __init__(self, min: int = 1, ceiling: int = 2**31 - 1) -> None:
        super().__init__(min=min)
        self.ceiling = ceiling

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        return number if number is None else min(number, self.ceiling)


class SafePath(click.Path):
    """``click.Path`` for names users type: a NUL character, text that is not UTF-8, or a name the
    system refuses (too long ...) is a usage error naming the option, never an ``OSError``."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            if "\x00" in value:
                self.fail("a path cannot hold a NUL character", param, ctx)
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                self.fail(f"{value!r:.80} is not valid UTF-8", param, ctx)
            if value == "":
                self.fail("the path is empty", param, ctx)
        try:
            return super().convert(value, param, ctx)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.fail(f"{str(value)[:80]!r}: {reason}", param, ctx)


class CairnGroup(click.Group):
    """A click group whose plugin commands belong to the invocation, not to the process.

    Plugins are loaded only when a command is looked up that is not built in
    (or when the command list is needed), after the global options are parsed,
    so ``--strict`` and the project's ``disabled_plugins`` apply before any
    plugin is imported. Plugin commands live on the invocation's ``State``:
    one invocation that blocks a plugin never sees the commands another added.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Built-in command modules not imported yet: module name -> the commands its register(cli) adds.
        self.lazy_modules: dict[str, tuple[str, ...]] = {}
        #: Built-in groups a plugin may add subcommands to, by adding a group of the same name.
        self.extensible: set[str] = set()

    def _builtin_names(self) -> set[str]:
        return {*self.commands, *(name for names in self.lazy_modules.values() for name in names)}

    def _load_module_of(self, cmd_name: str | None) -> None:
        """Import the module of built-in ``cmd_name`` (all of them for None) and let it register its commands."""
        import importlib

        for module, names in self.lazy_modules.items():
            if (cmd_name is None or cmd_name in names) and not all(name in self.commands for name in names):
                importlib.import_module(module).register(self)

    def load_builtin_commands(self) -> MutableMapping[str, click.Command]:
        """Every built-in command, by name (imports every command module)."""
        self._load_module_of(None)
        return self.commands

    @staticmethod
    def _state(ctx: click.Context) -> State:
        root = ctx.find_root()
        if not isinstance(root.obj, State):
            root.obj = State.from_params(root.params)
        return root.obj

    def _plugin_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        return self._state(ctx).plugins.commands(reserved=self._builtin_names(), extensible=self.extensible)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.load_builtin_commands(), *self._plugin_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            self._load_module_of(cmd_name)
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        return self._plugin_commands(ctx).get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        detach = _attach_recordings(ctx)
        stop = _start_observers(ctx)
        try:
            return super().invoke(ctx)
        finally:
            stop()
            detach()
            state = ctx.obj
            if isinstance(state, State):
                state.close()
                state.report_hook_failures()


class ExtensibleGroup(click.Group):
    """A built-in group whose subcommands plugins may add to: a plugin adds a group of the same name
    (``cairn-serve`` adds ``mcp serve`` beside the kernel's ``mcp list``); its name must be in the
    root group's ``extensible`` set. The plugins are loaded only when a subcommand is not built in."""

    def _extension(self, ctx: click.Context) -> click.Group | None:
        root = ctx.find_root().command
        if not isinstance(root, CairnGroup) or self.name is None:
            return None
        found = root._plugin_commands(ctx).get(self.name)
        return found if isinstance(found, click.Group) and found is not self else None

    def list_commands(self, ctx: click.Context) -> list[str]:
        extension = self._extension(ctx)
        return sorted({*super().list_commands(ctx), *(extension.list_commands(ctx) if extension else ())})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        extension = self._extension(ctx)
        return extension.get_command(ctx, cmd_name) if extension else None


def _attach_recordings(ctx: click.Context) -> Callable[[], None]:
    """Send this command's bus events to any `cairn trace` recording running in the project."""
    from cairn.errors import ConfigError

    state = CairnGroup._state(ctx)
    try:
        directory = state.config.data_dir
    except ConfigError:
        return lambda: None  # the command itself will report the broken config
    try:
        recording = (directory / "traces" / "active").is_dir()
    except OSError:  # a data_dir the system refuses (too long ...): the command itself reports it
        recording = False
    if not recording:
        return lambda: None
    from cairn.events import bus
    from cairn.tracing import ActiveRecordings

    return ActiveRecordings(directory).attach(bus)


def _start_observers(ctx: click.Context) -> Callable[[], None]:
    """With ``[telemetry] exporter`` set, let plugins subscribe to the bus (``cairn_observe``); the returned
    callable flushes and stops them when the command ends."""
    from cairn.config_tables import TelemetrySettings
    from cairn.errors import ConfigError

    state = CairnGroup._state(ctx)
    try:
        if state.config.settings("telemetry", TelemetrySettings).exporter == "none":
            return lambda: None
    except ConfigError:
        return lambda: None  # the command itself will report the broken config
    from cairn.events import bus

    stops = [s for s in state.plugins.pm.hook.cairn_observe(bus=bus, config=state.config) if callable(s)]

    def stop() -> None:
        for each in stops:
            each()

    return stop


def fail(exc: CairnError, status: int = 1) -> None:
    """Print a library error as one clear line (plus its hint) and exit."""
    report(exc.message, exc.hint)
    sys.exit(status)


def report(message: str, hint: str | None = None) -> None:
    """The one shape of every error cairn prints: ``error: ...`` and, when there is one, ``  hint: ...``."""
    click.secho(f"error: {message}", fg="red", err=True)
    if hint:
        click.echo(f"  hint: {hint}", err=True)


def show_click_error(exc: click.ClickException) -> None:
    """A click error (bad option, missing argument ...) in cairn's shape, the usage line as the hint."""
    hint = None
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        usage = exc.ctx.get_usage().strip()
        usage = usage[0].lower() + usage[1:] if usage else usage
        hint = f"{usage}; `{exc.ctx.command_path} --help` explains it"
    report(exc.format_message(), hint)


def read_stdin(what: str) -> str:
    """All of standard input as text, for ``-`` arguments; bytes that are not UTF-8 are a clear error."""
    from cairn.errors import ValidationError

    try:
        return sys.stdin.read()
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{what} from standard input is not UTF-8 text ({exc.reason})",
            hint="convert it first, e.g. with iconv -t UTF-8",
        ) from None


def read_text_file(path: str, what: str) -> str:
    """A UTF-8 text file named on the command line; every way it can fail is a ``ValidationError`` naming it."""
    from cairn.errors import ValidationError

    shown = f"{path!r:.200}"
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{what} {shown} is not UTF-8 text ({exc.reason})") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValidationError(f"cannot read {what} {shown}: {reason}", hint="check the file name") from None


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 commit``, ``2 commits``: a count with its noun in the right number (``nouns`` when not noun + s)."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


def plain(value: Any) -> str:
    """A value as one line of text for people: strings as they are, objects and lists as compact JSON."""
    import enum

    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


def print_fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """``key  value`` lines with the values aligned in one column; empty values are left out."""
    shown = [(key, plain(value)) for key, value in pairs if value not in (None, "", [], {})]
    width = max((len(key) for key, _ in shown), default=0) + 2
    for key, value in shown:
        click.echo(f"{key:<{width}}{value}")


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str))


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> None:
    """A table on a terminal, tab-separated text when piped (easy to grep and cut)."""
    rows = [[("" if v is None else str(v)) for v in row] for row in rows]
    if not sys.stdout.isatty():
        click.echo("\t".join(columns))
        for row in rows:
            click.echo("\t".join(row))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def json_option(
    help_text: str = "Print JSON instead of a table.",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--json", "as_json", is_flag=True, help=help_text)
