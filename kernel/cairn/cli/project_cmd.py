"""Project-level commands: ``cairn plugins``, ``cairn config show|validate``, ``cairn init``."""

from __future__ import annotations

from pathlib import Path

import click

from cairn.cli._app import (
    CairnGroup,
    SafePath,
    State,
    echo_json,
    json_option,
    pass_state,
    plural,
    print_table,
    report,
)
from cairn.errors import ConfigError

INIT_TEMPLATE = """\
# cairn configuration. Every key is documented in docs/configuration.md.
# Precedence: --set flags > CAIRN__SECTION__KEY variables > this file >
# the user file ({user_file}) > defaults.

[cairn]
# Backends, by registered name (`cairn plugins` lists what is installed).
storage = "sqlite"        # the embedded default: one file under data_dir
tokenizer = "approx"      # no download needed; "tiktoken:cl100k_base" for exact counts
llm = "noop"              # refuses every call; "openai" with cairn-openai (see docs/providers.md)
embeddings = "noop"       # refuses every call; "hashing" with cairn-local works offline
# Where cairn keeps its data, relative to this file.
data_dir = ".cairn"
# Plugins never to load (entry-point names).
disabled_plugins = []

[context]
default_branch = "main"
# Refuse (or warn about) commits that make the effective context larger than this.
# max_tokens = 100000
# budget_action = "reject"   # or "warn"
# Summarise older items (`cairn compact`) once the context passes this fraction of max_tokens.
# compact_at = 0.8
# compact_keep_last = 8

[storage.sqlite]
path = "cairn.db"         # relative to data_dir
"""


def register(cli: click.Group) -> None:
    cli.add_command(plugins_command)
    cli.add_command(config_group)
    cli.add_command(init_command)


@click.command("plugins")
@json_option()
@pass_state
def plugins_command(state: State, as_json: bool) -> None:
    """List plugins: distribution, version, hooks, what each registers, and status.

    A plugin whose notification hook raised in this project is listed as
    failing, with how often and the last error, until the hook next succeeds.
    """
    from cairn.plugin_failures import load_failures

    try:
        data_dir: Path | None = state.config.data_dir
    except ConfigError:
        data_dir = None  # `cairn config validate` explains; the list is still useful
    if data_dir is not None:
        state.plugins.remember_failures(load_failures(data_dir).values())
    group = click.get_current_context().find_root().command
    if isinstance(group, CairnGroup):
        # so each plugin's commands are listed too
        state.plugins.commands(reserved=group._builtin_names(), extensible=group.extensible)
    infos = state.plugins.describe()
    if as_json:
        echo_json([info.to_dict() for info in infos])
        return
    rows = []
    for info in infos:
        registers = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in sorted(info.registers.items()))
        status = info.status if info.status == "ok" else f"{info.status}: {info.reason}"
        rows.append([info.name, info.distribution or "", info.version or "", status, registers])
    print_table(["plugin", "distribution", "version", "status", "registers"], rows)


@click.group("config")
def config_group() -> None:
    """Show or check the effective configuration."""


@config_group.command("show")
@json_option()
@pass_state
def config_show(state: State, as_json: bool) -> None:
    """Print every effective setting and where it came from (secrets redacted)."""
    from cairn.config import user_config_file

    config = state.config
    entries = config.flat()
    if as_json:
        echo_json(
            {
                "project_file": str(config.project_file) if config.project_file else None,
                "user_file": str(config.user_file) if config.user_file else None,
                "settings": [{"key": k, "value": v, "source": s} for k, v, s in entries],
            }
        )
        return
    click.echo(f"project file: {config.project_file or '(none found)'}")
    click.echo(f"user file:    {config.user_file or f'(none; create {user_config_file()})'}")
    print_table(["key", "value", "source"], [[k, _toml_value(v), s] for k, v, s in entries])


def _toml_value(value: object) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


@config_group.command("validate")
@pass_state
def config_validate(state: State) -> None:
    """Check the configuration and every backend table; exit 1 listing every problem.

    Each problem is an ``error:`` line naming the file and line (or the
    variable or flag) and a ``hint:``; nothing is created or changed.
    """
    try:
        config = state.config
    except ConfigError as exc:  # a syntax error stops everything else
        report(exc.message, exc.hint)
        click.get_current_context().exit(2 if exc.command_line else 1)
    problems = state.plugins.check_config(config)
    broken = [i for i in state.plugins.describe() if i.status == "broken"]
    for problem in problems:
        report(problem.message, problem.hint)
    for info in broken:
        click.secho(f"warning: plugin {info.name} is broken: {info.reason}", fg="yellow", err=True)
    if problems:
        click.echo(f"{plural(len(problems), 'problem')} in the configuration.", err=True)
        click.get_current_context().exit(1)
    where = config.project_file or "defaults only"
    click.echo(f"configuration is valid ({where})")


@click.command("init")
@click.option("--force", is_flag=True, help="Overwrite an existing cairn.toml.")
@click.argument("directory", required=False, type=SafePath(file_okay=False))
@pass_state
def init_command(state: State, force: bool, directory: str | None) -> None:
    """Create cairn.toml with working offline defaults and the .cairn/ data directory.

    DIRECTORY (default: the working directory, or -C's) is created when missing.
    """
    from cairn.config import PROJECT_FILE, user_config_file

    target = (state.cwd / directory).resolve() if directory else state.cwd
    path = target / PROJECT_FILE
    data_dir = target / ".cairn"
    try:
        target.mkdir(parents=True, exist_ok=True)
        if path.exists() and not force:
            raise ConfigError(
                "already exists",
                file=str(path),
                hint="use --force to overwrite it, or edit it by hand",
            )
        path.write_text(INIT_TEMPLATE.format(user_file=user_config_file()), encoding="utf-8")
        data_dir.mkdir(exist_ok=True)
        # Keep the data directory out of the user's commits without touching their .gitignore.
        (data_dir / ".gitignore").write_text("*\n", encoding="utf-8")
    except OSError as exc:
        where = exc.filename if isinstance(exc.filename, str) else str(target)
        raise ConfigError(
            f"cannot create the project: {exc.strerror or exc}",
            file=where,
            hint="choose a directory you can write, whose parents are directories",
        ) from None
    click.echo(f"wrote {path}")
    click.echo(f"created {data_dir}/")
