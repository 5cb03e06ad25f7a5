"""``cairn watch``: commits and runs as other machines write them, through LISTEN/NOTIFY.

Triggers on the ``refs`` and ``runs`` tables (``cairn_postgres.schema``)
announce every ref moved and every run written on the channels
``cairn_ref`` and ``cairn_run``, with the schema's name in the payload.
``watch`` listens on a connection of its own and turns each announcement
into events: the commits a ref gained (read from the store), or the run as
now stored. Announcements of other schemas are ignored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import attrs
import psycopg

from cairn.model import Commit, Run
from cairn.storage import BRANCH_PREFIX, HEAD
from cairn_postgres.connection import pg_error
from cairn_postgres.store import PostgresStore

__all__ = ["WatchEvent", "watch"]

#: At most this many commits are listed for one move of a ref (a large import shows its newest).
MAX_COMMITS_PER_MOVE = 1000


@attrs.frozen
class WatchEvent:
    """A commit that arrived on ``branch`` or a run written (created or closed)."""

    kind: str  # "commit" | "run"
    branch: str | None = None
    commit: Commit | None = None
    run: Run | None = None


def watch(
    store: PostgresStore,
    *,
    branch: str | None = None,
    runs: bool = False,
    commits: bool = True,
    timeout: float | None = None,
    ready: Any = None,
) -> Iterator[WatchEvent]:
    """Yield events as they are committed, until ``timeout`` seconds pass (forever when None).

    ``branch`` keeps commits of that branch only; ``runs`` adds runs.
    ``ready()`` is called once listening has begun (what a test waits for).
    """
    channels = (["cairn_ref"] if commits else []) + (["cairn_run"] if runs else [])
    try:
        conn = store.listen_connection()
    except psycopg.Error as exc:
        raise pg_error(exc, store.dsn, "listening for changes", schema_name=store.schema) from exc
    deadline = None if timeout is None else time.monotonic() + timeout
    with conn:
        for channel in channels:
            conn.execute(f"LISTEN {channel}")
        if ready is not None:
            ready()
        while deadline is None or time.monotonic() < deadline:
            wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            try:
                notes = list(conn.notifies(timeout=wait, stop_after=1))
            except psycopg.Error as exc:
                raise pg_error(exc, store.dsn, "listening for changes", schema_name=store.schema) from exc
            for note in notes:
                yield from _events(store, note.channel, note.payload, branch)


def _events(store: PostgresStore, channel: str, payload: str, branch: str | None) -> Iterator[WatchEvent]:
    try:
        data = json.loads(payload)
    except ValueError:
        return
    if not isinstance(data, dict) or data.get("schema") != store.schema:
        return
    if channel == "cairn_run":
        run = store.get_run(str(data.get("run_id")))
        if run is not None:
            yield WatchEvent("run", run=run)
        return
    ref, new, old = data.get("ref"), data.get("new"), data.get("old")
    if not isinstance(ref, str) or not isinstance(new, str) or ref == HEAD or not ref.startswith(BRANCH_PREFIX):
        return
    name = ref[len(BRANCH_PREFIX) :]
    if branch is not None and name != branch:
        return
    gained = []
    for commit in store.ancestors(new, limit=MAX_COMMITS_PER_MOVE):
        if commit.hash == old:
            break
        gained.append(commit)
        if old is None:
            break  # a new branch: only its head is news
    for commit in reversed(gained):
        yield WatchEvent("commit", branch=name, commit=commit)
