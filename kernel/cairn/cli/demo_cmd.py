"""``cairn demo``: the main job, end to end, offline, on the embedded defaults.

It runs real ``cairn`` commands against a fresh project in a temporary
directory (or one you name) and prints each command before its output, so
the demo doubles as a tour of the command line.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import click

from cairn.cli._app import SafePath

#: The scenario: each step is one command line, as a user would type it.
STEPS: list[tuple[str, list[str]]] = [
    ("Start a project: cairn.toml with offline defaults and a .cairn/ data directory.", ["init"]),
    (
        "Record the context an agent sends to a model, one item per commit.",
        ["commit", "-t", "instruction", "You are a careful research assistant. Cite a source for every figure."],
    ),
    ("", ["commit", "What is the boiling point of water at high altitude?"]),
    ("", ["commit", "--role", "assistant", "It drops by about 1 °C for every 300 m of altitude."]),
    ("", ["commit", "And at the summit of Everest?"]),
    ("", ["commit", "--role", "assistant", "Roughly 70 °C at the summit."]),
    ("", ["commit", "Thanks. Can you summarise the method you used?"]),
    (
        "",
        [
            "commit",
            "--role",
            "assistant",
            "I started from sea-level pressure, applied the barometric formula for the altitude, "
            "then read the boiling point off the Clausius-Clapeyron relation for water.",
        ],
    ),
    (
        "Branch to fix a figure without touching main; edits replace an item in what is materialized.",
        ["switch", "-c", "fact-check"],
    ),
    (
        "",
        ["edit", "HEAD~2", "Roughly 71 °C at the summit (8,849 m, about 34 kPa).", "-m", "correct the Everest figure"],
    ),
    (
        "Pin the question that started it all, so no budget can drop it.",
        ["pin", "HEAD~6", "-r", "the user's original question"],
    ),
    ("History stays whole: every branch, every edit.", ["log", "--graph"]),
    ("What the edit changes in what the model would see:", ["diff", "main", "fact-check"]),
    ("Tokens against the budget (set one in cairn.toml: [context] max_tokens).", ["status"]),
    (
        "Materialize under a tight budget: instructions and pins stay, the rest fills newest first.",
        ["materialize", "--budget", "120", "--format", "text"],
    ),
    (
        "Time travel: the same branch as it was two commits ago, as OpenAI chat messages.",
        ["materialize", "--as-of", "main~2", "--format", "openai"],
    ),
    ("Every stored object verifies against its hash.", ["fsck"]),
    (
        "Record what was done: a command run through the ledger (exit status, duration, code_ref, output).",
        ["run", "--", "git", "--version"],
    ),
    ("", ["runs", "list"]),
    (
        "Talk about it: a message on that run, and an encrypted one (AES-256-GCM; the store never sees the text).",
        ["chat", "send", "--run", "@last", "Checked the Everest figure against two sources."],
    ),
    ("", ["chat", "send", "--run", "@last", "--encrypt", "Internal: the second source is behind a paywall."]),
    ("", ["chat", "list", "--run", "@last"]),
    (
        "Trace a session across separate commands, then keep it in the ledger with a summary.",
        ["trace", "start", "review", "--classification", "fact-check"],
    ),
    ("", ["commit", "--role", "assistant", "Sources: NOAA boiling-point tables; Everest summit survey, 2020."]),
    ("", ["pin", "HEAD", "-r", "the sources"]),
    ("", ["trace", "stop", "review", "--post"]),
    (
        "Keep the ledger in the project's own git repository instead (cairn-git): no worktree, no hooks, "
        "an orphan branch and one annotated tag per run, shared with `cairn ledger push` / `pull`.",
        ["git", "init", "-q"],
    ),
    ("", ["--set", "cairn.storage=git", "run", "--", "git", "--version"]),
    ("", ["--set", "cairn.storage=git", "runs", "list"]),
    ("", ["git", "for-each-ref", "--format=%(refname) %(objecttype) %(subject)", "refs/cairn/runs"]),
    (
        "Score two systems' answers to the same 20 questions (a dataset shipped with cairn-evals): exact match after "
        "normalization, word F1, and a latency limit read from each sample's metadata. Each run is recorded.",
        [
            "eval",
            "run",
            "cairn_evals:datasets/capitals-baseline.jsonl",
            "--name",
            "baseline",
            "-e",
            "exact:ignore_case=true,strip_punctuation=true",
            "-e",
            "token_f1",
            "-e",
            "latency:max_ms=600",
        ],
    ),
    (
        "",
        [
            "eval",
            "run",
            "cairn_evals:datasets/capitals-candidate.jsonl",
            "--name",
            "candidate",
            "-e",
            "exact:ignore_case=true,strip_punctuation=true",
            "-e",
            "token_f1",
            "-e",
            "latency:max_ms=600",
        ],
    ),
    (
        "Compare the newest eval run with the one before, sample by sample: a paired bootstrap and an exact "
        "McNemar test say whether the difference is real.",
        ["eval", "compare", "@prev", "@last"],
    ),
]


@click.command("demo")
@click.option(
    "--dir", "directory", type=SafePath(file_okay=False), help="Project directory (default: a new temporary one)."
)
@click.option("--keep", is_flag=True, help="Keep the temporary project afterwards.")
def demo_command(directory: str | None, keep: bool) -> None:
    """Run the main job end to end on the embedded defaults (SQLite, no network)."""
    # The steps run through the root command this one was called from (the ``cairn`` group),
    # found through click's context rather than imported, so this module never imports its own package.
    cli = click.get_current_context().find_root().command

    if not os.environ.get("CAIRN_CHAT_KEY"):
        # The encrypted message needs a key; a real user exports one made by `cairn chat keygen`.
        from cairn.chat import generate_key

        os.environ["CAIRN_CHAT_KEY"] = generate_key()
    temporary = directory is None
    project = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="cairn-demo-"))
    try:
        project.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.BadParameter(f"cannot create {project}: {exc.strerror or exc}", param_hint="--dir") from None
    click.secho(f"cairn demo in {project}", bold=True)
    try:
        for note, args in STEPS:
            if note:
                click.echo()
                click.secho(f"# {note}", fg="cyan")
            if args[0] == "git":  # plain git, to show what cairn-git wrote (there is no `cairn git`)
                click.secho(f"$ {shlex.join(args)}", bold=True)
                proc = subprocess.run(args, cwd=project, capture_output=True, text=True)
                click.echo(proc.stdout, nl=False)
                if proc.returncode != 0:
                    raise click.ClickException(f"step `{shlex.join(args)}` failed: {proc.stderr.strip()}")
                continue
            click.secho(f"$ cairn {shlex.join(args)}", bold=True)
            status = cli.main(args=["-C", str(project), *args], prog_name="cairn", standalone_mode=False)
            if isinstance(status, int) and status != 0:
                raise click.ClickException(f"step `cairn {shlex.join(args)}` exited with {status}")
        click.echo()
        click.secho(
            "Done: versioned context with a branch, an edit, a pin, a budget and time travel; "
            "a recorded run with chat on it; a session trace; a run in a git ledger; "
            "two evaluation runs compared.",
            fg="green",
        )
    finally:
        if temporary and not keep:
            shutil.rmtree(project, ignore_errors=True)
        elif temporary:
            click.echo(f"project kept in {project}")


def register(cli: click.Group) -> None:
    cli.add_command(demo_command)
