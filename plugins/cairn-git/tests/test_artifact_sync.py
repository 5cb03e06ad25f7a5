"""Artifact and snapshot records travel with the ledger branch: merged on pull, gc's deletions carried over."""

from __future__ import annotations

from pathlib import Path

import pytest
from cairn_git.store import GitStore
from helpers import two_clones

from cairn.testing.storage.artifacts import make_artifact_record, make_snapshot_record


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    return two_clones(tmp_path)


def test_records_made_apart_meet_after_a_sync(world) -> None:  # type: ignore[no-untyped-def]
    a_dir, b_dir = world
    shared = b"the same small file on both machines"
    with GitStore(a_dir) as a, GitStore(b_dir) as b:
        on_a = [make_artifact_record(shared, 1, inline=True), make_artifact_record(b"only a", 2, inline=True)]
        on_b = [make_artifact_record(shared, 3, name="b's name", inline=True), make_artifact_record(b"only b", 4)]
        a.add_artifact_records(on_a, inline={r.hash: d for r, d in zip(on_a, (shared, b"only a"), strict=True)})
        b.add_artifact_records(on_b, inline={on_b[0].hash: shared})
        a.add_snapshot_records([make_snapshot_record("src", 5)])
        b.add_snapshot_records([make_snapshot_record("src", 6), make_snapshot_record("docs", 7)])
        a.push()
        b.pull()
        b.push()
        a.pull()
        for store in (a, b):
            assert {r.id for r in store.artifact_records()} == {r.id for r in on_a + on_b}
            assert store.get_inline([on_a[0].hash, on_a[1].hash]) == {on_a[0].hash: shared, on_a[1].hash: b"only a"}
            assert len(store.snapshot_records()) == 3
            assert store.check() == []


def test_a_deletion_on_one_machine_reaches_the_other_and_keeps_what_was_added_meanwhile(world) -> None:  # type: ignore[no-untyped-def]
    a_dir, b_dir = world
    old, other = b"collected by a", b"kept"
    with GitStore(a_dir) as a, GitStore(b_dir) as b:
        first = make_artifact_record(old, 1, inline=True)
        kept = make_artifact_record(other, 2, inline=True)
        a.add_artifact_records([first, kept], inline={first.hash: old, kept.hash: other})
        a.push()
        b.pull()
        assert a.delete_artifacts([first.hash]) == 2
        later = make_artifact_record(b"new on b", 3)
        b.add_artifact_records([later])
        a.push()
        b.pull()
        assert b.get_inline([first.hash, kept.hash]) == {kept.hash: other}
        assert {r.id for r in b.artifact_records()} == {kept.id, later.id}
