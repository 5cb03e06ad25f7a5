"""Chat, threads and session traces: ``cairn chat ...``, ``cairn thread ...``, ``cairn trace ...``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from cairn.cli._app import Count, State, echo_json, json_option, pass_state, plural, print_table, read_stdin

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import ChatSettings

__all__ = ["register"]


def register(cli: click.Group) -> None:
    cli.add_command(chat_group)
    cli.add_command(thread_group)
    cli.add_command(trace_group)


def _chat(state: State) -> Any:
    from cairn.chat import Chat

    settings = state.config.settings("chat", _chat_settings())
    ledger = state.ledger
    return Chat(state.store, key_env=settings.key_env, user=ledger.user, redactor=ledger.redactor)


def _chat_settings() -> type[ChatSettings]:
    from cairn.config import ChatSettings

    return ChatSettings


@click.group("chat")
def chat_group() -> None:
    """Messages on runs and threads, optionally encrypted."""


@chat_group.command("send")
@click.argument("text")
@click.option("--run", "run_id", metavar="ID", help="Attach the message to this run (@last: the newest).")
@click.option("--thread", "thread_id", metavar="ID", help="Append the message to this thread.")
@click.option("--encrypt", is_flag=True, help="Seal the text with the key in [chat] key_env.")
@click.option("--publish", is_flag=True, help="Flag the message for publishing.")
@click.option(
    "--attach",
    "attach",
    multiple=True,
    metavar="FILE",
    help="Store FILE by hash and reference it from the message (repeatable).",
)
@json_option("Print the stored message as JSON.")
@pass_state
def chat_send(
    state: State,
    text: str,
    run_id: str | None,
    thread_id: str | None,
    encrypt: bool,
    publish: bool,
    attach: tuple[str, ...],
    as_json: bool,
) -> None:
    """Send TEXT (- reads stdin) to a run, a thread, both, or the general thread."""
    from pathlib import Path

    from cairn.model.chat import new_message_id

    if text == "-":
        text = read_stdin("the message")
    if run_id is not None:
        run_id = state.ledger.resolve(run_id)
    chat = _chat(state)
    message_id = new_message_id()
    attachments = []
    if attach:
        from cairn.cli.artifacts_cmd import open_artifacts

        chat.check_send(text, run_id=run_id, thread_id=thread_id, encrypt=encrypt)  # before any file is stored
        with open_artifacts(state, "cairn chat send --attach") as artifacts:
            for path in attach:
                record = artifacts.put(Path(path), name=Path(path).name, referrer=f"chat:{message_id}")
                attachments.append(record.ref)
    message = chat.send(
        text,
        run_id=run_id,
        thread_id=thread_id,
        encrypt=encrypt,
        publish=publish,
        attachments=attachments,
        message_id=message_id,
    )
    if as_json:
        echo_json(message.to_record())
        return
    where = " and ".join(
        p for p in (f"run {run_id}" if run_id else "", f"thread {message.thread_id}" if message.thread_id else "") if p
    )
    files = f" with {plural(len(attachments), 'attachment')}" if attachments else ""
    click.echo(f"sent {message.id} to {where}{files}" + (" (encrypted)" if encrypt else ""))


@chat_group.command("list")
@click.option("--run", "run_id", metavar="ID", help="Messages on this run (@last: the newest).")
@click.option("--thread", "thread_id", metavar="ID", help="Messages in this thread.")
@click.option("--published", is_flag=True, help="Only messages flagged for publishing.")
@click.option("-n", "--limit", type=Count(), default=50, show_default=True)
@json_option()
@pass_state
def chat_list(
    state: State, run_id: str | None, thread_id: str | None, published: bool, limit: int, as_json: bool
) -> None:
    """Messages, newest first; encrypted ones are opened when the key is set."""
    if run_id and thread_id:
        raise click.UsageError("give --run or --thread, not both")
    if run_id is not None:
        run_id = state.ledger.get(run_id).run_id  # a mistyped id is an error, not an empty list
    shown = _chat(state).list(run_id=run_id, thread_id=thread_id, limit=limit, published=True if published else None)
    if as_json:
        echo_json([m.to_dict() for m in shown])
        return
    if not shown:
        click.echo("no messages")
        return
    for item in shown:
        m = item.message
        where = m.thread_id or ""
        if m.run_id:
            where = f"{where} run {m.run_id}".strip()
        flags = "".join(f for f, on in ((" 🔒", m.encrypted), (" [published]", m.publish)) if on)
        click.echo(f"{m.ts[:19]} {m.user or '?'} ({where}){flags}: {item.text}")
        for ref in m.attachments:
            click.echo(f"    [attached {ref.describe()}]")


@chat_group.command("keygen")
def chat_keygen() -> None:
    """Print a new random 256-bit key for [chat] key_env (export it; never commit it)."""
    from cairn.chat import generate_key

    click.echo(generate_key())


@click.group("thread")
def thread_group() -> None:
    """Create and list chat threads."""


@thread_group.command("new")
@click.argument("title")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--run", "anchor_run", metavar="ID", help="The run this thread is about.")
@click.option("--id", "thread_id", help="Choose the thread id (default: generated).")
@json_option("Print the thread as JSON.")
@pass_state
def thread_new(
    state: State, title: str, tags: tuple[str, ...], anchor_run: str | None, thread_id: str | None, as_json: bool
) -> None:
    """Start a thread called TITLE."""
    thread = _chat(state).new_thread(title, tags=tags, anchor_run=anchor_run, thread_id=thread_id)
    if as_json:
        echo_json(thread.to_record())
        return
    click.echo(f"created thread {thread.thread_id}")


@thread_group.command("list")
@json_option()
@pass_state
def thread_list(state: State, as_json: bool) -> None:
    """Threads, newest first."""
    threads = _chat(state).threads()
    if as_json:
        echo_json([t.to_record() for t in threads])
        return
    print_table(
        ["thread", "title", "created", "by", "run", "tags"],
        [[t.thread_id, t.title, t.created_at[:19], t.created_by, t.anchor_run, ",".join(t.tags)] for t in threads],
    )


# -- traces --------------------------------------------------------------------------------


def _active(state: State) -> Any:
    from cairn.tracing import ActiveRecordings

    return ActiveRecordings(state.config.data_dir)


@click.group("trace")
def trace_group() -> None:
    """Record what later cairn commands do, across invocations, into the ledger."""


@trace_group.command("start")
@click.argument("name")
@click.option("--classification", default="general", show_default=True, help="What kind of session this is.")
@pass_state
def trace_start(state: State, name: str, classification: str) -> None:
    """Start recording as NAME; later commands append their events until `cairn trace stop NAME`."""
    from cairn.ledger import current_code_ref

    config = state.config
    _active(state).start(
        name,
        classification=classification,
        user=state.ledger.user,
        code_ref=current_code_ref(config.project_dir or config.cwd),
    )
    click.echo(f"recording {name}")


@trace_group.command("stop")
@click.argument("name")
@click.option("--post", is_flag=True, help="Also post the summary as a chat message on the trace's run.")
@json_option("Print the saved run as JSON.")
@pass_state
def trace_stop(state: State, name: str, post: bool, as_json: bool) -> None:
    """Stop recording NAME and save it in the ledger as a `trace` run."""
    from cairn.tracing import save_trace

    trace = _active(state).stop(name)
    run = save_trace(trace, state.ledger, chat=_chat(state) if post else None)
    if as_json:
        echo_json(run.to_record())
        return
    click.echo(trace.summary)
    click.echo(f"saved as run {run.run_id}")


@trace_group.command("status")
@json_option()
@pass_state
def trace_status(state: State, as_json: bool) -> None:
    """Recordings now running, with their event counts."""
    active = _active(state)
    rows = [{**active.header(n), "events": len(active.events(n))} for n in active.names()]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no recording running")
    for row in rows:
        click.echo(f"{row['name']} ({row['classification']}) since {row['started_at'][:19]}: {row['events']} events")


@trace_group.command("list")
@click.option("-n", "--limit", type=Count(), default=20, show_default=True)
@json_option()
@pass_state
def trace_list(state: State, limit: int, as_json: bool) -> None:
    """Saved traces, newest first."""
    runs = state.ledger.list(type="trace", limit=limit)
    if as_json:
        echo_json([r.to_record() for r in runs])
        return
    print_table(["run", "started", "summary"], [[r.run_id, r.started_at[:19], r.summary] for r in runs])


@trace_group.command("show")
@click.argument("run_id")
@json_option()
@pass_state
def trace_show(state: State, run_id: str, as_json: bool) -> None:
    """A saved trace: its summary and events (RUN_ID: an id, or @last, @prev, @last~N among traces)."""
    run = state.ledger.get(run_id, type="trace")
    events = state.ledger.events(run.run_id)
    if as_json:
        echo_json({"run": run.to_record(), "events": [e.to_record() for e in events]})
        return
    click.echo(run.summary)
    for event in events:
        click.echo(f"{event.seq:>4} {event.ts[:23]} {event.type}")
