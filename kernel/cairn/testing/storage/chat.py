"""The chat facet's conformance suite: messages on runs and threads, and threads."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cairn.errors import ConflictError
from cairn.model import now
from cairn.testing.storage._support import (
    FacetSuite,
    StoreOpener,
    at,
    run_workers,
)
from cairn.testing.storage.ledger import make_run

if TYPE_CHECKING:  # pragma: no cover
    from cairn.model.chat import ChatMessage


def _message(
    n: int,
    *,
    run_id: str | None = None,
    thread_id: str | None = "general",
    publish: bool = False,
    seconds: float | None = None,
) -> Any:
    from cairn.model.chat import ChatMessage

    return ChatMessage(
        id=f"m-{n:04d}",
        ts=at(n if seconds is None else seconds),
        text=f"message {n} — ✓",
        user="ann",
        thread_id=thread_id,
        run_id=run_id,
        publish=publish,
    )


def _chat_worker(
    opener: StoreOpener, directory: str, worker: int, count: int, run_id: str, barrier: Any, results: Any
) -> None:
    from cairn.model.chat import ChatMessage

    acked: list[str] = []
    try:
        store = opener(Path(directory))
        try:
            barrier.wait(timeout=120)
            for i in range(count):
                target: dict[str, Any] = (
                    {"run_id": run_id, "thread_id": None} if i % 2 else {"run_id": None, "thread_id": "busy"}
                )
                message = ChatMessage(id=f"w{worker}-{i:03d}", ts=now(), text=f"{worker}/{i}", **target)
                store.add_chat_message(message)
                acked.append(message.id)
        finally:
            store.close()
        results.put((worker, acked, None))
    except BaseException as exc:
        barrier.abort()
        results.put((worker, acked, f"{type(exc).__name__}: {exc}"))


class ChatConformance(FacetSuite):
    """The ``chat`` facet's contract as tests: messages newest first, each id once, threads, concurrent writers."""

    facet = "chat"

    def test_messages_round_trip_newest_first(self, store: Any) -> None:
        store.put_run(make_run("r-chat", 1))
        messages = [
            _message(1),
            _message(2, run_id="r-chat", thread_id=None, publish=True),
            _message(3, run_id="r-chat"),  # both a run and a thread
            _message(4, thread_id="other"),
        ]
        for message in messages:
            store.add_chat_message(message)

        def ids(found: Iterable[ChatMessage]) -> list[str]:
            return [m.id for m in found]

        assert ids(store.chat_messages()) == ["m-0004", "m-0003", "m-0002", "m-0001"]
        assert ids(store.chat_messages(run_id="r-chat")) == ["m-0003", "m-0002"]
        assert ids(store.chat_messages(thread_id="general")) == ["m-0003", "m-0001"]
        assert ids(store.chat_messages(thread_id="general", limit=1)) == ["m-0003"]
        assert ids(store.chat_messages(published=True)) == ["m-0002"]
        assert store.chat_messages(run_id="r-chat")[1] == messages[1]

    def test_attachments_round_trip(self, store: Any) -> None:
        from cairn.model import ArtifactRef, sha256_hex
        from cairn.model.chat import ChatMessage

        store.put_run(make_run("r-att", 1))
        refs = (
            ArtifactRef(sha256_hex(b"png"), "chart ✓.png", "image/png", 3),
            ArtifactRef(sha256_hex(b""), "empty", "application/octet-stream", 0),
        )
        on_thread = ChatMessage(id="m-att-1", ts=at(1), text="see the chart", thread_id="t", attachments=refs)
        on_run = ChatMessage(id="m-att-2", ts=at(2), text="on the run", run_id="r-att", attachments=refs[:1])
        store.add_chat_message(on_thread)
        store.add_chat_message(on_run)
        assert store.chat_messages(thread_id="t") == [on_thread]
        assert store.chat_messages(run_id="r-att") == [on_run]

    def test_a_message_id_is_stored_once(self, store: Any) -> None:
        store.add_chat_message(_message(1))
        with pytest.raises(ConflictError):
            store.add_chat_message(_message(1))
        assert len(store.chat_messages()) == 1

    def test_threads(self, store: Any) -> None:
        from cairn.model.chat import Thread

        first = Thread("t-1", "First", at(1), created_by="ann", tags=["a", "b"])
        second = Thread("t-2", "Second ✓", at(2), anchor_run=None)
        store.put_thread(first)
        store.put_thread(second)
        with pytest.raises(ConflictError):
            store.put_thread(Thread("t-1", "Again", at(3)))
        assert store.get_thread("t-1") == first and store.get_thread("t-9") is None
        assert store.list_threads() == [second, first]

    def test_concurrent_chat_writers_across_processes_lose_nothing(
        self, store_opener: StoreOpener, store_dir: Path
    ) -> None:
        self._needs_persistence()
        workers, per_worker = 4, 50
        setup = store_opener(store_dir)
        try:
            setup.put_run(make_run("r-busy", 1))
        finally:
            setup.close()
        outcomes = run_workers(
            _chat_worker, lambda i, b, r: (store_opener, str(store_dir), i, per_worker, "r-busy", b, r), workers
        )
        acked = [m for _, ids, _ in outcomes for m in ids]
        store = store_opener(store_dir)
        try:
            on_run = [m.id for m in store.chat_messages(run_id="r-busy")]
            on_thread = [m.id for m in store.chat_messages(thread_id="busy")]
            assert len(on_run) == len(set(on_run)) == workers * per_worker // 2
            assert len(on_thread) == len(set(on_thread)) == workers * per_worker // 2
            assert set(on_run) | set(on_thread) == set(acked)
        finally:
            store.close()
