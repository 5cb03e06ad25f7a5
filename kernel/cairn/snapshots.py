"""Directory snapshots: a directory's files into an artifact store, recorded as a ``cairn.trees.Tree``.

``snapshot(directory, store)`` walks the directory without following
symbolic links, puts each file's bytes into the store and returns the tree
(whose hash names the snapshot; the tree itself is stored too). What it
meets:

- a symbolic link is recorded as a link (its target text), never followed,
  so a link loop is just a link;
- a special file (FIFO, socket, device) is skipped with a note;
- a file that cannot be read, vanishes, or changes while it is read
  (size, mtime or ctime differ before and after; it is tried three times)
  is reported and left out, and so is a name that is not valid UTF-8;
  with ``strict=True`` the first of these raises ``SnapshotError`` instead;
- ``exclude`` takes gitignore-style patterns relative to the directory;
  ``respect_gitignore`` also reads every ``.gitignore`` (and
  ``.git/info/exclude``) as git does, and leaves ``.git`` out;
- ``skip`` names absolute paths never to enter (cairn's own data directory).

Incremental, as git's index is: with a ``cache_dir``, the (size, mtime_ns,
ctime_ns, inode) of every file read is kept with its hash, one cache per
directory and store, and a file whose stat is unchanged is not read again.
A file whose mtime or ctime is less than two seconds older than the start
of the snapshot is never cached, so a change within one timestamp tick
cannot hide (git's "racy clean" problem). ``clear_stat_caches`` drops them all (gc must, after
deleting objects).

``restore`` (in ``cairn.restore``) writes a tree back into a directory.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import stat as _stat
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from cairn.artifacts import ArtifactInfo, ArtifactStore, check_digest
from cairn.durable import fsync_directory, open_temporary
from cairn.errors import NotFoundError, SnapshotError, ValidationError
from cairn.trees import EXECUTABLE, FILE, Tree, TreeEntry

if TYPE_CHECKING:  # pragma: no cover
    from pathspec import GitIgnoreSpec

__all__ = [
    "PROBLEM_KINDS",
    "RACY_NS",
    "SnapshotProblem",
    "SnapshotResult",
    "StatCache",
    "clear_stat_caches",
    "load_tree",
    "snapshot",
]

#: Files modified this recently before a snapshot began are not cached: coarse timestamps could hide a change.
RACY_NS = 2_000_000_000
#: Attempts at reading a file that keeps changing before it is reported.
READ_ATTEMPTS = 3
PROBLEM_KINDS = ("special", "unreadable", "vanished", "changed", "name")
_CACHE_VERSION = 1


@attrs.frozen
class SnapshotProblem:
    """A path the snapshot could not keep, and why (``kind`` is one of ``PROBLEM_KINDS``)."""

    path: str
    kind: str
    detail: str

    def to_record(self) -> dict[str, str]:
        return {"path": self.path, "kind": self.kind, "detail": self.detail}

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}"


@attrs.frozen
class SnapshotResult:
    """The tree, what it cost (files read, files taken from the stat cache, bytes read) and what was left out."""

    tree: Tree
    files_read: int
    files_cached: int
    bytes_read: int
    problems: tuple[SnapshotProblem, ...]

    @property
    def hash(self) -> str:
        return self.tree.hash

    def to_record(self) -> dict[str, Any]:
        return {
            "tree": self.tree.hash,
            "files": len(self.tree),
            "bytes": self.tree.size,
            "files_read": self.files_read,
            "files_cached": self.files_cached,
            "bytes_read": self.bytes_read,
            "problems": [p.to_record() for p in self.problems],
        }


def load_tree(store: ArtifactStore, digest: str) -> Tree:
    """The tree stored under ``digest``, checked (``ValidationError`` if that object is not a tree)."""
    check_digest(digest, what="tree hash")
    try:
        data = store.read_bytes(digest)
    except NotFoundError:
        raise NotFoundError(
            "snapshot tree", digest, hint=f"nothing by that hash in {store.location}; `cairn snapshot list` lists them"
        ) from None
    return Tree.decode(data, digest)


# -- the stat cache ---------------------------------------------------------------------------


class StatCache:
    """path -> (size, mtime_ns, ctime_ns, inode, hash) of one directory's files in one store, kept as JSON."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.old: dict[str, list[Any]] = {}
        self.new: dict[str, list[Any]] = {}
        if path is not None:
            self.old = _read_cache(path)

    @staticmethod
    def location(cache_dir: Path, root: Path, store: ArtifactStore) -> Path:
        key = hashlib.sha256(f"{root}\0{store.name}\0{store.location}".encode("utf-8", "surrogateescape"))
        return cache_dir / f"{key.hexdigest()[:32]}.json"

    def lookup(self, path: str, st: os.stat_result) -> str | None:
        known = self.old.get(path)
        if known is not None and known[:4] == [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]:
            self.new[path] = known
            return str(known[4])
        return None

    def record(self, path: str, st: os.stat_result, digest: str) -> None:
        self.new[path] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, digest]

    def save(self, started_ns: int) -> None:
        """Write what this snapshot saw, leaving out files too recently modified to trust (atomic; best effort)."""
        if self.path is None:
            return
        limit = started_ns - RACY_NS
        kept = {p: v for p, v in self.new.items() if v[1] < limit and v[2] < limit}
        data = json.dumps({"version": _CACHE_VERSION, "entries": kept}, separators=(",", ":")).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = open_temporary(self.path.parent)
            try:
                os.write(fd, data)  # a cache: no fsync; a torn file reads as empty and costs one full read
            finally:
                os.close(fd)
            os.replace(temporary, self.path)
        except OSError:
            pass  # the snapshot is done; a cache that cannot be written only costs time next time


def _read_cache(path: Path) -> dict[str, list[Any]]:
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(value, dict) or value.get("version") != _CACHE_VERSION:
        return {}
    entries = value.get("entries")
    return entries if isinstance(entries, dict) else {}


def clear_stat_caches(cache_dir: Path) -> int:
    """Remove every stat cache under ``cache_dir`` (after objects were deleted); returns how many."""
    removed = 0
    try:
        names = os.listdir(cache_dir)
    except FileNotFoundError:
        return 0
    for name in names:
        if name.endswith(".json"):
            try:
                os.unlink(cache_dir / name)
                removed += 1
            except FileNotFoundError:
                pass
    fsync_directory(cache_dir)
    return removed


# -- ignore rules ------------------------------------------------------------------------------


class _Ignore:
    """--exclude patterns (relative to the root) over the .gitignore files met on the way down."""

    def __init__(self, root: Path, exclude: Sequence[str], respect_gitignore: bool) -> None:
        self.respect_gitignore = respect_gitignore
        self.exclude: GitIgnoreSpec | None = None
        if exclude or respect_gitignore:
            import pathspec  # only when patterns are in play

            self._pathspec = pathspec
        if exclude:
            for pattern in exclude:
                if not isinstance(pattern, str) or not pattern.strip() or "\0" in pattern:
                    raise ValidationError(f"exclude pattern {pattern!r} is empty", hint="e.g. --exclude '*.log'")
            self.exclude = self._pathspec.GitIgnoreSpec.from_lines(list(exclude))
        self.top: list[tuple[str, GitIgnoreSpec]] = []
        if respect_gitignore:
            info = root / ".git" / "info" / "exclude"
            spec = self._read(info)
            if spec is not None:
                self.top.append(("", spec))

    def _read(self, path: Path) -> GitIgnoreSpec | None:
        try:
            lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
        except OSError:
            return None
        return self._pathspec.GitIgnoreSpec.from_lines(lines)

    def specs_for(
        self, directory: Path, rel: str, inherited: list[tuple[str, GitIgnoreSpec]]
    ) -> list[tuple[str, GitIgnoreSpec]]:
        """The rule stack for the entries of ``directory`` (``rel`` is its path in the tree, '' or ending in '/')."""
        if not self.respect_gitignore:
            return inherited
        spec = self._read(directory / ".gitignore")
        return inherited + [(rel, spec)] if spec is not None else inherited

    def ignored(self, path: str, is_dir: bool, specs: list[tuple[str, GitIgnoreSpec]]) -> bool:
        probe = path + "/" if is_dir else path
        if self.exclude is not None and self.exclude.match_file(probe):
            return True
        if not self.respect_gitignore:
            return False
        if is_dir and path.rsplit("/", 1)[-1] == ".git":
            return True
        # The deepest .gitignore with an opinion decides, as in git.
        for base, spec in reversed(specs):
            verdict = spec.check_file(probe[len(base) :]).include
            if verdict is not None:
                return bool(verdict)
        return False


# -- the walk ----------------------------------------------------------------------------------


def _special_kind(mode: int) -> str:
    if _stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if _stat.S_ISSOCK(mode):
        return "a socket"
    if _stat.S_ISCHR(mode) or _stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ctime_ns, a.st_ino) == (b.st_size, b.st_mtime_ns, b.st_ctime_ns, b.st_ino)


class _Walk:
    def __init__(
        self,
        root: Path,
        store: ArtifactStore,
        cache: StatCache,
        ignore: _Ignore,
        skip: set[str],
        strict: bool,
        progress: Callable[[str], None] | None,
    ) -> None:
        self.root = root
        self.store = store
        self.cache = cache
        self.ignore = ignore
        self.skip = skip
        self.strict = strict
        self.progress = progress
        self.entries: list[TreeEntry] = []
        self.problems: list[SnapshotProblem] = []
        self.files_read = 0
        self.files_cached = 0
        self.bytes_read = 0

    def problem(self, path: str, kind: str, detail: str) -> None:
        found = SnapshotProblem(path, kind, detail)
        if self.strict:
            raise SnapshotError(
                f"{path}: {detail}",
                hint="fix or exclude it (--exclude), or snapshot without --strict to record the rest",
            )
        self.problems.append(found)

    def run(self) -> None:
        stack: list[tuple[Path, str, list[tuple[str, GitIgnoreSpec]]]] = [(self.root, "", self.ignore.top)]
        while stack:
            directory, rel, inherited = stack.pop()
            try:
                with os.scandir(directory) as listing:
                    children = sorted(listing, key=lambda e: e.name)
            except FileNotFoundError:
                self.problem(rel.rstrip("/") or ".", "vanished", "the directory disappeared while it was read")
                continue
            except OSError as exc:
                self.problem(rel.rstrip("/") or ".", "unreadable", f"cannot list the directory: {exc.strerror}")
                continue
            specs = self.ignore.specs_for(directory, rel, inherited)
            subdirectories = []
            for child in children:
                try:
                    child.name.encode("utf-8")
                except UnicodeEncodeError:
                    shown = rel + child.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                    self.problem(shown, "name", "the name is not valid UTF-8, so no tree can hold it")
                    continue
                path = rel + child.name
                try:
                    is_dir = child.is_dir(follow_symlinks=False)
                except OSError:
                    is_dir = False
                if self.ignore.ignored(path, is_dir, specs):
                    continue
                if is_dir:
                    if child.path not in self.skip:
                        subdirectories.append((Path(child.path), path + "/", specs))
                    continue
                self.visit(child, path)
            stack.extend(reversed(subdirectories))  # depth first, in name order

    def visit(self, child: os.DirEntry[str], path: str) -> None:
        try:
            st = child.stat(follow_symlinks=False)
        except FileNotFoundError:
            self.problem(path, "vanished", "it disappeared before it could be read")
            return
        except OSError as exc:
            self.problem(path, "unreadable", f"cannot stat it: {exc.strerror}")
            return
        if _stat.S_ISLNK(st.st_mode):
            self.link(child.path, path)
        elif _stat.S_ISREG(st.st_mode):
            self.file(child.path, path, st)
        else:
            self.problem(path, "special", f"skipped: {_special_kind(st.st_mode)}")

    def link(self, absolute: str, path: str) -> None:
        try:
            target = os.readlink(absolute)
        except FileNotFoundError:
            self.problem(path, "vanished", "the link disappeared before it could be read")
            return
        except OSError as exc:
            self.problem(path, "unreadable", f"cannot read the link: {exc.strerror}")
            return
        try:
            self.entries.append(TreeEntry.link(path, target))
        except UnicodeEncodeError:
            self.problem(path, "name", "the link's target is not valid UTF-8, so no tree can hold it")

    def file(self, absolute: str, path: str, listed: os.stat_result) -> None:
        mode = EXECUTABLE if listed.st_mode & _stat.S_IXUSR else FILE
        cached = self.cache.lookup(path, listed)
        if cached is not None:
            self.entries.append(TreeEntry(path, mode, cached, listed.st_size))
            self.files_cached += 1
            return
        if self.progress is not None:
            self.progress(path)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
        for _ in range(READ_ATTEMPTS):
            try:
                fd = os.open(absolute, flags)
            except FileNotFoundError:
                self.problem(path, "vanished", "it disappeared before it could be read")
                return
            except PermissionError:
                self.problem(path, "unreadable", "permission denied")
                return
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    self.problem(path, "changed", "it was replaced by a symbolic link while the snapshot ran")
                else:
                    self.problem(path, "unreadable", f"cannot open it: {exc.strerror}")
                return
            with os.fdopen(fd, "rb", buffering=0) as stream:
                before = os.fstat(fd)
                if not _stat.S_ISREG(before.st_mode):
                    self.problem(path, "changed", "it was replaced by something that is not a file")
                    return
                try:
                    info: ArtifactInfo = self.store.put(stream)
                except OSError as exc:  # reading the file failed (a store's own failures are StorageErrors)
                    self.problem(path, "unreadable", f"reading failed: {exc.strerror}")
                    return
                after = os.fstat(fd)
            self.files_read += 1
            self.bytes_read += info.size
            if _same(before, after) and info.size == before.st_size:
                mode = EXECUTABLE if before.st_mode & _stat.S_IXUSR else FILE
                self.cache.record(path, before, info.hash)
                self.entries.append(TreeEntry(path, mode, info.hash, info.size))
                return
        self.problem(path, "changed", f"it kept changing while it was read ({READ_ATTEMPTS} attempts)")


def snapshot(
    directory: Path | str,
    store: ArtifactStore,
    *,
    exclude: Sequence[str] = (),
    respect_gitignore: bool = False,
    strict: bool = False,
    cache_dir: Path | None = None,
    skip: Iterable[Path | str] = (),
    progress: Callable[[str], None] | None = None,
) -> SnapshotResult:
    """Put every file under ``directory`` into ``store`` and store the tree; see the module docstring.

    ``progress(path)`` is called before each file is read (not for files
    the stat cache vouches for).
    """
    root = Path(directory)
    try:
        root = root.resolve(strict=True)
    except (OSError, RuntimeError):
        raise NotFoundError("directory", str(directory), hint="check the path") from None
    if not root.is_dir():
        raise ValidationError(
            f"{directory} is not a directory", hint="snapshot a directory; put a file with `cairn artifact put`"
        )
    started = time.time_ns()
    ignore = _Ignore(root, exclude, respect_gitignore)
    cache = StatCache(StatCache.location(cache_dir, root, store) if cache_dir is not None else None)
    skipped = {os.path.realpath(p) for p in skip}
    walk = _Walk(root, store, cache, ignore, skipped, strict, progress)
    with store.batch():
        walk.run()
    tree = Tree.build(walk.entries)
    store.put(io.BytesIO(tree.encoded))  # after the files it names are durable
    cache.save(started)
    return SnapshotResult(tree, walk.files_read, walk.files_cached, walk.bytes_read, tuple(walk.problems))
