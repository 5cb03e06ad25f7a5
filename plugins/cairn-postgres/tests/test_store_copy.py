"""``copy_store`` moves every facet, SQLite -> PostgreSQL -> SQLite, and what arrives reads back as it left."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from cairn_postgres.config import PostgresConfig
from cairn_postgres.store import PostgresStore
from cairn_postgres.store_copy import copy_store
from cairn_sqlite.store import SqliteStore, open_in_directory

from cairn.errors import IntegrityError
from cairn.model import Annotation, Priority, Run, RunEvent, SpendRecord, sha256_hex
from cairn.model.chat import ChatMessage, Thread
from cairn.model.governance import DirectiveEvent, NonceRecord
from cairn.plugins import load_plugins
from cairn.repo import Repo
from cairn.storage import (
    ArtifactMetaStore,
    ChatStore,
    DocumentStore,
    GovernanceStore,
    NonceStore,
    RunStore,
    VectorStore,
)
from cairn.testing.memory import MemoryStore
from cairn.testing.storage import at
from cairn.testing.storage.artifacts import make_artifact_record, make_snapshot_record
from cairn.testing.storage.documents import make_document
from cairn.testing.storage.governance import make_approval, make_directive
from cairn.testing.storage.vectors import OTHER, SMALL, vec

PLUGINS = load_plugins()


def sqlite_in(directory: Path) -> SqliteStore:
    directory.mkdir(exist_ok=True)
    return open_in_directory(directory)


def _fill(store: Any) -> None:
    """Something in every facet: commits with an edit and a delete, every record kind, live and lapsed keys."""
    repo = Repo(store, PLUGINS.create("tokenizers", "approx"), PLUGINS.content_types)
    first = repo.append({"content_type": "dialogue", "role": "user", "text": "hello ✓ \x00 there"})
    for i in range(20):
        repo.append({"content_type": "dialogue", "role": "assistant" if i % 2 else "user", "text": f"message {i}"})
    repo.edit(first.hash, {"content_type": "dialogue", "role": "user", "text": "hello, edited"})
    store.add_annotations([Annotation(first.hash, Priority.PINNED, "keep it", at(5))])
    run = Run(run_id="r-1", type="job", status="ok", started_at=at(1), summary="done \x00", environment={"k": [1]})
    store.put_runs([(run, [RunEvent("r-1", 0, at(1), "start", {"n": 1}), RunEvent("r-1", 1, at(2), "end")])])
    store.add_spend([SpendRecord(at(3), "openai", "gpt", "ok", run_id="r-1")])
    store.put_thread(Thread("t-1", "a thread", at(4), created_by="ann", tags=["x"]))
    store.add_chat_message(ChatMessage("m-1", at(5), "hi", user="ann", thread_id="t-1"))
    store.add_chat_message(ChatMessage("m-2", at(6), "on the run", run_id="r-1"))
    data = b"inline bytes"
    records = [make_artifact_record(data, 7, inline=True), make_artifact_record(b"big", 8)]
    store.add_artifact_records(records, inline={sha256_hex(data): data})
    store.add_snapshot_records([make_snapshot_record("tree", 9)])
    store.claim_nonce(NonceRecord("pending key", "w1", at(10), at(10_000)))
    store.claim_nonce(NonceRecord("done key ✓", "w2", at(11), at(10_000), fingerprint="f" * 64))
    store.complete_nonce("done key ✓", "w2", {"answer": [42]}, done_at=at(12), expires_at=at(20_000))
    store.claim_nonce(NonceRecord("lapsed", "w3", at(1), at(2)))
    kept, dropped = make_directive(1), make_directive(2, intent="other")
    for directive in (kept, dropped):
        store.add_directive(directive, DirectiveEvent(directive.id, 0, directive.created_at, "created", "ann",
                                                      to_status="draft"))  # fmt: skip
    store.transition_directive(kept.id, "draft", "approved", DirectiveEvent(kept.id, -1, at(20), "transition", "bo",
                               from_status="draft", to_status="approved", reason="fine"))  # fmt: skip
    store.add_directive_event(kept.id, DirectiveEvent(kept.id, -1, at(21), "run", "bo", run_id="r-1"))
    store.transition_directive(dropped.id, "draft", "rejected", DirectiveEvent(dropped.id, -1, at(22), "transition",
                               "bo", from_status="draft", to_status="rejected"))  # fmt: skip
    store.add_approval(make_approval(1))
    store.add_approval(make_approval(2, status="approved"))
    store.put_vectors(SMALL, {"a" * 64: vec(1, 0, 0, 0), "b" * 64: vec(0.5, 0.5, 0, 0)})
    store.put_vectors(OTHER, {"c" * 64: vec(*range(8))})
    store.put_documents([make_document("notes", "n1", "apple banana", 1), make_document("notes", "n2", "cherry \x00", 2),
                         make_document("facts", "f1", "delta", 3, branch="main", metadata={"k": 1})])  # fmt: skip


def _everything(store: Any) -> dict[str, Any]:
    """What every facet holds, read through its own methods (the token-count cache aside: it is derived)."""
    refs = store.list_refs()
    commits = store.commits_by_time()
    out: dict[str, Any] = {
        "refs": refs,
        "commits": sorted(commits, key=lambda c: c.hash),
        "blobs": store.get_blobs({c.content_hash for c in commits if c.content_hash}),
        "annotations": {c.hash: store.annotation_history(c.hash) for c in commits},
    }
    if isinstance(store, RunStore):
        runs = store.list_runs()
        out["runs"] = [(r, store.run_events(r.run_id)) for r in runs]
        out["spend"] = store.spend()
    if isinstance(store, ChatStore):
        out["chat"] = (store.chat_messages(), store.list_threads())
    if isinstance(store, ArtifactMetaStore):
        inline = store.inline_sizes()
        out["artifacts"] = (store.artifact_records(), store.get_inline(inline), store.snapshot_records())
    if isinstance(store, NonceStore):
        out["nonces"] = store.nonce_records()
    if isinstance(store, GovernanceStore):
        directives = store.list_directives()
        out["directives"] = [(d, s, store.directive_events(d.id)) for d, s in directives]
        out["approvals"] = store.list_approvals()
    if isinstance(store, VectorStore):
        out["vectors"] = {i: sorted(p for b in store.iter_vectors(i) for p in b) for i in store.vector_counts()}
    if isinstance(store, DocumentStore):
        out["documents"] = store.documents()
    return out


@pytest.fixture
def postgres(pg_database: str) -> Any:
    store = PostgresStore(PostgresConfig(dsn=pg_database, schema="c_" + secrets.token_hex(6)))
    yield store
    store.close()


def test_sqlite_to_postgres_to_sqlite_moves_every_facet(postgres: Any, tmp_path: Path) -> None:
    with sqlite_in(tmp_path / "from") as source:
        _fill(source)
        expected = _everything(source)
        assert all(expected[k] for k in ("nonces", "directives", "approvals", "vectors", "documents", "artifacts"))
        report = copy_store(source, postgres, batch_size=7)
    assert report.skipped_facets == ()
    assert (report.nonces, report.directives, report.approvals) == (3, 2, 2)
    assert (report.vectors, report.documents, report.artifact_records, report.snapshot_records) == (3, 3, 2, 1)
    assert report.commits == report.verified == len(expected["commits"])
    assert _everything(postgres) == expected
    # Run again: everything is there, nothing is written twice, all verified again.
    again = copy_store(source := sqlite_in(tmp_path / "from"), postgres)
    source.close()
    assert (again.nonces, again.directives, again.approvals, again.vectors, again.documents) == (0, 0, 0, 0, 0)
    assert _everything(postgres) == expected
    with sqlite_in(tmp_path / "back") as back:
        report = copy_store(postgres, back)
        assert report.skipped_facets == ()
        assert _everything(back) == expected


def test_facets_the_target_lacks_are_named_not_copied(postgres: Any) -> None:
    _fill(postgres)
    target = MemoryStore()
    report = copy_store(postgres, target)
    facets = (NonceStore, GovernanceStore, VectorStore, DocumentStore, RunStore, ChatStore, ArtifactMetaStore)
    missing = {f.facet for f in facets if not isinstance(target, f)}
    assert missing and set(report.skipped_facets) == missing
    assert target.list_refs() == postgres.list_refs()


def test_a_target_holding_another_record_under_a_key_stops_the_copy(postgres: Any, tmp_path: Path) -> None:
    postgres.put_documents([make_document("notes", "n1", "something else", 1)])
    with sqlite_in(tmp_path / "from") as source:
        _fill(source)
        with pytest.raises(IntegrityError, match="document notes/n1 did not arrive intact"):
            copy_store(source, postgres)
    assert postgres.get_documents("notes", ["n1"])["n1"].text == "something else"  # never overwritten
