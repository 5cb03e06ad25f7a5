"""The ``cairn`` command line: a click group that plugins extend through a hook.

Only this package prints. Library errors (``CairnError``) become one
``error:`` line on stderr, a ``hint:`` line saying what to do, and exit
status 2 when the command line itself is wrong (an option, an argument, a
``--set`` value) or 1 when the command failed. Anything else that escapes a
command is a bug in cairn: ``main`` reports it as an internal error (exit
70, with the traceback only when ``CAIRN_DEBUG=1``).

Start-up stays fast: a built-in command's module is imported only when that
command runs (or the command list is shown), command modules import nothing
heavy at module level, and plugins are loaded only when a command or the
help text needs them.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from cairn.cli._app import CairnGroup, SafePath, State, fail, pass_state, show_click_error
from cairn.errors import CairnError

__all__ = ["INTERNAL_ERROR", "cli", "main", "State", "pass_state"]

#: Exit status of a bug in cairn (sysexits' EX_SOFTWARE): never the answer to a user's mistake.
INTERNAL_ERROR = 70


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``cairn 0.1.0``, then one line per installed plugin distribution: name, version and its plugins."""
    if not value or ctx.resilient_parsing:
        return
    from cairn._version import kernel_version
    from cairn.plugins import plugin_distributions

    click.echo(f"cairn {kernel_version()}")
    for name, version, plugins in plugin_distributions():
        click.echo(f"{name} {version} ({', '.join(plugins)})")
    ctx.exit()


@click.group(cls=CairnGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_version,
    help="Show the version of cairn and of each installed plugin distribution, and exit.",
)
@click.option(
    "-C",
    "--project",
    "project",
    type=SafePath(file_okay=False, exists=True),
    help="Run as if started in this directory.",
)
@click.option(
    "--config",
    "config_file",
    type=SafePath(dir_okay=False),
    help="Use this config file instead of discovering cairn.toml.",
)
@click.option(
    "--set", "settings", multiple=True, metavar="SECTION.KEY=VALUE", help="Override a config value (repeatable)."
)
@click.option(
    "--strict", is_flag=True, default=None, help="Fail when a plugin is broken (also CAIRN_STRICT_PLUGINS=1)."
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    help="json: one JSON object per log record on stderr.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    help="With --log-format json: the lowest level written.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    project: str | None,
    config_file: str | None,
    settings: tuple[str, ...],
    strict: bool | None,
    log_format: str,
    log_level: str,
) -> None:
    """cairn: versioned context, a run ledger, providers and evaluators for LLM agents.

    Configuration comes from cairn.toml (found by walking up from the current
    directory), the user config file, CAIRN__SECTION__KEY variables and --set.
    """
    ctx.obj = ctx.find_object(State) or State.from_params(ctx.params)
    from cairn.cli._logs import configure_logging

    configure_logging(log_format, log_level)


# The built-in commands, by the module that defines them: a module is imported (and its
# register(cli) called) when one of its commands runs or the command list is needed, so
# `cairn status` imports one command module, not twelve.
cli.lazy_modules.update(
    {
        "cairn.cli.project_cmd": ("init", "config", "plugins"),
        "cairn.cli.context_cmd": ("commit", "edit", "delete", "pin", "skip", "unpin"),
        "cairn.cli.branch_cmd": ("branch", "switch", "checkout"),
        "cairn.cli.inspect_cmd": ("log", "show", "diff", "materialize", "status"),
        "cairn.cli.maintenance_cmd": ("gc", "fsck", "export", "import"),
        "cairn.cli.demo_cmd": ("demo",),
        "cairn.cli.providers_cmd": ("ask", "embed", "providers", "spend"),
        "cairn.cli.ledger_cmd": ("runs", "run", "ledger"),
        "cairn.cli.chat_cmd": ("chat", "thread", "trace"),
        "cairn.cli.evals_cmd": ("eval", "evaluators"),
        "cairn.cli.artifacts_cmd": ("artifact", "snapshot"),
        "cairn.cli.merge_cmd": ("merge", "cherry-pick", "history", "restore"),
        "cairn.cli.logs_cmd": ("logs",),
        "cairn.cli.memory_cmd": ("search", "memory"),
        "cairn.cli.directive_cmd": ("directive",),
        "cairn.cli.policy_cmd": ("policy", "approvals", "approve", "deny"),
        "cairn.cli.exec_cmd": ("exec",),
        "cairn.cli.agents_cmd": ("tools", "skills", "mcp"),
        "cairn.cli.compact_cmd": ("compact",),
        "cairn.cli.session_cmd": ("session",),
        "cairn.cli.checkpoint_cmd": ("checkpoint",),
    }
)
# `cairn mcp list` is built in; cairn-serve adds `cairn mcp serve` to the same group.
cli.extensible.add("mcp")


def _show_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    """A warning is one ``warning: ...`` line on stderr, like every other message, never Python's source excerpt."""
    click.secho(f"warning: {message}", fg="yellow", err=True)


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``cairn`` script."""
    import warnings

    warnings.showwarning = _show_warning
    try:
        # With standalone_mode=False click returns ctx.exit()'s status instead of exiting.
        status = cli.main(args=argv, prog_name="cairn", standalone_mode=False)
        sys.exit(status if isinstance(status, int) else 0)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        show_click_error(exc)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except CairnError as exc:
        fail(exc, 2 if exc.command_line else 1)
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:  # the last resort: a bug, never a user's mistake (see the module docstring)
        if os.environ.get("CAIRN_DEBUG", "").strip() not in ("", "0"):
            raise
        click.secho(f"error: internal error: {type(exc).__name__}: {exc}"[:2000], fg="red", err=True)
        click.echo(
            "  hint: this is a bug in cairn; please report it with the command you ran "
            "(run it again with CAIRN_DEBUG=1 to see the traceback)",
            err=True,
        )
        sys.exit(INTERNAL_ERROR)
