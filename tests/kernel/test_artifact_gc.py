"""Artifact gc: what no root reaches and nothing recent keeps goes, from both homes, with its records."""

from __future__ import annotations

import datetime as _dt
import io
from pathlib import Path

import attrs
import pytest

from cairn import artifact_gc
from cairn.artifact_gc import collect, register_root
from cairn.errors import ValidationError
from cairn.model import Artifact, Run, RunEvent, sha256_hex
from cairn.model.artifacts import ArtifactRecord
from cairn.model.chat import ChatMessage
from cairn.project_artifacts import ProjectArtifacts
from cairn.repo import Repo
from cairn.run_artifacts import artifact_event, snapshot_event
from cairn.testing.fakes import WordTokenizer
from cairn.testing.memory import MemoryStore
from cairn.testing.memory_artifacts import MemoryArtifactStore
from cairn.testing.storage import at

LONG_AGO = at(0)  # 2026-01-01: older than any grace period the tests use
NONE = _dt.timedelta(0)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def artifacts(store: MemoryStore, tmp_path: Path) -> ProjectArtifacts:
    return ProjectArtifacts(store, MemoryArtifactStore(), inline_max_bytes=8, data_dir=tmp_path / ".cairn")


def age(store: MemoryStore, artifacts: ProjectArtifacts) -> None:
    """Make every record and stored object look old, as if put long before the grace period."""
    store.artifact_recs = {r.id: r for r in (attrs.evolve(r, created=LONG_AGO) for r in store.artifact_recs.values())}
    store.snapshot_recs = {r.id: r for r in (attrs.evolve(r, created=LONG_AGO) for r in store.snapshot_recs.values())}
    objects = artifacts.store.objects  # type: ignore[attr-defined]
    for digest, (data, _) in list(objects.items()):
        objects[digest] = (data, LONG_AGO)


def put(artifacts: ProjectArtifacts, data: bytes, name: str) -> ArtifactRecord:
    return artifacts.put(io.BytesIO(data), name=name)


def test_unreached_artifacts_go_from_both_homes_with_their_records(store, artifacts) -> None:
    small, large = put(artifacts, b"small", "s.txt"), put(artifacts, b"large bytes" * 10, "l.bin")
    kept = put(artifacts, b"kept", "k.txt")
    store.add_chat_message(ChatMessage("m-1", at(5), "see", thread_id="t", attachments=[kept.ref]))
    age(store, artifacts)
    dry = collect(artifacts, store, grace=NONE, dry_run=True)
    assert sorted((c.hash, c.where, c.names) for c in dry.collected) == sorted(
        [(small.hash, "inline", ("s.txt",)), (large.hash, "store", ("l.bin",))]
    )
    assert dry.bytes == 5 + 110 and dry.kept == 1
    assert artifacts.where(small.hash) == "inline" and artifacts.store.has(large.hash)  # a dry run removes nothing
    done = collect(artifacts, store, grace=NONE)
    assert [c.hash for c in done.collected] == [c.hash for c in dry.collected]
    assert artifacts.where(small.hash) is None and artifacts.where(large.hash) is None
    assert [r.name for r in artifacts.records()] == ["k.txt"]
    assert artifacts.read_bytes(kept.hash) == b"kept"
    assert collect(artifacts, store, grace=NONE).collected == ()


def test_recent_objects_and_records_are_kept(store, artifacts) -> None:
    put(artifacts, b"new and unreferenced" * 3, "new.bin")
    put(artifacts, b"tiny", "tiny.txt")
    assert collect(artifacts, store, grace=_dt.timedelta(hours=1)).collected == ()
    assert len(collect(artifacts, store, grace=NONE, dry_run=True).collected) == 2  # no grace: only roots keep


def test_a_context_reference_keeps_its_artifact(store, artifacts, content_types) -> None:
    ref = put(artifacts, b"chart bytes" * 5, "chart.png").ref
    other = put(artifacts, b"edited away" * 5, "old.png").ref
    repo = Repo(store, WordTokenizer(), content_types)
    item = repo.append(Artifact.reference(other))
    repo.edit(item.hash, Artifact.reference(ref))  # history keeps both: time travel can show the old one
    age(store, artifacts)
    assert collect(artifacts, store, grace=NONE).collected == ()


def test_a_run_keeps_its_attachments_and_its_snapshot_trees_contents(store, artifacts, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "a.txt").write_text("file a, long enough for the artifact store\n")
    (work / "small").write_text("s")
    _, snap = artifacts.snapshot(work)
    report = put(artifacts, b"report of the run", "report.md")
    loose = put(artifacts, b"loose bytes, no one cares", "loose")
    run = Run("r-1", "command", "ok", at(1))
    events = [
        RunEvent("r-1", 0, at(1), "snapshot", {k: v for k, v in snapshot_event(snap, "before").items() if k != "type"}),
        RunEvent(
            "r-1", 1, at(2), "artifact", {k: v for k, v in artifact_event(report, "report.md").items() if k != "type"}
        ),
    ]
    store.put_run(run, events)
    age(store, artifacts)
    done = collect(artifacts, store, grace=NONE)
    assert [c.hash for c in done.collected] == [loose.hash]
    tree = artifacts.load_tree(snap.tree)
    assert all(artifacts.read_bytes(e.hash) for e in tree)
    assert artifacts.snapshots() == [attrs.evolve(snap, created=LONG_AGO)]


def test_an_unreferenced_snapshot_goes_with_its_record_and_its_contents(store, artifacts, tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    (work / "only-here.txt").write_text("only in this snapshot\n")
    result, _ = artifacts.snapshot(work)
    age(store, artifacts)
    done = collect(artifacts, store, grace=NONE)
    entry = next(iter(result.tree))
    assert {c.hash for c in done.collected} == {result.hash, entry.hash}
    assert artifacts.snapshots() == []


def test_a_recent_tree_keeps_old_contents_it_shares(store, artifacts, tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    (work / "shared.txt").write_text("old bytes that a new snapshot names again\n")
    old, _ = artifacts.snapshot(work)
    age(store, artifacts)
    store.snapshot_recs.clear()  # a tree stored a moment ago whose run has not recorded it yet
    (work / "new.txt").write_text("new\n")
    new, _ = artifacts.snapshot(work)
    store.snapshot_recs.clear()
    shared = next(e for e in old.tree if e.path == "shared.txt")
    done = collect(artifacts, store, grace=_dt.timedelta(hours=1))
    assert shared.hash not in {c.hash for c in done.collected}
    assert old.hash in {c.hash for c in done.collected}


def test_the_stat_caches_are_cleared_when_objects_go(store, artifacts, tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    (work / "f.txt").write_text("cached\n")
    artifacts.snapshot(work)
    assert artifacts.cache_dir is not None and list(artifacts.cache_dir.iterdir())
    age(store, artifacts)
    done = collect(artifacts, store, grace=NONE)
    assert done.caches_cleared == 1 and list(artifacts.cache_dir.iterdir()) == []


def test_a_missing_tree_is_reported_not_fatal(store, artifacts) -> None:
    gone = sha256_hex(b"a tree that was never stored")
    store.put_run(Run("r-2", "command", "ok", at(1)), [RunEvent("r-2", 0, at(1), "snapshot", {"tree": gone})])
    assert collect(artifacts, store, grace=NONE).missing_trees == (gone,)


def test_roots_are_a_registry_later_features_extend(store, artifacts, monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = put(artifacts, b"kept by a checkpoint" * 3, "pinned")
    age(store, artifacts)
    monkeypatch.setattr(artifact_gc, "ROOTS", dict(artifact_gc.ROOTS))
    register_root("checkpoints", lambda s: [("artifact", pinned.hash)])
    assert collect(artifacts, store, grace=NONE).collected == ()
    with pytest.raises(ValidationError, match="registered already"):
        register_root("checkpoints", lambda s: [])


def test_a_tree_that_would_leave_its_directory_is_never_expanded(store, artifacts) -> None:
    victim = put(artifacts, b"an object the bad tree names" * 3, "victim")
    bad = (
        b'{"entries":[{"hash":"' + victim.hash.encode() + b'","mode":"100644","path":"../outside","size":84}],'
        b'"type":"cairn.tree","version":1}'
    )
    tree = artifacts.store.put(io.BytesIO(bad)).hash
    store.put_run(Run("r-3", "command", "ok", at(1)), [RunEvent("r-3", 0, at(1), "snapshot", {"tree": tree})])
    age(store, artifacts)
    with pytest.raises(ValidationError, match="'..' part"):
        artifacts.load_tree(tree)
    done = collect(artifacts, store, grace=NONE)
    assert [c.hash for c in done.collected] == [victim.hash]  # the refused tree keeps nothing but itself
    assert artifacts.store.has(tree)
