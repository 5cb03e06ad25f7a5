"""``cairn compact``: summarise older items into a compaction commit (``cairn.compaction``)."""

from __future__ import annotations

import click

from cairn.cli._app import Count, State, echo_json, json_option, pass_state
from cairn.cli._summarizer import summarizer_for

__all__ = ["compact_command", "register"]


def register(cli: click.Group) -> None:
    cli.add_command(compact_command)


@click.command("compact")
@click.option(
    "--keep-last",
    type=Count(min=0),
    help="Keep this many newest items as they are (default: [context] compact_keep_last).",
)
@click.option(
    "--target-tokens", type=Count(), help="Compact the oldest runs only until the context fits this many tokens."
)
@click.option(
    "--dry-run", is_flag=True, help="Show what would be summarised, by whom and with which prompt; write nothing."
)
@click.option("--branch", help="Compact this branch (default: the current one).")
@json_option()
@pass_state
def compact_command(
    state: State, keep_last: int | None, target_tokens: int | None, dry_run: bool, branch: str | None, as_json: bool
) -> None:
    """Summarise older items into one compaction commit; pinned items, instructions and the newest stay.

    History keeps the originals: `cairn materialize --no-compaction` and
    --as-of a time before the compaction show them.
    """
    repo = state.repo
    if branch is not None:
        from cairn.model import validate_branch_name

        validate_branch_name(branch, existing=True)
    summarize, name = summarizer_for(state.config, state.plugins, state.store, repo, lambda: state.ledger)
    result = repo.compact(
        keep_last=keep_last,
        target_tokens=target_tokens,
        dry_run=dry_run,
        branch=branch,
        summarize=summarize,
        summarizer=name,
        ledger=state.ledger if _keeps_ledger(state) else None,
    )
    if as_json:
        echo_json(result.to_dict())
        return
    if not result.runs:
        click.echo(f"nothing to compact on {result.branch}: {result.tokens_before} tokens", err=True)
        return
    who = "extractive summaries (no model)" if result.prompt is None else f"{result.summarizer}"
    head = "would replace" if dry_run else "replaced"
    click.echo(
        f"{head} {result.replaced} items ({result.replaced_tokens} tokens) with {len(result.runs)} "
        f"{'summary' if len(result.runs) == 1 else 'summaries'} by {who}"
    )
    for n, run in enumerate(result.runs, 1):
        click.echo(f"  summary {n}: {len(run)} items, {run[0][:12]} .. {run[-1][:12]}")
    if result.prompt is not None:
        click.echo(f"prompt {result.prompt_version}: {result.prompt}")
    if result.skipped:
        click.echo(f"nothing committed: {result.skipped}", err=True)
    elif result.commit is not None:
        click.echo(
            f"[{result.branch} {result.commit.short}] {result.commit.message}; "
            f"{result.tokens_before} -> {result.tokens_after} tokens"
        )


def _keeps_ledger(state: State) -> bool:
    """Whether the store keeps a run ledger (the compaction is recorded there)."""
    from cairn.storage import RunStore

    return isinstance(state.store, RunStore)
