"""Memory commands: ``cairn search`` and the ``cairn memory`` group.

``cairn memory index`` / ``reindex`` embed what is not embedded yet (with a
progress bar on a terminal); ``add``, ``search``, ``similar`` and
``collections`` work on collections of arbitrary documents, as llm users
know them; ``remember``, ``facts``, ``forget`` and ``consolidate`` keep the
memory tiers on the ``memory`` branch. NumPy and the embedder load only in
the commands that need them.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import click

from cairn.cli._app import Count, State, echo_json, json_option, pass_state, print_table, read_text_file

if TYPE_CHECKING:  # pragma: no cover
    from cairn.memory import Memory, Result

__all__ = ["register"]


def register(cli: click.Group) -> None:
    cli.add_command(search_command)
    cli.add_command(memory_group)


@contextlib.contextmanager
def _memory(state: State) -> Iterator[Memory]:
    from cairn.memory import Memory

    memory = Memory.open(state.repo, state.config, state.plugins)
    try:
        yield memory
    finally:
        memory.close()


@contextlib.contextmanager
def _progress(total: int, label: str, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr when it is a terminal (and there is work); nothing otherwise."""
    if not enabled or total == 0 or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _since(value: str | None) -> str | None:
    if value is None:
        return None
    from cairn.ledger import parse_age, time_ago
    from cairn.model import format_time, parse_time

    if re.match(r"\A\s*\d{1,30}\s*[smhdw]\s*\Z", value):
        return time_ago(parse_age(value))
    return format_time(parse_time(value))


def _show_results(results: list[Result], as_json: bool) -> None:
    if as_json:
        echo_json([r.to_dict() for r in results])
        return
    if not results:
        click.echo("no results", err=True)
        return
    rows = []
    for r in results:
        d = r.to_dict()
        rows.append(
            [f"{r.score:.4f}", d["kind"] if d["kind"] != "collection" else d["collection"], d["id"], d["snippet"]]
        )
    print_table(["score", "kind", "id", "snippet"], rows)


_MODE = click.Choice(["semantic", "lexical", "hybrid"])
#: k is refused out of range (a huge k is a mistake, not "no limit").
_K = click.IntRange(1, 10_000)


# -- cairn search ---------------------------------------------------------------------------


@click.command("search")
@click.argument("query")
@click.option("-k", "k", type=_K, default=10, show_default=True, help="How many results (1 to 10000).")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(["context", "runs", "chat", "memory"]),
    help="Only this kind (repeatable).",
)
@click.option("--branch", help="Only context items of this branch.")
@click.option("--since", help="Only items created at or after this time (ISO-8601) or this long ago (7d, 12h).")
@click.option("--mode", type=_MODE, help="semantic, lexical or hybrid (default: hybrid when vectors exist).")
@json_option()
@pass_state
def search_command(
    state: State,
    query: str,
    k: int,
    kinds: tuple[str, ...],
    branch: str | None,
    since: str | None,
    mode: str | None,
    as_json: bool,
) -> None:
    """Search context, runs, chat and memory for QUERY (what `cairn memory index` made searchable)."""
    from cairn.memory.search import kinds_to_collections

    collections = kinds_to_collections(kinds) or ["@context", "@runs", "@chat", "@memory"]
    with _memory(state) as memory, _charged(state, memory, "search", mode=mode or "default", k=k):
        results = memory.search(query, k=k, mode=mode, collections=collections, branch=branch, since=_since(since))
    _show_results(results, as_json)


@contextlib.contextmanager
def _charged(state: State, memory: Any, subtype: str, **metadata: Any) -> Iterator[None]:
    """Charge the embedding calls made inside to a ``memory`` run, recorded only if there were any.

    A lexical search calls no provider and leaves no run; a semantic one
    leaves one run (its metadata: subtype, mode and k, never the query), so
    `cairn logs` finds the call.
    """
    from cairn.storage import RunStore

    if not isinstance(state.store, RunStore):
        yield
        return
    from cairn.events import bus
    from cairn.memory.sources import MEMORY_RUN_TYPE
    from cairn.model import new_run_id, now
    from cairn.providers import CALL_EVENT

    run_id, started, calls = new_run_id(MEMORY_RUN_TYPE), now(), []
    meter = getattr(memory.embedder, "meter", None)
    if meter is not None:
        meter.run_id = run_id
    unsubscribe = bus.subscribe(CALL_EVENT, lambda e: calls.append(1) if e.payload.get("run_id") == run_id else None)
    try:
        yield
    finally:
        unsubscribe()
        if meter is not None:
            meter.run_id = None
        if calls:
            status = "ok" if sys.exc_info()[0] is None else "failed"
            state.ledger.record(
                MEMORY_RUN_TYPE, run_id=run_id, started_at=started, status=status, subtype=subtype, metadata=metadata
            )


# -- cairn memory ---------------------------------------------------------------------------


@click.group("memory")
def memory_group() -> None:
    """Stored embeddings, collections, facts and episodes."""


@memory_group.command("index")
@click.option("--batch", type=Count(ceiling=65_536), default=256, show_default=True, help="Texts per embedding call.")
@json_option("Print what was done as JSON.")
@pass_state
def index_command(state: State, batch: int, as_json: bool) -> None:
    """Gather context, runs, chat and memory into documents and embed those not embedded yet.

    Resumable and idempotent: a batch is stored in one transaction, so a run
    stopped mid-way keeps what it stored and the next run embeds the rest.
    """
    with _memory(state) as memory:
        synced = memory.sync()
        pending = memory.pending()
        with _progress(pending, "embedding", not as_json) as progress, _index_run(state, memory, "index") as run:
            report = memory.embed(batch=batch, progress=progress)
            run.close("ok", summary=f"embedded {report.embedded} of {report.texts} texts", metadata=report.to_dict())
    _report_index(dict(synced), report, as_json)


@memory_group.command("reindex")
@click.option("--batch", type=Count(ceiling=65_536), default=256, show_default=True, help="Texts per embedding call.")
@json_option("Print what was done as JSON.")
@pass_state
def reindex_command(state: State, batch: int, as_json: bool) -> None:
    """Drop every stored vector and index, and embed everything again with the configured embedder."""
    with _memory(state) as memory:
        synced = memory.sync()
        total = len(memory.documents.text_hashes())
        with _progress(total, "re-embedding", not as_json) as progress, _index_run(state, memory, "reindex") as run:
            report = memory.reindex(batch=batch, progress=progress)
            run.close("ok", summary=f"embedded {report.embedded} of {report.texts} texts", metadata=report.to_dict())
    _report_index(dict(synced), report, as_json)


@contextlib.contextmanager
def _index_run(state: State, memory: Any, subtype: str) -> Iterator[Any]:
    """A ``memory`` run in the ledger that the embedding calls' spend points at, so `cairn logs` finds them.

    On a store without the run ledger the calls are still metered (spend), with no run to point at.
    """
    from cairn.memory.sources import MEMORY_RUN_TYPE
    from cairn.storage import RunStore

    if not isinstance(state.store, RunStore):
        yield _NoRun()
        return
    meter = getattr(memory.embedder, "meter", None)
    with state.ledger.open(MEMORY_RUN_TYPE, subtype=subtype) as run:
        if meter is not None:
            meter.run_id = run.run_id
        try:
            yield run
        finally:
            if meter is not None:
                meter.run_id = None


class _NoRun:
    def close(self, *args: Any, **kwargs: Any) -> None:
        return None


def _report_index(synced: dict[str, int], report: Any, as_json: bool) -> None:
    if as_json:
        echo_json({"documents": synced, **report.to_dict()})
        return
    rate = f", {report.embedded / report.seconds:,.0f} texts/s" if report.embedded and report.seconds > 0 else ""
    click.echo(
        f"documents: {synced['written']} written, {synced['removed']} removed; "
        f"embedded {report.embedded} of {report.texts} texts in {report.batches} batches "
        f"({report.seconds:.2f}s{rate}) with {report.identity.describe()}; the index holds {report.indexed}"
    )


def _entries_from_file(path: str, fmt: str | None) -> list[tuple[str, str, dict[str, Any]]]:
    from cairn.errors import ValidationError

    text = read_text_file(path, "file")
    kind = fmt or ("jsonl" if path.endswith((".jsonl", ".ndjson")) else "csv" if path.endswith(".csv") else None)
    if kind is None:
        raise ValidationError(f"cannot tell the format of {path}", hint="use --format jsonl or --format csv")
    out: list[tuple[str, str, dict[str, Any]]] = []
    if kind == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValidationError(f"{path}, line {number}: not JSON ({exc.msg})") from None
            if (
                not isinstance(row, dict)
                or not isinstance(row.get("id"), (str, int))
                or not isinstance(row.get("text"), str)
            ):
                raise ValidationError(f'{path}, line {number}: expected {{"id": ..., "text": ..., "metadata": {{}}}}')
            meta = row.get("metadata") or {}
            if not isinstance(meta, dict):
                raise ValidationError(f"{path}, line {number}: metadata must be an object")
            out.append((str(row["id"]), row["text"], meta))
        return out
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"id", "text"} <= set(reader.fieldnames):
        raise ValidationError(f"{path}: a CSV needs the columns id and text", hint="put a header line: id,text")
    for number, row in enumerate(reader, start=2):
        if not row.get("id") or row.get("text") is None:
            raise ValidationError(f"{path}, line {number}: empty id or text")
        meta = {k: v for k, v in row.items() if k not in ("id", "text") and k is not None}
        out.append((row["id"], row["text"], meta))
    return out


@memory_group.command("add")
@click.argument("collection")
@click.argument("id", required=False)
@click.argument("text", required=False)
@click.option("--file", "path", help="Read TEXT from this file; or, with no ID, many entries (JSONL or CSV).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), help="The bulk file's format.")
@click.option("--no-embed", is_flag=True, help="Store the text only; `cairn memory index` embeds it later.")
@json_option()
@pass_state
def add_command(
    state: State,
    collection: str,
    id: str | None,
    text: str | None,
    path: str | None,
    fmt: str | None,
    no_embed: bool,
    as_json: bool,
) -> None:
    """Add a document to COLLECTION: ID and TEXT, ID and --file, or a JSONL/CSV --file of many."""
    from cairn.errors import ValidationError

    entries: list[tuple[str, str, dict[str, Any]]]
    if id is not None and text is not None and path is None:
        entries = [(id, text, {})]
    elif id is not None and text is None and path is not None:
        entries = [(id, read_text_file(path, "file"), {})]
    elif id is None and text is None and path is not None:
        entries = _entries_from_file(path, fmt)
    else:
        raise ValidationError(
            "give ID and TEXT, ID and --file, or only --file (JSONL or CSV) for many",
            what="cairn memory add",
            command_line=True,
        )
    with _memory(state) as memory:
        from cairn.model.embedding import check_collection

        check_collection(collection, builtin=False)
        with _progress(len(entries), "embedding", not as_json and not no_embed) as progress:
            count = memory.add(collection, entries, embed=not no_embed, progress=progress)
    if as_json:
        echo_json({"collection": collection, "added": count, "embedded": not no_embed})
    else:
        click.echo(f"added {count} to {collection}" + ("" if not no_embed else " (not embedded yet)"))


@memory_group.command("search")
@click.argument("collection")
@click.argument("query")
@click.option("-k", "k", type=_K, default=10, show_default=True, help="How many results (1 to 10000).")
@click.option("--mode", type=_MODE, help="semantic, lexical or hybrid (default: hybrid when vectors exist).")
@json_option()
@pass_state
def collection_search_command(
    state: State, collection: str, query: str, k: int, mode: str | None, as_json: bool
) -> None:
    """Search one COLLECTION for QUERY."""
    with _memory(state) as memory:
        memory.require_collection(collection)
        results = memory.search(query, k=k, mode=mode, collections=[collection])
    _show_results(results, as_json)


@memory_group.command("similar")
@click.argument("collection")
@click.argument("id")
@click.option("-k", "k", type=_K, default=10, show_default=True, help="How many results (1 to 10000).")
@json_option()
@pass_state
def similar_command(state: State, collection: str, id: str, k: int, as_json: bool) -> None:
    """The documents of COLLECTION most similar to document ID."""
    with _memory(state) as memory:
        results = memory.similar(collection, id, k=k)
    _show_results(results, as_json)


@memory_group.command("collections")
@json_option()
@pass_state
def collections_command(state: State, as_json: bool) -> None:
    """Every collection with how many documents it holds (cairn's own start with @)."""
    with _memory(state) as memory:
        names = memory.collection_names()
        counts = memory.vectors.vector_counts()
    if as_json:
        echo_json(
            {
                "collections": names,
                "vectors": [{"embedder": i.to_dict(), "count": n} for i, n in counts.items()],
            }
        )
        return
    if not names:
        click.echo("no collections yet: `cairn memory add NAME ID TEXT`, or `cairn memory index`", err=True)
        return
    print_table(["collection", "documents"], sorted(names.items()))


# -- tiers --------------------------------------------------------------------------------


def _show_items(items: list[Any], as_json: bool, what: str) -> None:
    if as_json:
        echo_json([m.to_dict() for m in items])
        return
    if not items:
        click.echo(f"no {what}", err=True)
        return
    rows = []
    for m in items:
        content = m.content
        about = getattr(content, "subject", None) or getattr(content, "branch", "") or ""
        rows.append([m.id[:12], m.commit.created_at[:19], content.content_type.split(".")[-1], about, content.text])
    print_table(["id", "time", "type", "subject", "text"], rows)


@memory_group.command("remember")
@click.argument("text")
@click.option("--subject", help="What the fact is about.")
@click.option("--supersedes", help="The id of an older fact this one replaces.")
@click.option("--source", help="Where the fact came from: episode:<hash> or commit:<hash> (a revision is resolved).")
@json_option()
@pass_state
def remember_command(
    state: State, text: str, subject: str | None, supersedes: str | None, source: str | None, as_json: bool
) -> None:
    """Keep a long-term fact (on the memory branch: versioned, pushed and pulled like context)."""
    with _memory(state) as memory:
        branch = memory.branch
        source = memory.source(source) if source else None
        item = (
            branch.supersede(supersedes, text, subject=subject, source=source)
            if supersedes
            else branch.remember(text, subject=subject, source=source)
        )
    if as_json:
        echo_json(item.to_dict())
    else:
        click.echo(f"remembered {item.id[:12]}" + (f" (supersedes {supersedes})" if supersedes else ""))


@memory_group.command("facts")
@click.option("--subject", help="Only facts about this subject.")
@click.option("--as-of", "as_of", help="The facts as they were at this time (ISO-8601).")
@json_option()
@pass_state
def facts_command(state: State, subject: str | None, as_of: str | None, as_json: bool) -> None:
    """The current facts, newest first (forgotten and superseded ones are left out)."""
    with _memory(state) as memory:
        items = memory.branch.facts(subject=subject, as_of=_since(as_of))
    _show_items(items, as_json, "facts")


@memory_group.command("episodes")
@click.option("--branch", help="Only episodes of this branch.")
@json_option()
@pass_state
def episodes_command(state: State, branch: str | None, as_json: bool) -> None:
    """The episodes, newest first."""
    with _memory(state) as memory:
        items = memory.branch.episodes(branch=branch)
    _show_items(items, as_json, "episodes")


@memory_group.command("forget")
@click.argument("ident", metavar="ID")
@json_option()
@pass_state
def forget_command(state: State, ident: str, as_json: bool) -> None:
    """Forget a fact or episode: it leaves recall and search; history keeps it."""
    with _memory(state) as memory:
        item = memory.branch.forget(ident)
    if as_json:
        echo_json({"forgotten": item.id})
    else:
        click.echo(f"forgot {item.id[:12]}")


@memory_group.command("consolidate")
@json_option()
@pass_state
def consolidate_command(state: State, as_json: bool) -> None:
    """Summarise history no episode covers yet, per branch, into episodes (extractive with the noop LLM)."""
    from cairn.memory.tiers import consolidate
    from cairn.model.memory import Episode

    with _memory(state) as memory:
        summarize = _llm_summarizer(state) if state.config.cairn.llm != "noop" else None
        made = consolidate(memory.branch, summarize)
    if as_json:
        echo_json([m.to_dict() for m in made])
        return
    if not made:
        click.echo("nothing new to consolidate", err=True)
    for m in made:
        episode = m.content
        assert isinstance(episode, Episode)  # consolidate makes episodes only
        click.echo(f"episode {m.id[:12]} for {episode.branch}: {episode.commits} commits ({episode.summarizer})")


def _llm_summarizer(state: State) -> Callable[[list[str]], tuple[str, str, dict[str, Any]]]:
    from cairn.providers import Providers
    from cairn.storage import RunStore
    from cairn.summarize import llm_summarizer

    providers = Providers(state.config, state.plugins, store=state.store, tokenizer=state.repo.tokenizer)
    # Each summary is a provider call of its own in `cairn logs` (operation `consolidate`).
    ledger = state.ledger if isinstance(state.store, RunStore) else None
    return llm_summarizer(providers, CONSOLIDATE_PROMPT, purpose="consolidate", ledger=ledger, branch=state.repo.branch)


#: What ``cairn memory consolidate`` asks the LLM for each episode.
CONSOLIDATE_PROMPT = (
    "Summarize this stretch of an agent's history in a short paragraph: "
    "what was asked, what was done, what was decided. Plain text only."
)
