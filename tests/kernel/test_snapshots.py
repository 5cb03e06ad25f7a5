"""Snapshots of real directories into an artifact store: what is kept, what is reported, the stat cache."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cairn import snapshots
from cairn.artifacts import ArtifactInfo, Source
from cairn.errors import NotFoundError, SnapshotError, ValidationError
from cairn.snapshots import RACY_NS, clear_stat_caches, load_tree, snapshot
from cairn.testing.memory_artifacts import MemoryArtifactStore
from cairn.trees import EXECUTABLE, FILE, SYMLINK


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_tree(root: Path) -> Path:
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "mod.py").write_text("print('hi')\n")
    (root / "README.md").write_text("# readme\n")
    (root / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "run.sh").chmod(0o755)
    (root / "empty.txt").write_bytes(b"")
    (root / "docs").mkdir()
    (root / "docs" / "link.md").symlink_to("../README.md")
    return root


def backdate(root: Path, seconds: float = 3600) -> None:
    """Make every file's mtime old, as in a tree nobody has touched for a while (ctime stays: it cannot be set)."""
    old = time.time() - seconds
    for path in [root, *root.rglob("*")]:
        os.utime(path, (old, old), follow_symlinks=False)


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Shrink the racy window to 50 ms; calling the result waits until files written so far are outside it."""
    monkeypatch.setattr(snapshots, "RACY_NS", 50_000_000)
    return lambda: time.sleep(0.1)


@pytest.fixture
def store() -> MemoryArtifactStore:
    return MemoryArtifactStore()


def test_files_modes_and_links_are_recorded(tmp_path: Path, store: MemoryArtifactStore) -> None:
    root = make_tree(tmp_path / "tree")
    result = snapshot(root, store)
    entries = result.tree.by_path()
    assert sorted(entries) == ["README.md", "docs/link.md", "empty.txt", "run.sh", "src/pkg/mod.py"]
    assert entries["run.sh"].mode == EXECUTABLE
    assert entries["README.md"].mode == FILE
    assert entries["README.md"].hash == sha(b"# readme\n")
    link = entries["docs/link.md"]
    assert (link.mode, link.target, link.hash) == (SYMLINK, "../README.md", sha(b"../README.md"))
    assert result.problems == ()
    assert store.read_bytes(entries["src/pkg/mod.py"].hash) == b"print('hi')\n"
    assert load_tree(store, result.hash) == result.tree  # the tree is stored too


def test_the_same_files_give_the_same_hash_wherever_they_are(tmp_path: Path, store: MemoryArtifactStore) -> None:
    first = make_tree(tmp_path / "one")
    # A copy: other inodes, other times, another creation order, and on tmpfs when there is one.
    elsewhere = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else tmp_path
    second = Path(shutil.copytree(first, elsewhere / f"cairn-copy-{os.getpid()}-{time.time_ns()}", symlinks=True))
    try:
        backdate(second, 86400)
        assert snapshot(first, store).hash == snapshot(second, MemoryArtifactStore()).hash
    finally:
        shutil.rmtree(second)


def test_a_symlink_loop_is_recorded_as_links_never_followed(tmp_path: Path, store: MemoryArtifactStore) -> None:
    root = tmp_path / "loop"
    root.mkdir()
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    (root / "self").symlink_to(".")
    (root / "outside").symlink_to("/etc")
    entries = snapshot(root, store).tree.by_path()
    assert {p: e.target for p, e in entries.items()} == {"a": "b", "b": "a", "self": ".", "outside": "/etc"}


def test_special_files_are_skipped_with_a_note(tmp_path: Path, store: MemoryArtifactStore) -> None:
    root = tmp_path / "special"
    root.mkdir()
    (root / "keep.txt").write_text("kept")
    os.mkfifo(root / "pipe")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(root / "sock"))
        result = snapshot(root, store)
    assert sorted(result.tree.by_path()) == ["keep.txt"]
    kinds = {p.path: (p.kind, p.detail) for p in result.problems}
    assert kinds == {
        "pipe": ("special", "skipped: a named pipe (FIFO)"),
        "sock": ("special", "skipped: a socket"),
    }
    with pytest.raises(SnapshotError, match="pipe: skipped: a named pipe"):
        snapshot(root, store, strict=True)


def test_a_name_that_is_not_utf8_is_reported(tmp_path: Path, store: MemoryArtifactStore) -> None:
    root = tmp_path / "names"
    root.mkdir()
    (root / "fine.txt").write_text("ok")
    with open(os.path.join(os.fsencode(root), b"bad-\xff.txt"), "wb") as handle:
        handle.write(b"unnamed")
    result = snapshot(root, store)
    assert sorted(result.tree.by_path()) == ["fine.txt"]
    assert [(p.kind, p.path) for p in result.problems] == [("name", "bad-\ufffd.txt")]


def test_a_file_that_vanishes_is_reported_not_fatal(tmp_path: Path, store: MemoryArtifactStore) -> None:
    root = tmp_path / "vanish"
    root.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (root / name).write_text(name)

    def delete_b(path: str) -> None:
        if path == "a.txt":
            (root / "b.txt").unlink()

    result = snapshot(root, store, progress=delete_b)
    assert sorted(result.tree.by_path()) == ["a.txt", "c.txt"]
    assert [(p.path, p.kind) for p in result.problems] == [("b.txt", "vanished")]


class GrowingSourceStore(MemoryArtifactStore):
    """A real in-memory store whose reads of ``victim`` append to it halfway: a file written to mid-snapshot."""

    def __init__(self, victim: Path, times: int) -> None:
        super().__init__()
        self.victim = victim
        self.times = times

    def put(self, source: Source) -> ArtifactInfo:
        if (
            self.times
            and isinstance(source, io.FileIO)
            and os.path.samestat(os.fstat(source.fileno()), self.victim.stat())
        ):
            self.times -= 1
            head = source.read(4)
            with open(self.victim, "ab") as handle:
                handle.write(b" and more")
            return super().put(io.BytesIO(head + source.read()))
        return super().put(source)


@pytest.mark.parametrize(("times", "kept"), [(1, True), (10, False)])
def test_a_file_that_changes_while_it_is_read_is_detected(tmp_path: Path, times: int, kept: bool) -> None:
    root = tmp_path / "busy"
    root.mkdir()
    victim = root / "log.txt"
    victim.write_text("first line")
    (root / "quiet.txt").write_text("still")
    store = GrowingSourceStore(victim, times)
    result = snapshot(root, store)
    entries = result.tree.by_path()
    if kept:  # changed once, read again: the entry holds what the file held once it was still
        assert entries["log.txt"].hash == sha(victim.read_bytes())
        assert result.problems == ()
    else:  # kept changing: reported, left out
        assert "log.txt" not in entries
        assert [(p.path, p.kind) for p in result.problems] == [("log.txt", "changed")]
        assert "kept changing" in result.problems[0].detail
    assert "quiet.txt" in entries


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_reported(tmp_path: Path, store: MemoryArtifactStore) -> None:
    root = tmp_path / "locked"
    root.mkdir()
    (root / "secret.txt").write_text("no")
    (root / "secret.txt").chmod(0)
    (root / "open.txt").write_text("yes")
    try:
        result = snapshot(root, store)
        assert [(p.path, p.kind) for p in result.problems] == [("secret.txt", "unreadable")]
        with pytest.raises(SnapshotError, match="secret.txt"):
            snapshot(root, store, strict=True)
    finally:
        (root / "secret.txt").chmod(0o600)


def test_excludes_are_gitignore_patterns(tmp_path: Path, store: MemoryArtifactStore) -> None:
    root = make_tree(tmp_path / "tree")
    (root / "build").mkdir()
    (root / "build" / "out.o").write_bytes(b"\0")
    (root / "debug.log").write_text("log")
    (root / "src" / "pkg" / "trace.log").write_text("log")
    result = snapshot(root, store, exclude=["*.log", "build/", "/run.sh"])
    assert sorted(result.tree.by_path()) == ["README.md", "docs/link.md", "empty.txt", "src/pkg/mod.py"]
    with pytest.raises(ValidationError, match="empty"):
        snapshot(root, store, exclude=[""])


def test_gitignore_files_are_respected_as_git_does(tmp_path: Path, store: MemoryArtifactStore) -> None:
    root = tmp_path / "repo"
    (root / ".git" / "info").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".git" / "info" / "exclude").write_text("local-only.txt\n")
    (root / ".gitignore").write_text("*.log\n/dist/\n")
    (root / "app.py").write_text("app")
    (root / "app.log").write_text("log")
    (root / "local-only.txt").write_text("mine")
    (root / "dist").mkdir()
    (root / "dist" / "wheel.whl").write_bytes(b"whl")
    (root / "lib").mkdir()
    (root / "lib" / ".gitignore").write_text("!keep.log\ngenerated/\n")
    (root / "lib" / "keep.log").write_text("kept by the deeper rule")
    (root / "lib" / "other.log").write_text("ignored by the top rule")
    (root / "lib" / "generated").mkdir()
    (root / "lib" / "generated" / "x.py").write_text("gen")
    (root / "lib" / "dist").mkdir()
    (root / "lib" / "dist" / "kept.txt").write_text("/dist/ is anchored to the top")
    result = snapshot(root, store, respect_gitignore=True)
    assert sorted(result.tree.by_path()) == [
        ".gitignore",
        "app.py",
        "lib/.gitignore",
        "lib/dist/kept.txt",
        "lib/keep.log",
    ]
    everything = snapshot(root, store)
    assert ".git/HEAD" in everything.tree.by_path() and "app.log" in everything.tree.by_path()


def test_skipped_directories_are_never_entered(tmp_path: Path, store: MemoryArtifactStore) -> None:
    root = make_tree(tmp_path / "project")
    data = root / ".cairn"
    (data / "artifacts").mkdir(parents=True)
    (data / "artifacts" / "object").write_text("the store itself")
    result = snapshot(root, store, skip=[data])
    assert not any(path.startswith(".cairn") for path in result.tree.by_path())


def test_a_missing_directory_or_a_file_is_refused(tmp_path: Path, store: MemoryArtifactStore) -> None:
    with pytest.raises(NotFoundError, match="nowhere"):
        snapshot(tmp_path / "nowhere", store)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValidationError, match="not a directory"):
        snapshot(tmp_path / "file.txt", store)


# -- the stat cache ----------------------------------------------------------------------------


def test_unchanged_files_are_not_read_again(
    tmp_path: Path, store: MemoryArtifactStore, settled: Callable[[], None]
) -> None:
    root = make_tree(tmp_path / "tree")
    cache = tmp_path / "cache"
    settled()
    first = snapshot(root, store, cache_dir=cache)
    assert (first.files_read, first.files_cached) == (4, 0)  # the link is not a file
    second = snapshot(root, store, cache_dir=cache)
    assert (second.files_read, second.files_cached, second.hash) == (0, 4, first.hash)
    (root / "README.md").write_text("# changed\n")
    third = snapshot(root, store, cache_dir=cache)
    assert (third.files_read, third.files_cached) == (1, 3)
    assert third.tree.by_path()["README.md"].hash == sha(b"# changed\n")


def test_a_change_that_keeps_size_and_mtime_is_still_seen_through_ctime(
    tmp_path: Path, store: MemoryArtifactStore, settled: Callable[[], None]
) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    target = root / "data.bin"
    target.write_bytes(b"AAAA")
    backdate(root)
    settled()
    cache = tmp_path / "cache"
    snapshot(root, store, cache_dir=cache)
    stat = target.stat()
    assert snapshot(root, store, cache_dir=cache).files_cached == 1
    target.write_bytes(b"BBBB")  # same size ...
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ... and the same mtime, as tar or rsync leave it
    again = snapshot(root, store, cache_dir=cache)
    assert again.tree.by_path()["data.bin"].hash == sha(b"BBBB")


def test_recently_modified_files_are_never_trusted_from_the_cache(tmp_path: Path, store: MemoryArtifactStore) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "fresh.txt").write_text("just written")
    cache = tmp_path / "cache"
    snapshot(root, store, cache_dir=cache)
    again = snapshot(root, store, cache_dir=cache)
    assert again.files_read == 1, f"a file modified less than {RACY_NS / 1e9:.0f} s before was trusted"


def test_caches_are_per_store_and_can_be_cleared(
    tmp_path: Path, store: MemoryArtifactStore, settled: Callable[[], None]
) -> None:
    root = make_tree(tmp_path / "tree")
    settled()
    cache = tmp_path / "cache"
    snapshot(root, store, cache_dir=cache)
    other = MemoryArtifactStore()
    assert snapshot(root, other, cache_dir=cache).files_read == 4  # another store has none of the objects
    assert snapshot(root, store, cache_dir=cache).files_read == 0
    assert clear_stat_caches(cache) == 2
    assert snapshot(root, store, cache_dir=cache).files_read == 4


def test_a_torn_cache_costs_a_full_read_not_a_wrong_tree(
    tmp_path: Path, store: MemoryArtifactStore, settled: Callable[[], None]
) -> None:
    root = make_tree(tmp_path / "tree")
    settled()
    cache = tmp_path / "cache"
    first = snapshot(root, store, cache_dir=cache)
    for path in cache.iterdir():
        path.write_bytes(path.read_bytes()[:40])
    again = snapshot(root, store, cache_dir=cache)
    assert (again.files_read, again.hash) == (4, first.hash)
