"""``FileStore``: versioned context in a directory of plain files.

It provides three storage facets, objects, refs and annotations: enough for
every context command (commit, log, branch, pin, materialize, diff, export,
import, fsck). It keeps no run ledger and no chat, so ``cairn runs list``
says the backend does not keep them. It is written as a third party would
write a backend, against ``cairn.storage``'s public contracts only.

Layout under the store's directory::

    blobs/ab/<hash>          the canonical JSON bytes of each content blob
    commits/ab/<hash>.json   each commit's record (hashed and derived fields)
    refs.json                every ref, replaced atomically on each change
    annotations.jsonl        one annotation per line, appended
    lock                     the write lock (filelock)

Every write holds the lock, writes new files to a temporary name in the
target directory, fsyncs and renames them, and publishes refs last, so a
crash leaves at worst unreferenced objects, never a ref to something
missing. Readers take no lock: files appear whole (rename is atomic).

Look-ups that a database would index (children, by type, by time, by
target) scan the commit files, with every commit read once per process and
kept (commits are immutable). That is fine for the small histories this
example is for; a real backend indexes them.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from filelock import FileLock

from cairn.errors import ConflictError, IntegrityError, MissingFacetError, StorageError, ValidationError
from cairn.model import Annotation, Commit, Priority, is_hash, sha256_hex
from cairn.storage import AnnotationStore, ObjectStore, RefStore, RefUpdate

__all__ = ["FileStore", "open_in_directory"]


class FileStore(ObjectStore, RefStore, AnnotationStore):
    """Objects, refs and annotations in plain files (see the module docstring)."""

    name = "files"

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        try:
            for sub in ("blobs", "commits"):
                (self.directory / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the store directory {self.directory}: {exc.strerror}",
                hint="check [storage.files] path and the directory's permissions",
            ) from None
        self._lock = FileLock(str(self.directory / "lock"))
        self._guard = threading.RLock()  # the commit cache is shared by threads
        self._commits: dict[str, Commit] = {}
        self._listed: set[str] = set()  # commit files already read into the cache
        self._notes: list[Annotation] = []
        self._notes_read = 0  # bytes of annotations.jsonl already parsed

    def __repr__(self) -> str:
        return f"FileStore({str(self.directory)!r})"

    # -- files ---------------------------------------------------------------------------

    def _blob_path(self, digest: str) -> Path:
        return self.directory / "blobs" / digest[:2] / digest

    def _commit_path(self, digest: str) -> Path:
        return self.directory / "commits" / digest[:2] / f"{digest}.json"

    @staticmethod
    def _publish(path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` whole or not at all: a fresh temporary file, fsync, rename."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
        # O_EXCL with a random name: never follows or reuses a file someone planted.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _fsync_directory(path.parent)

    def _locked(self, action: str) -> FileLock:
        try:
            self._lock.acquire(timeout=30)
        except Exception as exc:  # filelock.Timeout, or an OSError on the lock file
            raise StorageError(f"cannot {action}: the store at {self.directory} stays locked ({exc})") from None
        return self._lock

    # -- objects ---------------------------------------------------------------------------

    def write(
        self,
        *,
        blobs: Mapping[str, bytes] | None = None,
        commits: Sequence[Commit] = (),
        refs: Sequence[RefUpdate] = (),
        token_counts: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        if token_counts:
            raise MissingFacetError(self.name, "token_counts", "a token-count cache")
        blobs = dict(blobs or {})
        for digest, data in blobs.items():
            if sha256_hex(bytes(data)) != digest:
                raise IntegrityError(f"blob {digest[:12]}: content does not match its hash")
        updates = _checked_refs(refs)
        if not (blobs or commits or updates):
            return
        lock = self._locked("write")
        try:
            batch = {c.hash for c in commits}
            for commit in commits:
                for label, link in (
                    ("parent", commit.parent),
                    ("target", commit.target),
                    ("merged-in parent", commit.merge_parent),
                ):
                    if link is not None and link not in batch and not self._commit_path(link).exists():
                        raise IntegrityError(f"commit {commit.short}: {label} {link[:12]} is not stored")
                content_hash = commit.content_hash
                if (
                    content_hash is not None
                    and content_hash not in blobs
                    and not self._blob_path(content_hash).exists()
                ):
                    raise IntegrityError(f"commit {commit.short}: content {content_hash[:12]} is not stored")
            current = self._read_refs()
            new_refs = _applied(current, updates)
            for digest, data in blobs.items():
                if not self._blob_path(digest).exists():
                    self._publish(self._blob_path(digest), bytes(data))
            for commit in commits:
                path = self._commit_path(commit.hash)
                if not path.exists():
                    self._publish(path, json.dumps(commit.to_record(), sort_keys=True).encode("utf-8"))
            if updates:
                self._write_refs(new_refs)
        finally:
            lock.release()

    def get_blobs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for digest in hashes:
            if digest in found or not is_hash(digest):
                continue
            try:
                found[digest] = self._blob_path(digest).read_bytes()
            except FileNotFoundError:
                continue
        return found

    def _load(self, digest: str) -> Commit | None:
        with self._guard:
            cached = self._commits.get(digest)
        if cached is not None:
            return cached
        if not is_hash(digest):
            return None
        try:
            record = json.loads(self._commit_path(digest).read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise IntegrityError(f"commit {digest[:12]}: its file is not valid JSON ({exc})") from None
        commit = Commit.from_record(record)
        with self._guard:
            self._commits[digest] = commit
        return commit

    def get_commits(self, hashes: Iterable[str]) -> dict[str, Commit]:
        found: dict[str, Commit] = {}
        for digest in hashes:
            if digest not in found and (commit := self._load(digest)) is not None:
                found[digest] = commit
        return found

    def ancestors(self, start: str, *, limit: int | None = None) -> list[Commit]:
        out: list[Commit] = []
        digest: str | None = start
        while digest is not None and (limit is None or len(out) < limit):
            commit = self._load(digest)
            if commit is None:
                break
            out.append(commit)
            digest = commit.parent
        return out

    def _all(self) -> list[Commit]:
        """Every stored commit; files not seen before are read once and cached."""
        root = self.directory / "commits"
        for shard in sorted(os.listdir(root)):
            for entry in os.listdir(root / shard):
                if entry.endswith(".json") and entry not in self._listed:
                    self._load(entry[: -len(".json")])
                    self._listed.add(entry)
        with self._guard:
            return list(self._commits.values())

    def _select(
        self, keep: Callable[[Commit], bool], since: str | None, until: str | None, limit: int | None
    ) -> list[Commit]:
        found = [
            c
            for c in self._all()
            if keep(c) and (since is None or c.created_at >= since) and (until is None or c.created_at <= until)
        ]
        found.sort(key=lambda c: (c.created_at, c.hash), reverse=True)
        return found if limit is None else found[:limit]

    def children(self, commit: str) -> list[Commit]:
        kids = [c for c in self._all() if c.parent == commit]
        return sorted(kids, key=lambda c: (c.created_at, c.hash))

    def commits_by_type(
        self, content_type: str, *, since: str | None = None, until: str | None = None, limit: int | None = None
    ) -> list[Commit]:
        return self._select(lambda c: c.content_type == content_type, since, until, limit)

    def commits_by_time(
        self, *, since: str | None = None, until: str | None = None, limit: int | None = None
    ) -> list[Commit]:
        return self._select(lambda c: True, since, until, limit)

    def commits_targeting(self, targets: Iterable[str]) -> list[Commit]:
        wanted = set(targets)
        found = [c for c in self._all() if c.target in wanted]
        return sorted(found, key=lambda c: (c.created_at, c.hash))

    def find_commits(self, prefix: str, *, limit: int = 10) -> list[str]:
        if not prefix or not all(ch in "0123456789abcdef" for ch in prefix):
            return []
        root = self.directory / "commits"
        found: list[str] = []
        for shard in sorted(os.listdir(root)):
            if not shard.startswith(prefix[:2]):
                continue
            names = sorted(n[: -len(".json")] for n in os.listdir(root / shard) if n.endswith(".json"))
            found.extend(n for n in names if n.startswith(prefix))
        return found[:limit]

    # -- refs -------------------------------------------------------------------------------

    def _read_refs(self) -> dict[str, str]:
        try:
            data = json.loads((self.directory / "refs.json").read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise IntegrityError(f"{self.directory / 'refs.json'} is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise IntegrityError(f"{self.directory / 'refs.json'} does not hold a JSON object")
        return {str(k): str(v) for k, v in data.items()}

    def _write_refs(self, refs: Mapping[str, str]) -> None:
        self._publish(self.directory / "refs.json", json.dumps(dict(sorted(refs.items())), indent=1).encode("utf-8"))

    def get_ref(self, name: str) -> str | None:
        return self._read_refs().get(name)

    def list_refs(self, prefix: str = "") -> dict[str, str]:
        return {k: v for k, v in sorted(self._read_refs().items()) if k.startswith(prefix)}

    def update_refs(self, updates: list[RefUpdate]) -> None:
        checked = _checked_refs(updates)
        if not checked:
            return
        lock = self._locked("move refs")
        try:
            self._write_refs(_applied(self._read_refs(), checked))
        finally:
            lock.release()

    # -- annotations ---------------------------------------------------------------------

    def _annotations(self) -> list[Annotation]:
        """Every annotation in the order added; only new bytes of the file are parsed."""
        path = self.directory / "annotations.jsonl"
        with self._guard:
            try:
                with open(path, "rb") as handle:
                    handle.seek(self._notes_read)
                    data = handle.read()
            except FileNotFoundError:
                return list(self._notes)
            complete = data[: data.rfind(b"\n") + 1]  # a line still being appended waits for its newline
            for line in complete.splitlines():
                if line.strip():
                    self._notes.append(Annotation.from_record(json.loads(line)))
            self._notes_read += len(complete)
            return list(self._notes)

    def add_annotations(self, annotations: Sequence[Annotation]) -> None:
        if not annotations:
            return
        lock = self._locked("add annotations")
        try:
            for note in annotations:
                if not self._commit_path(note.target).exists():
                    raise IntegrityError(f"annotation on {note.target[:12]}: no such commit is stored")
            known = {n.id for n in self._annotations()}
            lines = []
            for note in annotations:
                if note.id not in known:
                    known.add(note.id)
                    lines.append(json.dumps(note.to_record(), sort_keys=True) + "\n")
            if lines:
                _append(self.directory / "annotations.jsonl", "".join(lines).encode("utf-8"))
        finally:
            lock.release()

    def _latest(self, as_of: str | None) -> dict[str, Annotation]:
        latest: dict[str, Annotation] = {}
        for note in self._annotations():  # in the order added: a tie goes to the one added last
            if as_of is not None and note.created_at > as_of:
                continue
            known = latest.get(note.target)
            if known is None or note.created_at >= known.created_at:
                latest[note.target] = note
        return latest

    def latest_annotations(self, targets: Iterable[str], *, as_of: str | None = None) -> dict[str, Annotation]:
        wanted = set(targets)
        if not wanted:
            return {}
        return {t: n for t, n in self._latest(as_of).items() if t in wanted}

    def annotation_history(self, target: str) -> list[Annotation]:
        notes = [n for n in self._annotations() if n.target == target]
        # Oldest first; the sort is stable, so ties keep the order they were added in.
        return sorted(notes, key=lambda n: n.created_at)

    def annotated(self, priority: Priority, *, as_of: str | None = None) -> dict[str, Annotation]:
        return {t: n for t, n in self._latest(as_of).items() if n.priority is priority}


def _checked_refs(refs: Sequence[RefUpdate]) -> list[RefUpdate]:
    out = []
    for update in refs:
        if not isinstance(update, RefUpdate):
            raise ValidationError(f"expected a cairn.storage.RefUpdate, got {type(update).__name__}", what="write")
        out.append(update)
    names = [u.name for u in out]
    if len(set(names)) != len(names):
        raise ValidationError("a write may move each ref once", what="write", field="refs")
    return out


def _applied(current: dict[str, str], updates: Sequence[RefUpdate]) -> dict[str, str]:
    """``current`` with every update applied, or ``ConflictError`` (and nothing applied)."""
    for update in updates:
        actual = current.get(update.name)
        if actual != update.expected:
            raise ConflictError(update.name, update.expected, actual)
    new = dict(current)
    for update in updates:
        if update.new is None:
            new.pop(update.name, None)
        else:
            new[update.name] = update.new
    return new


def _append(path: Path, data: bytes) -> None:
    """Append whole lines durably, first cutting off a line a crash left unfinished."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        size = os.fstat(fd).st_size
        if size:
            os.lseek(fd, size - 1, os.SEEK_SET)
            if os.read(fd, 1) != b"\n":
                keep = _last_newline(fd, size)
                os.ftruncate(fd, keep)
                size = keep
        os.lseek(fd, size, os.SEEK_SET)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _last_newline(fd: int, size: int) -> int:
    """The length of the file up to and including its last newline (0 if it has none)."""
    position = size
    while position > 0:
        start = max(0, position - 65536)
        os.lseek(fd, start, os.SEEK_SET)
        chunk = os.read(fd, position - start)
        found = chunk.rfind(b"\n")
        if found >= 0:
            return start + found + 1
        position = start
    return 0


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def open_in_directory(directory: str | os.PathLike[str]) -> FileStore:
    """Open (creating when needed) a store in ``directory``: the conformance suites' ``store_opener``."""
    return FileStore(directory)
