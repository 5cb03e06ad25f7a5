"""The chat facet on PostgreSQL: chat messages (on runs, in threads) and the threads.

Each message and thread is one row whose ``record`` column holds it as
canonical JSON, with the columns its look-ups filter and sort on beside it.
Text arrives already sealed when chat is encrypted: storage never sees it.
"""

from __future__ import annotations

import json

from cairn.errors import ConflictError
from cairn.model.chat import ChatMessage, Thread
from cairn.storage import ChatStore
from cairn_postgres.connection import PostgresConnection, json_text, pg_method, sql_limit, where

__all__ = ["PostgresChat"]

_INSERT_MESSAGE = (
    "INSERT INTO chat_messages (id, ts, run_id, thread_id, publish, record) VALUES (%s, %s, %s, %s, %s, %s) "
    "ON CONFLICT DO NOTHING"
)
_INSERT_THREAD = "INSERT INTO threads (thread_id, created_at, record) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"


class PostgresChat(PostgresConnection, ChatStore):
    """``ChatStore`` over the ``chat_messages`` and ``threads`` tables."""

    @pg_method("storing a message")
    def add_chat_message(self, message: ChatMessage) -> None:
        row = (
            message.id,
            message.ts,
            message.run_id,
            message.thread_id,
            bool(message.publish),
            json_text(message.to_record()),
        )
        if self._write(lambda conn: conn.execute(_INSERT_MESSAGE, row).rowcount) != 1:
            raise ConflictError(f"message {message.id}", None, "stored")

    @pg_method("reading messages")
    def chat_messages(
        self,
        *,
        run_id: str | None = None,
        thread_id: str | None = None,
        limit: int | None = None,
        published: bool | None = None,
    ) -> list[ChatMessage]:
        clause, params = where(("run_id", "=", run_id), ("thread_id", "=", thread_id), ("publish", "=", published))
        sql = f"SELECT record FROM chat_messages{clause} ORDER BY ts DESC, id DESC LIMIT %s"
        rows = self._read(lambda conn: conn.execute(sql, (*params, sql_limit(limit))).fetchall())
        return [ChatMessage.from_record(json.loads(r[0])) for r in rows]

    @pg_method("creating a thread")
    def put_thread(self, thread: Thread) -> None:
        row = (thread.thread_id, thread.created_at, json_text(thread.to_record()))
        if self._write(lambda conn: conn.execute(_INSERT_THREAD, row).rowcount) != 1:
            raise ConflictError(f"thread {thread.thread_id}", None, "exists")

    @pg_method("reading a thread")
    def get_thread(self, thread_id: str) -> Thread | None:
        if "\x00" in thread_id:
            return None
        row = self._read(
            lambda conn: conn.execute("SELECT record FROM threads WHERE thread_id = %s", (thread_id,)).fetchone()
        )
        return Thread.from_record(json.loads(row[0])) if row else None

    @pg_method("listing threads")
    def list_threads(self) -> list[Thread]:
        rows = self._read(
            lambda conn: conn.execute("SELECT record FROM threads ORDER BY created_at DESC, thread_id DESC").fetchall()
        )
        return [Thread.from_record(json.loads(r[0])) for r in rows]
