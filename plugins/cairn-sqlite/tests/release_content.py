"""Every kind of data a cairn SQLite store holds, built the same way every time.

``tests/data/cairn-sqlite-0.1.0.db`` is this content written by cairn-sqlite
0.1.0 (the single-module ``store.py``, before the split into facet
modules); ``test_sqlite.py`` opens a copy with today's code and reads it all
back. To make such a file with another release's store module::

    git show <rev>:plugins/cairn-sqlite/cairn_sqlite/store.py > /tmp/old_store.py
    python plugins/cairn-sqlite/tests/release_content.py OUT.db --store-module /tmp/old_store.py

Everything goes through the storage contract only, so any release's
``SqliteStore`` can write it.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

import attrs

from cairn.model import Annotation, Commit, Priority, Run, RunEvent, SpendRecord
from cairn.model.chat import ChatMessage, Thread
from cairn.storage import HEAD, RefUpdate
from cairn.testing.storage import WORDS, Chain, at, make_events, make_run

MAIN = "refs/heads/main"
SIDE = "refs/heads/side"
TAG = "refs/tags/v1"
OTHER_TOKENIZER = "other-tokenizer"


@attrs.frozen
class Content:
    """What ``populate`` writes and a store must read back."""

    chain: Chain
    main: list[Commit]  # oldest first: appends, an edit, a delete
    side: list[Commit]
    refs: dict[str, str]
    annotations: list[Annotation]
    other_counts: dict[str, int]
    runs: list[tuple[Run, list[RunEvent]]]  # as finally stored
    spend: list[SpendRecord]
    threads: list[Thread]
    messages: list[ChatMessage]


def content() -> Content:
    chain = Chain()
    first = chain.append(None, "you are a careful assistant", content_type="instruction", message="system")
    second = chain.append(first, "hello there ✓", metadata={"lang": "en", "nested": {"ok": True}})
    third = chain.append(second, "general kenobi", reply_to=second)
    fourth = chain.append(third, "tool says 42", content_type="tool_io")
    edit = chain.edit(fourth, second, "hello again, edited")
    delete = chain.delete(edit, third, message="drop the quote")
    fifth = chain.append(delete, "après l'édition — ünïcode")
    side_one = chain.append(third, "a side thought")
    side_two = chain.append(side_one, "and another")
    main = [first, second, third, fourth, edit, delete, fifth]
    side = [side_one, side_two]
    refs = {HEAD: "ref: " + MAIN, MAIN: fifth.hash, SIDE: side_two.hash, TAG: third.hash}
    annotations = [
        Annotation(first.hash, Priority.PINNED, "always keep the instruction", at(100)),
        Annotation(third.hash, Priority.SKIP, "noise", at(101)),
        Annotation(third.hash, Priority.NORMAL, "needed after all", at(102)),
        Annotation(side_one.hash, Priority.SKIP, "", at(103)),
    ]
    other_counts = {c.content_hash: 7 * (i + 1) for i, c in enumerate(main) if c.content_hash}
    opened = make_run("20260101T000000.000000Z_job_0a1b2c3d", 200, status="open", summary="first ✓")
    closed = attrs.evolve(opened, status="ok", ended_at=at(260), duration_ms=60000)
    batch = [
        (make_run(f"batch-{i}", 300 + i, type="eval", metadata={"i": i, "label": "é"}), make_events(f"batch-{i}", i))
        for i in range(3)
    ]
    runs = [(closed, make_events(opened.run_id, 5)), *((run, list(events)) for run, events in batch)]
    spend = [
        SpendRecord(
            ts=at(210),
            provider="openai",
            model="gpt-x",
            outcome="ok",
            input_tokens=12,
            output_tokens=3,
            cost=0.00042,
            run_id=opened.run_id,
        ),
        SpendRecord(ts=at(211), provider="noop", model="none", outcome="disabled"),
    ]
    threads = [
        Thread("general", "General", at(400), created_by="ann"),
        Thread("design", "Storage design ✓", at(401), created_by="bob", anchor_run=opened.run_id, tags=["sqlite"]),
    ]
    messages = [
        ChatMessage(id="m-0001", ts=at(410), text="first message", user="ann", thread_id="general"),
        ChatMessage(
            id="m-0002",
            ts=at(411),
            text="about the run — ✓",
            user="bob",
            thread_id="design",
            run_id=opened.run_id,
            publish=True,
        ),
        ChatMessage(id="m-0003", ts=at(412), text="on the run only", run_id=opened.run_id, source="system"),
    ]
    return Content(chain, main, side, refs, annotations, other_counts, runs, spend, threads, messages)


def populate(store: Any, data: Content) -> None:
    """Write ``data`` through the storage contract, the way the engines write it."""
    chain = data.chain
    parent: str | None = None
    for commit in data.main:  # one write per commit, ref moved by compare-and-swap, counts cached alongside
        counts = {commit.content_hash: commit.token_count} if commit.content_hash else {}
        store.write(**chain.batch(commit), refs=[RefUpdate(MAIN, commit.hash, parent)], token_counts={WORDS: counts})
        parent = commit.hash
    store.write(**chain.batch(*data.side), refs=[RefUpdate(SIDE, data.side[-1].hash, None)])
    store.write(refs=[RefUpdate(HEAD, data.refs[HEAD], None), RefUpdate(TAG, data.refs[TAG], None)])
    store.add_annotations(data.annotations)
    store.put_token_counts(OTHER_TOKENIZER, data.other_counts)
    (closed, events), *batch = data.runs
    store.put_run(attrs.evolve(closed, status="open", ended_at=None, duration_ms=None), events[:2])
    store.append_events(closed.run_id, events[2:])
    store.put_run(closed, expected_status="open")
    store.put_runs(batch)
    store.add_spend(data.spend)
    for thread in data.threads:
        store.put_thread(thread)
    for message in data.messages:
        store.add_chat_message(message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the database file to create (must not exist)")
    parser.add_argument("--store-module", type=Path, help="a store.py of another release (default: today's)")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists; give a new file")
    if args.store_module:
        spec = importlib.util.spec_from_file_location("release_store", args.store_module)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        from cairn_sqlite import store as module
    with module.SqliteStore(args.out) as store:
        populate(store, content())


if __name__ == "__main__":
    main()
