"""What ``cairn memory index`` makes searchable: documents gathered from what cairn stores.

Each built-in collection is rebuilt from its source and compared with what
the documents facet holds, so a run writes only what changed (new, edited
or removed items); running it twice writes nothing the second time.

==================== ==========================================================
collection           documents
==================== ==========================================================
``@context``         the current items of every branch but ``memory``
                     (edits applied, deletes removed), id ``<branch>:<item>``
``@runs``            runs with a summary, id the run id (but ``memory``
                     runs: indexing its own bookkeeping would leave every
                     ``cairn memory index`` something new to embed)
``@chat``            chat messages (encrypted ones are left out: their text is
                     not readable without the key, and must not leak into an
                     index), id the message id
``@memory``          the current facts and episodes of the ``memory`` branch,
                     id the item's hash
==================== ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from cairn.model import Commit, Operation
from cairn.model.embedding import BUILTIN_COLLECTIONS, MAX_TEXT, Document
from cairn.model.memory import Episode, Fact
from cairn.repo_reader import RepoReader
from cairn.storage import BRANCH_PREFIX, ChatStore, DocumentStore, RunStore

__all__ = ["MEMORY_BRANCH", "SyncCounts", "current_items", "gather", "sync_documents"]

#: The branch facts and episodes live on.
MEMORY_BRANCH = "memory"


def current_items(reader: RepoReader, head: str | None) -> dict[str, Commit]:
    """The items ``head`` holds now: item (its APPEND commit's hash) -> the commit of its current version."""
    if head is None:
        return {}
    items: dict[str, Commit] = {}
    for commit in reversed(list(reader.walk(reader.commit(head)))):
        if commit.operation is Operation.APPEND and commit.content_hash is not None:
            items[commit.hash] = commit
        elif commit.operation is Operation.EDIT and commit.target is not None:
            items[commit.target] = commit
        elif commit.operation is Operation.DELETE and commit.target is not None:
            items.pop(commit.target, None)
    return items


def _text(content: Any) -> str:
    text: str = content.text_for_search()
    return text[:MAX_TEXT]


def _context(reader: RepoReader) -> list[Document]:
    out: list[Document] = []
    for ref, head in sorted(reader.refs.list_refs(BRANCH_PREFIX).items()):
        branch = ref[len(BRANCH_PREFIX) :]
        if branch == MEMORY_BRANCH:
            continue
        items = current_items(reader, head)
        contents = reader.contents({c.content_hash for c in items.values() if c.content_hash})
        for item, commit in items.items():
            content = contents.get(commit.content_hash or "")
            text = _text(content) if content is not None else ""
            if text.strip():
                meta = {"commit": commit.hash, "content_type": commit.content_type}
                out.append(Document("@context", f"{branch}:{item}", text, commit.created_at, branch, meta))
    return out


def _memory(reader: RepoReader) -> list[Document]:
    head = reader.refs.get_ref(BRANCH_PREFIX + MEMORY_BRANCH)
    items = current_items(reader, head)
    contents = reader.contents({c.content_hash for c in items.values() if c.content_hash})
    out = []
    for item, commit in items.items():
        content = contents.get(commit.content_hash or "")
        if not isinstance(content, (Fact, Episode)) or commit.content_type not in ("memory.fact", "memory.episode"):
            continue
        meta: dict[str, Any] = {"commit": commit.hash, "content_type": commit.content_type}
        subject = getattr(content, "subject", None)
        if subject:
            meta["subject"] = subject
        text = str(getattr(content, "text", ""))[:MAX_TEXT]
        out.append(Document("@memory", item, text, commit.created_at, None, meta))
    return out


#: The run type of ``cairn memory index`` / ``reindex`` runs, which the ``@runs`` collection leaves out.
MEMORY_RUN_TYPE = "memory"


def _runs(store: Any) -> list[Document]:
    if not isinstance(store, RunStore):
        return []
    out = []
    for run in store.list_runs():
        if run.summary.strip() and run.type != MEMORY_RUN_TYPE:
            meta = {"type": run.type, "status": run.status}
            out.append(Document("@runs", run.run_id, run.summary[:MAX_TEXT], run.started_at, None, meta))
    return out


def _chat(store: Any) -> list[Document]:
    if not isinstance(store, ChatStore):
        return []
    out = []
    for message in store.chat_messages():
        if message.encrypted or not message.text.strip():
            continue
        meta = {"thread": message.thread_id, "run": message.run_id, "user": message.user}
        out.append(Document("@chat", message.id, message.text[:MAX_TEXT], message.ts, None, meta))
    return out


def gather(reader: RepoReader, only: Sequence[str] | None = None) -> dict[str, list[Document]]:
    """Every built-in collection's documents (those named in ``only``), rebuilt from their sources."""
    sources: dict[str, Callable[[], list[Document]]] = {
        BUILTIN_COLLECTIONS["context"]: lambda: _context(reader),
        BUILTIN_COLLECTIONS["runs"]: lambda: _runs(reader.store),
        BUILTIN_COLLECTIONS["chat"]: lambda: _chat(reader.store),
        BUILTIN_COLLECTIONS["memory"]: lambda: _memory(reader),
    }
    return {name: build() for name, build in sources.items() if only is None or name in only}


class SyncCounts(dict[str, int]):
    """How many documents a sync wrote (``written``) and removed (``removed``)."""


def _chunks(docs: list[Document], size: int) -> Iterable[list[Document]]:
    for start in range(0, len(docs), size):
        yield docs[start : start + size]


def sync_documents(reader: RepoReader, documents: DocumentStore, *, only: Sequence[str] | None = None) -> SyncCounts:
    """Bring the built-in collections (those named in ``only``) in ``documents`` up to date with their sources."""
    counts = SyncCounts(written=0, removed=0)
    for collection, fresh in gather(reader, only).items():
        held = {d.id: d for d in documents.documents([collection])}
        changed = [d for d in fresh if held.get(d.id) != d]
        gone = held.keys() - {d.id for d in fresh}
        for chunk in _chunks(changed, 1000):
            documents.put_documents(chunk)
        if gone:
            documents.delete_documents(collection, sorted(gone))
        counts["written"] += len(changed)
        counts["removed"] += len(gone)
    return counts
