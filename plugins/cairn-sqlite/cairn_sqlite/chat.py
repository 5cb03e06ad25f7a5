"""The chat facet on SQLite: chat messages (on runs, in threads) and the threads.

Each message and thread is one row whose ``record`` column holds it as
canonical JSON, with the columns its look-ups filter and sort on beside it.
Text arrives already sealed when chat is encrypted: storage never sees it.
"""

from __future__ import annotations

import json

from cairn.errors import ConflictError
from cairn.model.chat import ChatMessage, Thread
from cairn.storage import ChatStore
from cairn_sqlite.connection import SqliteConnection, json_text, sql_limit, sqlite_method, where

__all__ = ["SqliteChat"]


class SqliteChat(SqliteConnection, ChatStore):
    """``ChatStore`` over the ``chat_messages`` and ``threads`` tables."""

    @sqlite_method("storing a message")
    def add_chat_message(self, message: ChatMessage) -> None:
        row = (
            message.id,
            message.ts,
            message.run_id,
            message.thread_id,
            int(message.publish),
            json_text(message.to_record()),
        )
        with self._write_transaction() as conn:
            if (
                conn.execute(
                    "INSERT INTO chat_messages (id, ts, run_id, thread_id, publish, record) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    row,
                ).rowcount
                != 1
            ):
                raise ConflictError(f"message {message.id}", None, "stored")

    @sqlite_method("reading messages")
    def chat_messages(
        self,
        *,
        run_id: str | None = None,
        thread_id: str | None = None,
        limit: int | None = None,
        published: bool | None = None,
    ) -> list[ChatMessage]:
        clause, params = where(
            ("run_id", "=", run_id),
            ("thread_id", "=", thread_id),
            ("publish", "=", None if published is None else int(published)),
        )
        assert self._conn is not None
        rows = self._conn.execute(
            f"SELECT record FROM chat_messages{clause} ORDER BY ts DESC, id DESC LIMIT ?", (*params, sql_limit(limit))
        )
        return [ChatMessage.from_record(json.loads(r[0])) for r in rows]

    @sqlite_method("creating a thread")
    def put_thread(self, thread: Thread) -> None:
        with self._write_transaction() as conn:
            if (
                conn.execute(
                    "INSERT INTO threads (thread_id, created_at, record) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    (thread.thread_id, thread.created_at, json_text(thread.to_record())),
                ).rowcount
                != 1
            ):
                raise ConflictError(f"thread {thread.thread_id}", None, "exists")

    @sqlite_method("reading a thread")
    def get_thread(self, thread_id: str) -> Thread | None:
        assert self._conn is not None
        row = self._conn.execute("SELECT record FROM threads WHERE thread_id = ?", (thread_id,)).fetchone()
        return Thread.from_record(json.loads(row[0])) if row else None

    @sqlite_method("listing threads")
    def list_threads(self) -> list[Thread]:
        assert self._conn is not None
        rows = self._conn.execute("SELECT record FROM threads ORDER BY created_at DESC, thread_id DESC")
        return [Thread.from_record(json.loads(r[0])) for r in rows]
