"""Reading the versioned context: log, show, diff, materialize and status."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

import click

from cairn.cli._app import Count, State, echo_json, json_option, pass_state, plural, print_fields

if TYPE_CHECKING:  # pragma: no cover  (the model is imported when a command runs, not for --help)
    from cairn.model import Commit, Content


def register(cli: click.Group) -> None:
    for command in (log_command, show_command, diff_command, materialize_command, status_command):
        cli.add_command(command)


def summary(content: Content | None, width: int = 60) -> str:
    """A content item's searchable text on one line, cut to ``width`` characters."""
    if content is None:
        return ""
    text = content.text_for_search().replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def one_line(commit: Commit, content: Content | None) -> str:
    """What a commit did, in a few words: ``dialogue: the text…``, ``edit 1a2b3c4d: the new text…``, ``delete 1a2b3c4d``."""
    operation = commit.operation.value
    if operation in ("append", "compact"):
        what = (commit.content_type or "") if operation == "append" else operation
    else:
        what = f"{operation} {(commit.target or '')[:8]}"
    text = summary(content, 50).strip() or commit.message
    return f"{what}: {text}" if text else what


def commit_dict(repo: Any, commit: Commit, content: Content | None = None) -> dict[str, Any]:
    """A commit as ``--json`` prints it: its record, with its content when given."""
    data = commit.to_record()
    if content is not None:
        data["content"] = content.to_dict()
    return data


@click.command("log")
@click.argument("rev", required=False)
@click.option("-n", "--limit", type=Count(), help="At most this many commits.")
@click.option("-t", "--type", "content_type", help="Only this content type.")
@click.option("--since", help="Only commits at or after this: 7d, 12h, today, yesterday, a date or an ISO time.")
@click.option("--until", help="Only commits at or before this: 7d, 12h, today, yesterday, a date or an ISO time.")
@click.option("--grep", help="Only commits whose message or text contains this (case-insensitive).")
@click.option("--graph", is_flag=True, help="Draw every branch as a graph.")
@click.option("--oneline", is_flag=True, help="One short line per commit: hash, type and text (as git log --oneline).")
@json_option()
@pass_state
def log_command(
    state: State,
    rev: str | None,
    limit: int | None,
    content_type: str | None,
    since: str | None,
    until: str | None,
    grep: str | None,
    graph: bool,
    oneline: bool,
    as_json: bool,
) -> None:
    """Show history, newest first."""
    repo = state.repo
    if graph:
        _log_graph(repo, limit)
        return
    if since is not None or until is not None:
        from cairn.ledger import parse_moment

        since = parse_moment(since, "--since") if since is not None else None
        until = parse_moment(until, "--until") if until is not None else None
    entries = repo.log(rev, limit=limit, content_type=content_type, since=since, until=until, grep=grep)
    if as_json:
        echo_json([commit_dict(repo, e.commit, e.content) for e in entries])
        return
    in_force = set(repo.directives(rev).values()) if any(_named(e.content) for e in entries) else set()
    for entry in entries:
        c = entry.commit
        if oneline:
            click.echo(f"{click.style(c.short[:8], fg='yellow')} {one_line(c, entry.content)}")
            continue
        target = f" → {c.target[:8]}" if c.target else ""
        label = c.content_type or ""
        directive = ""
        if getattr(entry.content, "content_type", None) == "instruction":
            priority, source = repo.priority(c.hash)
            directive = f" [{priority.value}{'' if source == 'annotation' else ' by default'}]"
        if _named(entry.content):
            state_of = "in force" if (c.target or c.hash) in in_force else "superseded"
            # _named checked that the content is an instruction with a name
            directive = f" [{entry.content.name}: {state_of}]"  # type: ignore[union-attr]
        click.echo(
            f"{click.style(c.short, fg='yellow')} {c.created_at[:19]} {c.operation.value:<6}{target} "
            f"{label:<11} {summary(entry.content)}{directive}" + (f"  # {c.message}" if c.message else "")
        )


def _named(content: Any) -> bool:
    """A named directive: an instruction with a ``name``."""
    return getattr(content, "content_type", None) == "instruction" and bool(getattr(content, "name", None))


def _log_graph(repo: Any, limit: int | None) -> None:
    """Every branch as a tree, newest first: one lane per line of descent."""
    branches = repo.branches()
    labels: dict[str, list[str]] = {}
    for name, digest in branches.items():
        labels.setdefault(digest, []).append(name)
    _, head = repo.head_state()
    if head:
        labels.setdefault(head, []).insert(0, "HEAD")
    commits: dict[str, Any] = {}
    for digest in set(branches.values()) | ({head} if head else set()):
        for commit in repo.walk(repo.commit(digest)):
            if commit.hash in commits:
                break
            commits[commit.hash] = commit
    ordered = sorted(commits.values(), key=lambda c: (c.created_at, c.depth), reverse=True)
    if limit:
        ordered = ordered[:limit]
    # One lane per line of descent; a lane keeps its column until it ends, so rows stay aligned.
    lanes: list[str | None] = []
    for commit in ordered:
        if commit.hash in lanes:
            column = lanes.index(commit.hash)
        elif None in lanes:
            column = lanes.index(None)  # a tip takes the column of a line of descent that ended
            lanes[column] = commit.hash
        else:
            lanes.append(commit.hash)
            column = len(lanes) - 1
        row = "".join("* " if i == column else ("| " if lane else "  ") for i, lane in enumerate(lanes))
        names = f" ({', '.join(labels[commit.hash])})" if commit.hash in labels else ""
        content = repo.content_of(commit) if commit.content_hash else None
        click.echo(
            f"{row}{click.style(commit.short, fg='yellow')}{click.style(names, fg='green')} "
            f"{commit.operation.value} {commit.content_type or ''} {summary(content, 50)}".rstrip()
        )
        lanes[column] = commit.parent
        if commit.parent:
            # Lines of descent that meet at the parent (a fork, seen from above) join the leftmost of them.
            sharing = [i for i, lane in enumerate(lanes) if lane == commit.parent]
            for i in reversed(sharing[1:]):
                click.echo(_join_row(lanes, sharing[0], i))
                del lanes[i]  # the lanes to its right move one column left, as the row drew
        while lanes and lanes[-1] is None:
            lanes.pop()


def _join_row(lanes: list[str | None], keep: int, joining: int) -> str:
    """The row that draws lane ``joining`` running into lane ``keep`` on its left (``|/``, ``|_|/`` further
    out) and every lane to its right moving one column left (`` /``)."""
    chars = [" "] * (2 * len(lanes))
    for j, lane in enumerate(lanes):
        if j < joining and lane:
            chars[2 * j] = "|"
        elif j > joining and lane:
            chars[2 * j - 1] = "/"
    for j in range(keep, joining - 1):
        chars[2 * j + 1] = "_"
    chars[2 * joining - 1] = "/"
    return "".join(chars).rstrip()


@click.command("show")
@click.argument("rev", required=False)
@json_option()
@pass_state
def show_command(state: State, rev: str | None, as_json: bool) -> None:
    """Show one commit: fields, content and the item's annotations."""
    repo = state.repo
    commit = repo.resolve(rev)
    content = repo.content_of(commit)
    item = commit.hash if commit.operation.value == "append" else commit.target
    history = repo.annotation_store.annotation_history(item) if item else []
    priority, source = repo.priority(commit.hash) if item else (None, None)
    if as_json:
        data = commit_dict(repo, commit, content)
        data["annotations"] = [a.to_record() for a in history]
        data["priority"] = priority.value if priority else None
        data["priority_source"] = source
        echo_json(data)
        return
    keys = ("parent", "operation", "target", "reply_to", "created_at", "content_type", "token_count")
    print_fields(
        [
            ("commit", commit.hash),
            (
                "priority",
                None
                if priority is None
                else f"{priority.value} ({'an annotation' if source == 'annotation' else 'its type default'})",
            ),
            *((key, getattr(commit, key)) for key in keys),
            ("cumulative_tokens", commit.cumulative_tokens),
            ("message", commit.message),
            ("metadata", commit.metadata),
        ]
    )
    if content is not None:
        click.echo("")
        click.echo(json.dumps(content.to_dict(), indent=2, ensure_ascii=False))
    for annotation in history:
        click.echo(f"annotation {annotation.created_at} {annotation.priority.value} {annotation.reason}".rstrip())


@click.command("diff")
@click.argument("a")
@click.argument("b", required=False, default="HEAD")
@json_option()
@pass_state
def diff_command(state: State, a: str, b: str, as_json: bool) -> None:
    """What differs in the materialized context between A and B (default HEAD)."""
    repo = state.repo
    entries = repo.diff(a, b)
    if as_json:
        echo_json(
            [
                {
                    "status": e.status,
                    "item": e.item,
                    "before": e.before.to_dict() if e.before else None,
                    "after": e.after.to_dict() if e.after else None,
                }
                for e in entries
            ]
        )
        return
    if not entries:
        click.echo("no differences")
    marks = {"added": ("+", "green"), "removed": ("-", "red"), "changed": ("~", "yellow")}
    for entry in entries:
        mark, colour = marks[entry.status]
        if entry.status == "changed":
            click.secho(f"{mark} {entry.item[:12]} {summary(entry.before)}  →  {summary(entry.after)}", fg=colour)
        else:
            click.secho(f"{mark} {entry.item[:12]} {summary(entry.after or entry.before)}", fg=colour)


@click.command("materialize")
@click.argument("rev", required=False)
@click.option("--budget", type=Count(), help="Token budget.")
@click.option("--as-of", "as_of", help="A commit or an ISO-8601 time: materialize history as it was then.")
@click.option(
    "--format", "fmt", type=click.Choice(["openai", "anthropic", "text"]), default="openai", show_default=True
)
@click.option(
    "--images", is_flag=True, help="Send artifact references to images as images, for a model that takes them."
)
@click.option(
    "--recall",
    "recall",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="QUERY",
    help="Add the facts and episodes most relevant to QUERY (alone: to the last user turn) as one memory block.",
)
@click.option("--recall-k", type=Count(ceiling=100), help="How many to recall (default: [context] recall_k).")
@click.option("--include-reasoning", is_flag=True, help="Send reasoning items too (held back by default).")
@click.option("--no-compaction", is_flag=True, help="Show the items compactions replaced instead of their summaries.")
@click.option(
    "--keep-pending-calls",
    is_flag=True,
    help="Keep tool calls at the end that have no result yet (left out by default: no API accepts them unanswered).",
)
@click.option(
    "--show-dropped",
    is_flag=True,
    help="List every item left out (reads the whole history; by default only as far as the budget).",
)
@click.option("--json", "as_json", is_flag=True, help="Print messages, counts and dropped items as JSON.")
@pass_state
def materialize_command(
    state: State,
    rev: str | None,
    budget: int | None,
    as_of: str | None,
    fmt: str,
    images: bool,
    recall: str | None,
    recall_k: int | None,
    include_reasoning: bool,
    keep_pending_calls: bool,
    no_compaction: bool,
    show_dropped: bool,
    as_json: bool,
) -> None:
    """Print the context as provider-ready messages within a budget.

    What was left out is counted as far back as the budget reached, so the
    cost follows the budget, not the history; --show-dropped lists everything.
    """
    from cairn.cli.artifacts_cmd import image_reader

    recalled = None
    if keep_pending_calls and recall is not None:
        raise click.UsageError("--keep-pending-calls does not go with --recall")
    with image_reader(state) if images else contextlib.nullcontext() as reader:
        options: dict[str, Any] = {
            "rev": rev,
            "as_of": as_of,
            "budget": budget,
            "format": fmt,
            "images": reader,
            "include_reasoning": include_reasoning,
            "compaction": not no_compaction,
        }
        if keep_pending_calls:  # never with --recall (refused above)
            options["keep_pending_calls"] = True
        if recall is None:
            result = state.repo.materialize(**options)
        else:
            from cairn.memory import Memory
            from cairn.memory.recall import materialize_with_recall

            with Memory.open(state.repo, state.config, state.plugins) as memory:
                k = recall_k or state.config.context.recall_k
                result, recalled = materialize_with_recall(memory, recall or None, k=k, **options)
    if as_json:
        data = result.to_dict(complete=show_dropped)
        if recalled is not None:
            data["recall"] = recalled.to_dict()
        echo_json(data)
        return
    if fmt == "text":
        click.echo(result.messages)
    else:
        echo_json(result.messages)
    dropped = result.dropped if show_dropped else result.dropped_so_far
    reasons: dict[str, int] = {}
    for d in dropped:
        reasons[d.reason] = reasons.get(d.reason, 0) + 1
        if show_dropped:
            click.echo(f"dropped {d.commit[:12]} {d.reason}" + (f" ({d.tokens} tokens)" if d.tokens else ""), err=True)
    detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) or "none"
    if not result.dropped_complete:
        detail += " (and older items the budget did not reach; --show-dropped lists them)"
    click.echo(
        f"{result.commit_count} items, {result.token_count} tokens ({result.token_source})"
        + (f" of {budget}" if budget else "")
        + f"; dropped: {detail}"
        + (
            ""
            if recalled is None
            else f"; recalled {len(recalled.ids)} ({recalled.tokens} tokens)"
            + (f": {recalled.reason}" if recalled.reason else "")
        ),
        err=True,
    )


@click.command("status")
@json_option("Print the bootstrap state as JSON (docs/bootstrap.md): what a UI needs, with no network.")
@pass_state
def status_command(state: State, as_json: bool) -> None:
    """Current branch, HEAD, tokens against the budget, the last call's estimated against reported prompt tokens,
    and whether the project is ready (what blocks it if not)."""
    from cairn.bootstrap_state import bootstrap_state
    from cairn.errors import CairnError

    try:
        config = state.config
    except CairnError as exc:
        if not as_json:
            raise
        from cairn.bootstrap_state import _unreadable

        echo_json(_unreadable(exc))
        return
    if as_json:
        try:
            repo = state.repo
        except CairnError:
            echo_json(bootstrap_state(config, state.plugins))  # its storage section says why the store did not open
            return
        echo_json({**_context_status(repo), **bootstrap_state(config, state.plugins, repo)})
        return
    repo = state.repo
    boot = bootstrap_state(config, state.plugins, repo)
    data = _context_status(repo)
    head = repo.head()
    tokens, budget = data["effective_tokens"], data["max_tokens"]
    click.echo(f"on branch {data['branch']}" if data["branch"] else "HEAD detached")
    click.echo(f"HEAD {head.short if head else '(no commits yet)'}, {plural(head.depth + 1 if head else 0, 'commit')}")
    budget_text = f" of {budget} ({tokens * 100 // budget}%)" if budget else " (no budget set)"
    click.echo(f"effective context: {tokens} tokens{budget_text}, {data['token_source']} by {repo.tokenizer.name}")
    calibration = data["calibration"]
    if calibration is not None:
        by = f" by {calibration['tokenizer']}" if calibration["tokenizer"] else ""
        click.echo(
            f"last call: {calibration['estimated_prompt_tokens']} prompt tokens estimated{by}, "
            f"{calibration['actual_prompt_tokens']} reported by "
            f"{calibration['provider'] or 'the provider'} ({calibration['error']:+.1%}; commit {calibration['commit'][:12]})"
        )
    _print_bootstrap(boot)


def _context_status(repo: Any) -> dict[str, Any]:
    from cairn.calibration import last_calibration

    head = repo.head()
    calibration = last_calibration(repo, head)
    return {
        "branch": repo.branch,
        "head": head.hash if head else None,
        "commits": head.depth + 1 if head else 0,
        "effective_tokens": repo.effective_tokens(head),
        "max_tokens": repo.budget.max_tokens,
        "budget_action": repo.budget.action,
        "tokenizer": repo.tokenizer.name,
        "token_source": "exact" if repo.tokenizer.exact else "estimated",
        "calibration": None if calibration is None else calibration.to_dict(),
    }


def _print_bootstrap(boot: dict[str, Any]) -> None:
    """The bootstrap state in a few lines: providers, what is configured, spend, and what blocks the project."""
    for kind in ("llm", "embeddings"):
        info = boot["providers"][kind]
        if info is not None:
            ready = "ready" if info["ready"] else f"blocked: {info['problem']}"
            click.echo(_short(f"{kind}: {info['name']}{' ' + info['model'] if info['model'] else ''}, {ready}"))
    counts = []
    for key, noun in (("tools", "tool"), ("skills", "skill"), ("mcp_servers", "MCP server")):
        items = boot[key]
        if items:
            counts.append(f"{plural(len(items), noun)} ({sum(i['ready'] for i in items)} ready)")
    if counts:
        click.echo("configured: " + ", ".join(counts))
    spend = boot["spend"]
    if spend and spend["last_7_days"]["calls"]:
        today, week = spend["today"], spend["last_7_days"]

        def money(bucket: dict[str, Any]) -> str:
            return "unknown cost" if bucket["cost"] is None else f"{bucket['cost']:.4f}"

        click.echo(
            f"spend: today {today['input_tokens'] + today['output_tokens']} tokens, {money(today)}; "
            f"7 days {week['input_tokens'] + week['output_tokens']} tokens, {money(week)}"
        )
    broken = [p["name"] for p in boot["plugins"] if p["status"] not in ("ok", "blocked")]
    if broken:
        click.echo(f"plugins not ok: {', '.join(broken)} (see `cairn plugins`)")
    click.echo(f"state: {boot['state']}")
    for reason in boot["reasons"]:
        click.echo(f"  {_short(reason)}")


def _short(text: str, width: int = 160) -> str:
    """One line of at most ``width`` characters: `cairn status --json` has the whole text."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 3] + "..."
