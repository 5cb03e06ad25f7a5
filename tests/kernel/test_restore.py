"""Restoring trees: a faithful round trip, and nothing ever written outside the target directory."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.errors import IntegrityError, ValidationError
from cairn.model import canonical_json, sha256_hex
from cairn.restore import restore
from cairn.snapshots import load_tree, snapshot
from cairn.testing.memory_artifacts import MemoryArtifactStore
from cairn.trees import FILE, Tree, TreeEntry


@pytest.fixture
def store() -> MemoryArtifactStore:
    return MemoryArtifactStore()


def build_source(root: Path) -> Path:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "deep.txt").write_text("deep")
    (root / "tool").write_text("#!/bin/sh\n")
    (root / "tool").chmod(0o755)
    (root / "link").symlink_to("a/b/deep.txt")
    (root / "dangling").symlink_to("../../nowhere")
    return root


def test_a_restored_tree_snapshots_to_the_same_hash(tmp_path: Path, store: MemoryArtifactStore) -> None:
    source = build_source(tmp_path / "source")
    taken = snapshot(source, store)
    result = restore(store, taken.tree, tmp_path / "copy")
    assert (result.files, result.links) == (2, 2)
    copy = tmp_path / "copy"
    assert (copy / "a" / "b" / "deep.txt").read_text() == "deep"
    assert os.readlink(copy / "dangling") == "../../nowhere"
    assert stat.S_IMODE((copy / "tool").stat().st_mode) & 0o100
    assert snapshot(copy, store).hash == taken.hash
    assert not [p for p in copy.rglob(".tmp-*")], "temporary files left behind"


names = st.text(alphabet="abcdefgh", min_size=1, max_size=3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.dictionaries(st.lists(names, min_size=1, max_size=3).map("/".join), st.binary(max_size=64), max_size=8))
def test_any_tree_of_files_round_trips(tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes]) -> None:
    # Keep only paths that do not nest inside another file.
    kept = {p: d for p, d in files.items() if not any(q != p and p.startswith(q + "/") for q in files)}
    store = MemoryArtifactStore()
    entries = [TreeEntry(p, FILE, store.put(io.BytesIO(d)).hash, len(d)) for p, d in kept.items()]
    tree = Tree.build(entries)
    target = tmp_path_factory.mktemp("restore")
    restore(store, tree, target)
    assert {str(p.relative_to(target)): p.read_bytes() for p in target.rglob("*") if p.is_file()} == kept
    assert snapshot(target, store).hash == tree.hash


def test_a_non_empty_directory_needs_force(tmp_path: Path, store: MemoryArtifactStore) -> None:
    tree = snapshot(build_source(tmp_path / "source"), store).tree
    target = tmp_path / "target"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    (target / "tool").write_text("an old version")
    with pytest.raises(ValidationError, match="not empty") as caught:
        restore(store, tree, target)
    assert "--force" in (caught.value.hint or "")
    assert sorted(p.name for p in target.iterdir()) == ["mine.txt", "tool"]
    restore(store, tree, target, force=True)
    assert (target / "mine.txt").read_text() == "keep me"
    assert (target / "tool").read_text() == "#!/bin/sh\n"


def test_a_symlinked_parent_is_refused_and_nothing_lands_outside(tmp_path: Path, store: MemoryArtifactStore) -> None:
    tree = snapshot(build_source(tmp_path / "source"), store).tree
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (target / "a").symlink_to(outside)  # a/b/deep.txt would land in outside/b/deep.txt
    with pytest.raises(ValidationError, match="'a' is a symbolic link"):
        restore(store, tree, target, force=True)
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in target.iterdir()) == ["a"], "nothing is written before the check"


def test_a_file_where_a_directory_belongs_is_refused(tmp_path: Path, store: MemoryArtifactStore) -> None:
    tree = snapshot(build_source(tmp_path / "source"), store).tree
    target = tmp_path / "target"
    target.mkdir()
    (target / "a").write_text("a file, not a directory")
    with pytest.raises(ValidationError, match="not a directory"):
        restore(store, tree, target, force=True)
    (target / "a").unlink()
    (target / "tool").mkdir()
    with pytest.raises(ValidationError, match="a directory is in the way"):
        restore(store, tree, target, force=True)


def test_a_tree_escaping_its_directory_never_loads(tmp_path: Path, store: MemoryArtifactStore) -> None:
    content = store.put(io.BytesIO(b"owned")).hash
    for path in ("../escape.txt", "/tmp/absolute.txt", "a/../../escape.txt"):
        crafted = canonical_json(
            {"type": "cairn.tree", "version": 1, "entries": [{"path": path, "mode": FILE, "hash": content, "size": 5}]}
        )
        digest = store.put(io.BytesIO(crafted)).hash
        with pytest.raises(ValidationError, match="tree path"):
            load_tree(store, digest)
    assert not (tmp_path.parent / "escape.txt").exists()


def test_a_link_then_a_file_through_it_never_loads(store: MemoryArtifactStore) -> None:
    content = store.put(io.BytesIO(b"x")).hash
    crafted = canonical_json(
        {
            "type": "cairn.tree",
            "version": 1,
            "entries": [
                {"path": "evil", "mode": "120000", "hash": sha256_hex(b"/etc"), "size": 4, "target": "/etc"},
                {"path": "evil/passwd", "mode": FILE, "hash": content, "size": 1},
            ],
        }
    )
    with pytest.raises(ValidationError, match="inside 'evil'"):
        load_tree(store, store.put(io.BytesIO(crafted)).hash)


def test_a_corrupt_object_never_lands(tmp_path: Path, store: MemoryArtifactStore) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "report.txt").write_text("the real report")
    tree = snapshot(source, store).tree
    digest = tree.by_path()["report.txt"].hash
    store.objects[digest] = (b"the fake report", store.objects[digest][1])
    target = tmp_path / "target"
    with pytest.raises(IntegrityError, match=digest):
        restore(store, tree, target)
    assert list(target.iterdir()) == []
