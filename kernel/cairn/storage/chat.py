"""The chat facet: messages on runs and in threads, and the threads."""

from __future__ import annotations

import abc

from cairn.model.chat import ChatMessage, Thread
from cairn.storage._facet import Facet

__all__ = ["ChatStore"]


class ChatStore(Facet, abc.ABC):
    """Chat messages (their text already sealed when encrypted) and threads."""

    facet = "chat"
    holds = "chat messages and threads"

    @abc.abstractmethod
    def add_chat_message(self, message: ChatMessage) -> None:
        """Store a message; an id stored before raises ``ConflictError``."""

    @abc.abstractmethod
    def chat_messages(
        self,
        *,
        run_id: str | None = None,
        thread_id: str | None = None,
        limit: int | None = None,
        published: bool | None = None,
    ) -> list[ChatMessage]:
        """Messages newest first (ties: id descending), on a run and/or in a thread, each exactly once."""

    @abc.abstractmethod
    def put_thread(self, thread: Thread) -> None:
        """Create a thread; an existing id raises ``ConflictError``."""

    @abc.abstractmethod
    def get_thread(self, thread_id: str) -> Thread | None:
        """The thread, or None."""

    @abc.abstractmethod
    def list_threads(self) -> list[Thread]:
        """Every thread, newest first."""
