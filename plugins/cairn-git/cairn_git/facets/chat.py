"""The chat facet: messages on runs (notes on the run's tag) and in threads (files on the ledger branch).

A message on a recorded run is a line in the JSONL note on the run's tag
under ``refs/notes/<ns>-chat`` (``cairn_git._notes``); a message in a
thread, or on a run not recorded here, is a file of its own on the ledger
branch; a message with both is in both places, written in one transaction::

    ledger/chat/messages/<s>/<id>.json    s: two hex digits of the id's SHA-256
    ledger/chat/threads/<thread_id>.json
"""

from __future__ import annotations

import hashlib
import json

from cairn.errors import ConflictError, ValidationError
from cairn.model.canonical import canonical_json
from cairn.model.chat import ChatMessage, Thread, validate_message_id, validate_thread_id
from cairn.storage import ChatStore
from cairn_git import _notes as notes
from cairn_git._base import MAX_ATTEMPTS, MAX_UNEXPLAINED, checked_limit, is_lock_contention, locked, writing
from cairn_git._git import BLOB_MODE, TREE_MODE
from cairn_git._ledger_base import LedgerBase, LedgerChange

__all__ = ["GitChat"]


MESSAGES_DIR = "ledger/chat/messages"
THREADS_DIR = "ledger/chat/threads"


def message_path(message_id: str) -> str:
    """Where a message's file goes; the id is validated (by the model's rules) before it becomes a path."""
    validate_message_id(message_id)
    return f"{MESSAGES_DIR}/{hashlib.sha256(message_id.encode()).hexdigest()[:2]}/{message_id}.json"


def thread_path(thread_id: str) -> str:
    return f"{THREADS_DIR}/{validate_thread_id(thread_id)}.json"


def to_bytes(item: ChatMessage | Thread) -> bytes:
    return canonical_json(item.to_record(), check_keys=False) + b"\n"


def message_from_bytes(data: bytes) -> ChatMessage:
    return ChatMessage.from_record(json.loads(data))


def thread_from_bytes(data: bytes) -> Thread:
    return Thread.from_record(json.loads(data))


class GitChat(LedgerBase, ChatStore):
    """``ChatStore`` on the chat notes and the ledger branch."""

    @writing
    def add_chat_message(self, message: ChatMessage) -> None:
        """Store a message; ``ConflictError`` if its id is stored.

        On a recorded run: a line in the note on the run's tag, published with a compare-and-swap of
        the notes ref. In a thread (or on a run not recorded here): its own file on the ledger branch.
        Both: both, in one transaction.
        """
        if not isinstance(message, ChatMessage):
            raise ValidationError(
                f"expected a cairn.model.chat.ChatMessage, got {type(message).__name__}", what="add_chat_message"
            )
        path = message_path(message.id)
        anchor = self._anchor(message.run_id) if message.run_id is not None else None

        def anchor_tag() -> str | None:
            found = self._cat.info([anchor])[0] if anchor is not None else None
            return found[0] if found is not None and found[1] == "tag" else None

        line = notes.message_line(message)
        unexplained = 0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._backoff(attempt)
            tag = anchor_tag()
            file_oid = self._writer.blob(to_bytes(message)) if message.thread_id is not None or tag is None else None
            tip, root = self._read_ledger()
            ntip, nroot = self._read_notes()
            index = self._note_index(nroot)
            if self._trees.lookup(root, path) is not None or any(
                m.id == message.id for m in self._note_messages(blob for _, blob in index.values())
            ):
                raise ConflictError(f"message {message.id}", None, "stored")
            commands = []
            new_root = root
            commit = tip
            if file_oid is not None:
                new_root = self._trees.edit(root, {path: (BLOB_MODE, file_oid)})
                commit = self._writer.commit(
                    new_root or self._writer.empty_tree, [tip] if tip else [], self._ident(), f"message {message.id}"
                )
                commands.append(self._ref_command(self.ledger_ref, commit, tip))
            if tag is not None:
                existing = self._read_blobs([index[tag][1]]).get(index[tag][1]) if tag in index else None
                ncommit = self._notes_edit(ntip, nroot, {tag: notes.union_lines(existing, line)})
                commands.append(self._ref_command(self.notes_ref, ncommit, ntip))
                commands.append(f"verify {anchor} {tag}")  # a run closed meanwhile has a new tag: retry on it
            failure = self._apply(commands)
            if failure is None:
                if file_oid is not None:
                    self._ledger_state = (commit, new_root)
                self._after_write()
                return
            moved = self._read_ledger()[0] != tip or self._read_notes()[0] != ntip or anchor_tag() != tag
            unexplained = 0 if moved else unexplained + 1
            if unexplained >= MAX_UNEXPLAINED and not is_lock_contention(failure):
                raise self._give_up("storing a message", failure)
        raise self._give_up("storing a message", None)

    @locked
    def chat_messages(
        self,
        *,
        run_id: str | None = None,
        thread_id: str | None = None,
        limit: int | None = None,
        published: bool | None = None,
    ) -> list[ChatMessage]:
        """Messages newest first (ties: id descending), by run, thread and published flag, each once.

        Ledger files and every note are read (blobs once per process: they never change), so a
        message is found whichever tag its note hangs on.
        """
        n = checked_limit(limit)
        _, root = self._read_ledger()
        by_id: dict[str, ChatMessage] = {}
        files = self._ledger_files(root, MESSAGES_DIR)
        for m in self._parsed([oid for _, oid in files], message_from_bytes).values():
            by_id.setdefault(m.id, m)
        if thread_id is None or run_id is not None:
            _, nroot = self._read_notes()
            for m in self._note_messages(blob for _, blob in self._note_index(nroot).values()):
                by_id.setdefault(m.id, m)
        found = [
            m
            for m in by_id.values()
            if (run_id is None or m.run_id == run_id)
            and (thread_id is None or m.thread_id == thread_id)
            and (published is None or m.publish == published)
        ]
        found.sort(key=lambda m: (m.ts, m.id), reverse=True)
        return found if n is None else found[:n]

    @writing
    def put_thread(self, thread: Thread) -> None:
        """Create a thread (its own file on the ledger branch); ``ConflictError`` if it exists."""
        if not isinstance(thread, Thread):
            raise ValidationError(f"expected a cairn.model.chat.Thread, got {type(thread).__name__}", what="put_thread")
        path = thread_path(thread.thread_id)
        oid = self._writer.blob(to_bytes(thread))

        def plan(tip: str | None, root: str | None, attempt: int) -> LedgerChange:
            if self._trees.lookup(root, path) is not None:
                raise ConflictError(f"thread {thread.thread_id}", None, "exists")
            return LedgerChange({path: (BLOB_MODE, oid)}, f"thread {thread.thread_id}")

        self._update_ledger("creating a thread", plan)

    @locked
    def get_thread(self, thread_id: str) -> Thread | None:
        """The thread, or None. One ``cat-file`` round trip."""
        found = self._cat.read([f"{self.ledger_ref}:{thread_path(thread_id)}"])[0]
        return thread_from_bytes(found[2]) if found is not None else None

    @locked
    def list_threads(self) -> list[Thread]:
        """Every thread, newest first (ties: id descending)."""
        _, root = self._read_ledger()
        top = self._trees.lookup(root, THREADS_DIR)
        files = [] if top is None else [e[1] for e in self._trees.get(top[1]).values() if e[0] != TREE_MODE]
        threads = list(self._parsed(files, thread_from_bytes).values())
        return sorted(threads, key=lambda t: (t.created_at, t.thread_id), reverse=True)
