"""Chat on the ledger branch: one file per message and per thread, so merges never conflict::

    ledger/chat/messages/<s>/<message id>.json    s: 2 hex digits of SHA-256(id)
    ledger/chat/threads/<thread id>.json

Messages on a run are notes on the run's tag instead (see ``cairn_git._notes``); a
message in a thread is a file here too, and so is one on a run not recorded here.

Ids are validated by the model (``validate_message_id``, ``validate_thread_id``)
and again here before they become a path.
"""

from __future__ import annotations

import hashlib
import json

from cairn.model.canonical import canonical_json
from cairn.model.chat import ChatMessage, Thread, validate_message_id, validate_thread_id

__all__ = ["MESSAGES_DIR", "THREADS_DIR", "message_path", "thread_path", "to_bytes"]

MESSAGES_DIR = "ledger/chat/messages"
THREADS_DIR = "ledger/chat/threads"


def message_path(message_id: str) -> str:
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
