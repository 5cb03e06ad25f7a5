"""``GitStore``: everything cairn keeps, inside the git repository the project lives in.

Nothing touches the working tree, the index, HEAD, hooks or ``.gitignore``:
objects are written in process (the few of a small write as one small pack,
or loose files with ``gc_auto`` off; a big write as one pack), and every ref
change is one ``git update-ref --stdin`` transaction that names each ref's
old value, so git checks them all under its locks and applies all or none
(compare-and-swap). A transaction that loses a race is rebuilt on the new
state and retried; a cairn-level compare-and-swap that fails raises
``ConflictError``. Refs (``<ns>`` is the namespace, ``cairn`` by default)::

    refs/<ns>/objects                     catalog of context objects (see cairn_git._catalog)
    refs/<ns>/context/<name>.ref          one per cairn ref (HEAD, refs/heads/<branch>, ...),
                                          pointing at a blob that holds its value
    refs/heads/<ledger_branch>            the run ledger (see cairn_git._ledger)
    refs/<ns>/runs/<run_id>               an annotated tag per run (or refs/tags/<ns>/run/<run_id>)
    refs/notes/<ns>-chat                  run-attached chat messages: a JSONL note on each run's tag
                                          (see cairn_git._notes)
    refs/<ns>/remotes/<remote>/...        what the last fetch saw of the remote's cairn refs
    refs/<ns>/sync/<remote>               the remote's context refs as the last sync merged them

Reads: the catalog is indexed in memory and brought up to date from a tree
diff whenever its ref has moved (one ``cat-file`` round trip to find out);
blobs, refs, runs and events are read through one long-lived
``git cat-file --batch-command`` process, many per round trip.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

import attrs

from cairn.errors import ConflictError, IntegrityError, NotFoundError, StorageError, ValidationError
from cairn.model import Annotation, Commit, Priority, sha256_hex
from cairn.model.chat import ChatMessage, Thread
from cairn.model.ledger import Run, RunEvent, SpendRecord, validate_run_id
from cairn.storage import (
    GcReport,
    Problem,
    RefUpdate,
    Store,
    StoreStats,
    Syncable,
    SyncReport,
    SyncStatus,
    check_objects,
    unreachable,
)
from cairn_git import _chat as chat
from cairn_git import _ledger as ledger
from cairn_git import _notes as notes
from cairn_git._catalog import (
    Catalog,
    annotation_bytes,
    annotation_path,
    blob_path,
    commit_bytes,
    commit_path,
    quote_name,
    token_path,
)
from cairn_git._git import (
    BLOB_MODE,
    TREE_MODE,
    CatFile,
    Git,
    GitCommandError,
    ObjectWriter,
    RefTransaction,
    TransactionFailed,
    discover,
    git_environment,
    identity,
    parse_commit,
    parse_tag,
)
from cairn_git._trees import Trees
from cairn_git.config import GitConfig

__all__ = ["GitStore", "open_in_directory"]

_T = TypeVar("_T")
_HEX = re.compile(r"\A[0-9a-f]*\Z")
_HASH = re.compile(r"\A[0-9a-f]{64}\Z")
#: Attempts at a transaction that keeps losing races before giving up.
_MAX_ATTEMPTS = 400
#: Refusals in a row with no ref moved and no lock in the way: something else is wrong, say so.
_MAX_UNEXPLAINED = 8
#: With gc_auto: a write of this many objects or more goes into a pack of its own.
_SMALL_PACK_AT = 4
#: With gc_auto: this many small packs of our own are merged into one; as many packs in the directory
#: call for ``git repack -d --geometric=2``.
_ROLL_UP_EVERY = 32


def _locked(method: Callable[..., _T]) -> Callable[..., _T]:
    """Serialize use of the store's git processes and refuse a closed store."""

    @functools.wraps(method)
    def call(self: GitStore, *args: Any, **kwargs: Any) -> _T:
        with self._lock:
            if self._closed:
                raise StorageError(
                    f"{self.git_dir}: the store is closed", hint="open the store again; a closed store cannot be used"
                )
            try:
                return method(self, *args, **kwargs)
            except OSError as exc:
                raise StorageError(
                    f"{self.git_dir}: could not read or write the repository: {exc}",
                    hint="check the permissions and free space of the repository's .git directory",
                ) from exc

    return call


def _writing(method: Callable[..., _T]) -> Callable[..., _T]:
    """``_locked``, and the method's new objects are held back and written together (see ``ObjectWriter.batch``)."""

    @functools.wraps(method)
    def call(self: GitStore, *args: Any, **kwargs: Any) -> _T:
        with self._writer.batch():
            return method(self, *args, **kwargs)

    return _locked(call)


def _keys(values: Iterable[str], what: str) -> list[str]:
    out = list(dict.fromkeys(values))
    for value in out:
        if not isinstance(value, str):
            raise ValidationError(f"expected strings, got {type(value).__name__} {value!r:.60}", what=what)
    return out


def _limit(limit: int | None) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValidationError(f"limit must be a whole number or None, got {limit!r}")
    return max(limit, 0)


def _wants_fsync(config: Mapping[str, str]) -> bool:
    """Whether git is configured to fsync loose objects (``core.fsync``, or the older ``core.fsyncObjectFiles``)."""
    if config.get("core.fsyncobjectfiles", "").lower() in ("true", "yes", "on", "1"):
        return True
    components = {c.strip().lower() for c in config.get("core.fsync", "").split(",")}
    return bool(components & {"all", "committed", "objects", "loose-object"})


def _int_config(config: Mapping[str, str], key: str, default: int) -> int:
    try:
        return int(config.get(key, default))
    except ValueError:
        return default


@attrs.define
class _LedgerChange:
    """What one ledger commit changes: files (None removes), its message, the refs that move with it."""

    edits: Mapping[str, tuple[str, str] | None]
    message: str
    refs: Callable[[str], list[str]] | None = None  # ref commands, given the new ledger commit
    done: Callable[[], None] | None = None  # run once the transaction is applied
    result: Any = None  # what the writing method returns


class GitStore(Store, Syncable):
    """A ``cairn.storage.Store`` kept in git objects and refs (see the module docstring).

    Safe to share between threads (calls are serialized) and between
    processes (git's ref locks decide every race, and losers retry).
    """

    capabilities = frozenset({"sync"})

    def __init__(
        self,
        repo: str | os.PathLike[str],
        *,
        namespace: str = "cairn",
        ledger_branch: str = "cairn-ledger",
        run_refs: str = "cairn",
        remote: str = "origin",
        gc_auto: bool = True,
    ) -> None:
        """Open the store in the git repository that holds ``repo``.

        ``StorageError`` when there is no repository there (run ``git init``
        or point ``repo`` at one) or git is missing.
        """
        try:
            GitConfig(
                repo=str(repo),
                namespace=namespace,
                ledger_branch=ledger_branch,
                run_refs=run_refs,
                remote=remote,
                gc_auto=gc_auto,
            )
        except (ValueError, TypeError) as exc:
            raise ValidationError(str(exc), what="storage.git") from None
        self.namespace = namespace
        self.ledger_branch = ledger_branch
        self.run_refs = run_refs
        self.remote = remote
        self.gc_auto = gc_auto
        self.path = Path(repo)
        self.git_dir, objects_dir, object_format = discover(self.path)
        self._git = Git(self.git_dir)
        settings = self._git.config()
        self._name = os.environ.get("GIT_COMMITTER_NAME") or settings.get("user.name")
        self._email = os.environ.get("GIT_COMMITTER_EMAIL") or settings.get("user.email")
        self._gc_threshold = (_int_config(settings, "gc.auto", 6700) + 255) // 256
        level = _int_config(settings, "core.loosecompression", _int_config(settings, "core.compression", 1))
        self._writer = ObjectWriter(
            objects_dir, object_format, fsync=_wants_fsync(settings), compression=level if 0 <= level <= 9 else 1
        )
        if gc_auto:
            # Each write's handful of objects becomes one small pack (two files, not one per object);
            # ``_after_write`` merges them and, when packs pile up, runs ``git repack --geometric``.
            self._writer.pack_at = _SMALL_PACK_AT
        self._cat = CatFile(self._git)
        self._tx = RefTransaction(self._git)
        self._trees = Trees(self._cat, self._writer)
        self._catalog = Catalog()
        self._lock = threading.RLock()
        self._closed = False
        self._values: dict[str, str] = {}  # blob id -> cairn ref value it holds
        self._runs: dict[str, Run] = {}  # tag id -> the run in its message
        self._parsed_files: dict[str, Any] = {}  # blob id -> spend record, message or thread it holds
        self._ledger_state: tuple[str | None, str | None] | None = None  # (tip, tree) last seen
        self._added = itertools.count()
        self._writes = 0
        self.last_gc_error: str | None = None
        self.gc_runs = 0  # how many times this store ran ``git gc --auto``
        self._gc_quiet_until = 0
        self._ident_cache: tuple[int, str] = (-1, "")

        self.objects_ref = f"refs/{namespace}/objects"
        self.context_prefix = f"refs/{namespace}/context/"
        self.ledger_ref = f"refs/heads/{ledger_branch}"
        self.anchor_prefix = f"refs/{namespace}/runs/" if run_refs == "cairn" else f"refs/tags/{namespace}/run/"
        self.sync_prefix = f"refs/{namespace}/sync/"
        self.notes_ref = f"refs/notes/{namespace}-chat"
        self._note_index_cache: tuple[str | None, dict[str, tuple[str, str]]] = (None, {})

    @classmethod
    def from_config(cls, config: GitConfig, *, project_dir: Path) -> GitStore:
        """Open the store ``[storage.git]`` describes; ``repo`` is relative to ``project_dir``."""
        repo = project_dir if config.repo is None else project_dir / Path(config.repo).expanduser()
        return cls(
            repo,
            namespace=config.namespace,
            ledger_branch=config.ledger_branch,
            run_refs=config.run_refs,
            remote=config.remote,
            gc_auto=config.gc_auto,
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<GitStore {self.git_dir} namespace={self.namespace} ({state})>"

    def close(self) -> None:
        """Stop the git processes (idempotent). The store is unusable afterwards."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._cat.close()
                self._tx.close()

    # -- small helpers -------------------------------------------------------------------------

    def _ident(self) -> str:
        now = int(time.time())
        if self._ident_cache[0] != now:
            self._ident_cache = (now, identity(self._name, self._email, now))
        return self._ident_cache[1]

    def _ref_command(self, ref: str, new: str | None, old: str | None) -> str:
        """One update-ref command that applies only if ``ref`` holds ``old`` (None: must not exist)."""
        if new is None:
            return f"delete {ref} {old}" if old is not None else f"verify {ref} {self._writer.zero}"
        if old is None:
            return f"create {ref} {new}"
        return f"update {ref} {new} {old}"

    def _apply(self, commands: Sequence[str]) -> str | None:
        """Apply a transaction; git's refusal message, or None when it was applied.

        Objects held back by a batch are written first: a ref never names a missing object.
        """
        self._writer.flush()
        try:
            self._tx.apply(commands)
        except TransactionFailed as failed:
            return failed.stderr or "update-ref refused the transaction"
        return None

    @staticmethod
    def _backoff(attempt: int) -> None:
        if attempt > 1:
            time.sleep(min(0.05, 0.0005 * attempt) * random.random())

    def _give_up(self, what: str, message: str | None) -> StorageError:
        return StorageError(
            f"{self.git_dir}: {what} kept failing: {message or 'other writers kept winning'}",
            hint="retry; if it persists, look for a stale *.lock file under the .git directory",
        )

    def _after_write(self) -> None:
        """Keep the object store in shape after a write, without paying a subprocess per write.

        - Small packs of our own are merged 32 at a time (``ObjectWriter.roll_up``);
        - when the pack directory holds 32 packs, ``git repack -d --geometric=2`` (checked on the
          first write and every 8th, and after each merge);
        - when ``objects/17`` holds more loose objects than ``gc.auto`` allows (git's own estimate,
          looked at every 4th write), ``git gc --auto`` -- not while a gc runs (``gc.pid``), nor
          again within 64 writes.
        """
        self._writes += 1
        if not self.gc_auto:
            return
        if self._writer.roll_up(_ROLL_UP_EVERY) or self._writes % 8 == 1:
            self._geometric_repack()
        if self._gc_threshold <= 0 or self._writes < self._gc_quiet_until or self._writes % 4:
            return  # (small writes make packs: loose objects come slowly, a look every 4th write is enough)
        try:
            loose = sum(
                1 for name in os.listdir(self._writer.objects_dir / "17") if len(name) == len(self._writer.zero) - 2
            )
        except FileNotFoundError:
            loose = 0
        if loose > self._gc_threshold and not (self.git_dir / "gc.pid").exists():
            self._gc_quiet_until = self._writes + 64
            self.gc_runs += 1
            try:
                self._git.run("gc", "--auto", "--quiet")
                self.last_gc_error = None
            except GitCommandError as exc:
                # The write itself is done and durable; a gc that could not run is retried later.
                self.last_gc_error = str(exc)

    def _geometric_repack(self) -> None:
        """When the pack directory fills up, ``git repack -d --geometric=2``: it merges packs only while
        their sizes fail to double, so it is cheap, deltifies what we wrote whole, and keeps the number of
        packs (what gc --auto and every lookup pay for) logarithmic."""
        try:
            names = os.listdir(self._writer.objects_dir / "pack")
        except FileNotFoundError:
            return
        if sum(1 for n in names if n.endswith(".idx")) - self._writer.small_packs < _ROLL_UP_EVERY:
            return  # our own small packs wait for roll_up, which is cheaper
        try:
            self._git.run("repack", "-d", "-q", "--geometric=2", "--no-write-bitmap-index")
        except GitCommandError as exc:
            self.last_gc_error = str(exc)

    # -- cairn refs as git refs ---------------------------------------------------------------

    def _git_ref(self, name: str) -> str:
        """``refs/<ns>/context/<quoted name>.ref``: each component quoted, so any cairn name is a safe git ref.

        The ``.ref`` suffix (every '.' inside a component is quoted) means no
        ref is ever a directory of another: ``a`` and ``a/b`` can both exist.
        """
        if not isinstance(name, str) or not name:
            raise ValidationError("a ref name must be a non-empty string", what="ref", given=name)
        parts = name.split("/")
        if any(not p for p in parts):
            raise ValidationError(
                f"ref name {name!r:.80} has an empty component",
                what="ref",
                hint="ref names are components separated by single '/'",
            )
        quoted = [quote_name(p) for p in parts]
        if any(len(p) > 200 for p in quoted) or len(name) > 1000:
            raise ValidationError(f"ref name {name[:60]!r}... is too long", what="ref")
        return self.context_prefix + "/".join(quoted) + ".ref"

    def _cairn_ref(self, git_ref: str) -> str | None:
        if not git_ref.startswith(self.context_prefix) or not git_ref.endswith(".ref"):
            return None
        body = git_ref[len(self.context_prefix) : -4]
        return "/".join(unquote(p) for p in body.split("/"))

    def _value_oid(self, value: str) -> str:
        oid = self._writer.oid("blob", value.encode("utf-8"))
        self._values[oid] = value
        return oid

    def _values_of(self, oids: Iterable[str]) -> dict[str, str]:
        """The cairn value each value-blob holds (read once, then cached: blobs never change)."""
        oids = list(oids)
        wanted = [o for o in dict.fromkeys(oids) if o not in self._values]
        for oid, found in zip(wanted, self._cat.read(wanted), strict=True):
            if found is not None and found[1] == "blob":
                self._values[oid] = found[2].decode("utf-8", errors="replace")
        return {o: self._values[o] for o in oids if o in self._values}

    def _context_refs(self) -> dict[str, tuple[str, str]]:
        """Every cairn ref: name -> (git ref, value-blob id). One ``for-each-ref``."""
        text = self._git.output("for-each-ref", "--format=%(objectname) %(refname)", self.context_prefix)
        out = {}
        for line in text.splitlines():
            oid, _, git_ref = line.partition(" ")
            name = self._cairn_ref(git_ref)
            if name is not None:
                out[name] = (git_ref, oid)
        return out

    def _read_values(self, git_refs: Sequence[str]) -> list[str | None]:
        found = self._cat.read(list(git_refs))
        out: list[str | None] = []
        for item in found:
            if item is None or item[1] != "blob":
                out.append(None)
            else:
                value = item[2].decode("utf-8", errors="replace")
                self._values[item[0]] = value
                out.append(value)
        return out

    # -- the catalog ------------------------------------------------------------------------------

    def _refresh(self) -> Catalog:
        """The catalog index, brought up to date if the catalog ref moved (one round trip when it did not)."""
        found = self._cat.info([self.objects_ref])[0]
        oid = found[0] if found is not None else None
        if oid != self._catalog.commit_oid:
            self._load_catalog(oid)
        return self._catalog

    def _commit_tree(self, oid: str) -> str:
        found = self._cat.read_one(oid)
        if found is None or found[1] != "commit":
            raise IntegrityError(
                f"git commit {oid} is missing or is not a commit", hint="run `git fsck` in the repository"
            )
        return parse_commit(found[2])[0]

    def _load_catalog(self, oid: str | None) -> None:
        catalog = self._catalog
        root = self._commit_tree(oid) if oid is not None else None
        try:
            changes = self._trees.diff(catalog.root, root)
            needed = [
                new
                for path, _, new in changes
                if new is not None and Catalog.needs_content(path, new, catalog.count_of_oid)
            ]
            contents = {}
            for want, found in zip(needed, self._cat.read(needed), strict=True):
                if found is None:
                    raise IntegrityError(
                        f"git object {want} of the catalog is missing",
                        hint="run `git fsck`; fetch the missing objects from a clone",
                    )
                contents[want] = found[2]
            catalog.apply(changes, contents)
        except BaseException:
            self._catalog = Catalog()  # never keep a half-applied index: the next call reloads it all
            raise
        catalog.commit_oid, catalog.root = oid, root

    def _publish_catalog(
        self,
        catalog: Catalog,
        edits: Mapping[str, tuple[str, str] | None],
        message: str,
        extra: Sequence[str] = (),
    ) -> tuple[str | None, str | None, str | None]:
        """Write the catalog commit for ``edits`` and apply it with ``extra`` commands.

        Returns (new commit, new tree, git's refusal or None).
        """
        root = self._trees.edit(catalog.root, edits) or self._writer.empty_tree
        parents = [catalog.commit_oid] if catalog.commit_oid else []
        commit = self._writer.commit(root, parents, self._ident(), message)
        failure = self._apply([self._ref_command(self.objects_ref, commit, catalog.commit_oid), *extra])
        return commit, root, failure

    # -- objects ----------------------------------------------------------------------------------

    @_writing
    def write(
        self,
        *,
        blobs: Mapping[str, bytes] | None = None,
        commits: Sequence[Commit] = (),
        refs: Sequence[RefUpdate] = (),
        token_counts: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        """Store blobs, commits and token counts and apply ref updates in one git transaction (see ``Store.write``).

        Blob bytes are checked against their hashes first; commit hashes are
        trusted (``check`` verifies them). A failed compare-and-swap raises
        ``ConflictError`` and leaves every ref where it was.
        """
        blob_items = _checked_blobs(blobs or {})
        commit_list = _checked_commits(commits)
        updates = [(u, self._git_ref(u.name)) for u in _checked_refs(refs)]
        counts = [(t, d, n) for t, per in (token_counts or {}).items() for d, n in _count_rows(t, per)]
        if not (blob_items or commit_list or updates or counts):
            return
        self._write(blob_items, commit_list, updates, counts)  # an import's thousands of objects: one pack

    def _write(
        self,
        blob_items: list[tuple[str, bytes]],
        commit_list: list[Commit],
        updates: list[tuple[RefUpdate, str]],
        counts: list[tuple[str, str, int]],
    ) -> None:
        unexplained = 0
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            self._backoff(attempt)
            catalog = self._refresh()
            self._check_links(catalog, commit_list, {d for d, _ in blob_items})
            edits: dict[str, tuple[str, str] | None] = {}
            new_blobs = {}
            for digest, data in blob_items:
                if digest not in catalog.blobs and digest not in new_blobs:
                    new_blobs[digest] = self._writer.blob(data)
                    edits[blob_path(digest)] = (BLOB_MODE, new_blobs[digest])
            new_commits = {}
            for commit in commit_list:
                if commit.hash not in catalog.commits and commit.hash not in new_commits:
                    new_commits[commit.hash] = (commit, self._writer.blob(commit_bytes(commit)))
                    edits[commit_path(commit.hash)] = (BLOB_MODE, new_commits[commit.hash][1])
            new_counts = []
            for tokenizer, digest, count in counts:
                if catalog.tokens.get(tokenizer, {}).get(digest) != count:
                    oid = self._writer.blob(str(count).encode())
                    new_counts.append((tokenizer, digest, count, oid))
                    edits[token_path(tokenizer, digest)] = (BLOB_MODE, oid)
            ref_commands = []
            for update, git_ref in updates:
                new = self._writer.blob(update.new.encode("utf-8")) if update.new is not None else None
                if new is not None:
                    self._values[new] = update.new  # type: ignore[assignment]
                old = self._value_oid(update.expected) if update.expected is not None else None
                ref_commands.append(self._ref_command(git_ref, new, old))
            if edits:
                message = f"cairn: {len(new_commits)} commits, {len(new_blobs)} blobs, {len(new_counts)} token counts"
                commit, root, failure = self._publish_catalog(catalog, edits, message, ref_commands)
            else:
                commit, root, failure = catalog.commit_oid, catalog.root, self._apply(ref_commands)
            if failure is None:
                for digest, oid in new_blobs.items():
                    catalog.blobs[digest] = oid
                for c, oid in new_commits.values():
                    catalog.add_commit(c, oid)
                for tokenizer, digest, count, oid in new_counts:
                    catalog.set_count(tokenizer, digest, count, oid)
                catalog.commit_oid, catalog.root = commit, root
                self._after_write()
                return
            self._raise_ref_conflict([(u.name, g, u.expected) for u, g in updates])
            moved = (self._cat.info([self.objects_ref])[0] or (None,))[0] != catalog.commit_oid
            unexplained = 0 if moved else unexplained + 1
            if unexplained >= _MAX_UNEXPLAINED and not _is_lock_contention(failure):
                raise self._give_up("writing", failure)
        raise self._give_up("writing", None)

    def _raise_ref_conflict(self, refs: Sequence[tuple[str, str, str | None]]) -> None:
        """After a refused transaction: ``ConflictError`` for the first cairn ref that no longer holds its expected value."""
        if not refs:
            return
        actual = self._read_values([g for _, g, _ in refs])
        for (name, _, expected), value in zip(refs, actual, strict=True):
            if value != expected:
                raise ConflictError(name, expected, value)

    @staticmethod
    def _check_links(catalog: Catalog, commits: Sequence[Commit], batch_blobs: set[str]) -> None:
        batch = {c.hash for c in commits}
        for commit in commits:
            for what, digest, known, extra in (
                ("parent", commit.parent, catalog.commits, batch),
                ("target", commit.target, catalog.commits, batch),
                ("content blob", commit.content_hash, catalog.blobs, batch_blobs),
            ):
                if digest is not None and digest not in known and digest not in extra:
                    error = IntegrityError(
                        f"commit {commit.short}: its {what} {digest[:12]} is neither stored nor in this write",
                        hint=f"write the {what} first or in the same batch; nothing was written",
                    )
                    error.commit = commit.hash  # type: ignore[attr-defined]
                    error.missing = digest  # type: ignore[attr-defined]
                    raise error

    @_locked
    def get_blobs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """The stored bytes of each known hash; unknown hashes are left out. One ``cat-file`` round trip."""
        keys = _keys(hashes, "get_blobs")
        if not keys:
            return {}
        catalog = self._refresh()
        known = [(h, catalog.blobs[h]) for h in keys if h in catalog.blobs]
        out = {}
        for (digest, _), found in zip(known, self._cat.read([oid for _, oid in known]), strict=True):
            if found is None:
                raise IntegrityError(
                    f"blob {digest[:12]} is in the catalog but its git object is missing",
                    hint="run `git fsck`; fetch the missing objects from a clone",
                )
            out[digest] = found[2]
        return out

    @_locked
    def get_commits(self, hashes: Iterable[str]) -> dict[str, Commit]:
        """Each known commit by hash (from the in-process index); unknown hashes are left out."""
        keys = _keys(hashes, "get_commits")
        if not keys:
            return {}
        commits = self._refresh().commits
        return {h: commits[h] for h in keys if h in commits}

    @_locked
    def ancestors(self, start: str, *, limit: int | None = None) -> list[Commit]:
        """``start`` and its ancestors, newest first, at most ``limit``; empty if ``start`` is unknown."""
        n = _limit(limit)
        if n == 0:
            return []
        return self._refresh().ancestors(start, n)

    @_locked
    def children(self, commit: str) -> list[Commit]:
        """Commits whose parent is ``commit``, oldest first."""
        catalog = self._refresh()
        kids = [catalog.commits[h] for h in catalog.children.get(commit, ())]
        return sorted(kids, key=lambda c: (c.created_at, c.hash))

    def _by_time(
        self, keep: Callable[[Commit], bool] | None, since: str | None, until: str | None, limit: int | None
    ) -> list[Commit]:
        n = _limit(limit)
        catalog = self._refresh()
        order = catalog.by_time()
        low = 0 if since is None else bisect.bisect_left(order, (since, ""))
        high = len(order) if until is None else bisect.bisect_right(order, (until, "\uffff"))
        out: list[Commit] = []
        for index in range(high - 1, low - 1, -1):
            if n is not None and len(out) >= n:
                break
            commit = catalog.commits[order[index][1]]
            if keep is None or keep(commit):
                out.append(commit)
        return out

    @_locked
    def commits_by_type(
        self, content_type: str, *, since: str | None = None, until: str | None = None, limit: int | None = None
    ) -> list[Commit]:
        """Commits of ``content_type`` with ``since <= created_at <= until``, newest first."""
        return self._by_time(lambda c: c.content_type == content_type, since, until, limit)

    @_locked
    def commits_by_time(
        self, *, since: str | None = None, until: str | None = None, limit: int | None = None
    ) -> list[Commit]:
        """Commits with ``since <= created_at <= until``, newest first."""
        return self._by_time(None, since, until, limit)

    @_locked
    def commits_targeting(self, targets: Iterable[str]) -> list[Commit]:
        """Edits and deletes whose target is one of ``targets``, oldest first."""
        keys = _keys(targets, "commits_targeting")
        catalog = self._refresh()
        found = [catalog.commits[h] for t in keys for h in catalog.targeting.get(t, ())]
        return sorted(found, key=lambda c: (c.created_at, c.hash))

    @_locked
    def find_commits(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Hashes starting with ``prefix`` (hex, any case), in hash order."""
        prefix = prefix.lower()
        n = _limit(limit)
        if not _HEX.match(prefix) or n == 0:
            return []
        ordered = self._refresh().sorted_hashes()
        start = bisect.bisect_left(ordered, prefix)
        out = []
        for digest in ordered[start:]:
            if not digest.startswith(prefix) or (n is not None and len(out) >= n):
                break
            out.append(digest)
        return out

    # -- refs -----------------------------------------------------------------------------------------

    @_locked
    def get_ref(self, name: str) -> str | None:
        """The value of cairn ref ``name``, or None. One ``cat-file`` round trip."""
        return self._read_values([self._git_ref(name)])[0]

    @_locked
    def list_refs(self, prefix: str = "") -> dict[str, str]:
        """Every cairn ref whose name starts with ``prefix`` (literally), sorted by name."""
        refs = {n: v for n, v in self._context_refs().items() if n.startswith(prefix)}
        values = self._values_of(oid for _, oid in refs.values())
        return {n: values[refs[n][1]] for n in sorted(refs) if refs[n][1] in values}

    # -- annotations --------------------------------------------------------------------------------

    @_writing
    def add_annotations(self, annotations: Sequence[Annotation]) -> None:
        """Append annotations, idempotent by id; all or nothing (``IntegrityError`` if a target is not stored)."""
        items = list(annotations)
        for item in items:
            if not isinstance(item, Annotation):
                raise ValidationError(
                    f"expected a cairn.model.Annotation, got {type(item).__name__}", what="add_annotations"
                )
        if not items:
            return
        self._add_annotations([(a, a.id) for a in items])

    def _add_annotations(self, stamped: list[tuple[Annotation, str]]) -> None:
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            self._backoff(attempt)
            catalog = self._refresh()
            for annotation, _ in stamped:
                if annotation.target not in catalog.commits:
                    error = IntegrityError(
                        f"cannot annotate commit {annotation.target[:12]}: it is not stored",
                        hint="annotate stored commits only; nothing was written",
                    )
                    error.missing = annotation.target  # type: ignore[attr-defined]
                    raise error
            edits: dict[str, tuple[str, str] | None] = {}
            fresh = []
            base = time.time_ns()
            for annotation, annotation_id in stamped:
                if annotation_id in catalog.note_ids or annotation_path(annotation.target, annotation_id) in edits:
                    continue
                # ``added`` orders annotations with equal times: later adds sort later.
                added = f"{base:020d}.{next(self._added):012d}"
                oid = self._writer.blob(annotation_bytes(annotation, added))
                edits[annotation_path(annotation.target, annotation_id)] = (BLOB_MODE, oid)
                fresh.append((annotation, added, annotation_id))
            if not edits:
                return
            commit, root, failure = self._publish_catalog(catalog, edits, f"cairn: {len(fresh)} annotations")
            if failure is None:
                for annotation, added, annotation_id in fresh:
                    catalog.add_note(annotation, added, annotation_id)
                catalog.commit_oid, catalog.root = commit, root
                self._after_write()
                return
        raise self._give_up("adding annotations", None)

    @_locked
    def latest_annotations(self, targets: Iterable[str], *, as_of: str | None = None) -> dict[str, Annotation]:
        """For each target, its latest annotation with ``created_at <= as_of``."""
        keys = _keys(targets, "latest_annotations")
        catalog = self._refresh()
        out = {}
        for target in keys:
            latest = catalog.latest(target, as_of)
            if latest is not None:
                out[target] = latest
        return out

    @_locked
    def annotation_history(self, target: str) -> list[Annotation]:
        """Every annotation of ``target``, oldest first (ties in the order they were added)."""
        return self._refresh().history(target)

    @_locked
    def annotated(self, priority: Priority, *, as_of: str | None = None) -> dict[str, Annotation]:
        """Every target whose latest annotation as of ``as_of`` has ``priority``."""
        return self._refresh().annotated(Priority(priority), as_of)

    # -- token counts ---------------------------------------------------------------------------------

    @_locked
    def get_token_counts(self, tokenizer: str, hashes: Iterable[str]) -> dict[str, int]:
        """Cached counts for ``tokenizer``; misses left out."""
        keys = _keys(hashes, "get_token_counts")
        if not keys:
            return {}
        counts = self._refresh().tokens.get(tokenizer, {})
        return {h: counts[h] for h in keys if h in counts}

    def put_token_counts(self, tokenizer: str, counts: Mapping[str, int]) -> None:
        """Cache counts for ``tokenizer``, replacing earlier ones for the same hash."""
        self.write(token_counts={tokenizer: counts})

    # -- the run ledger -----------------------------------------------------------------------------

    def _anchor(self, run_id: str) -> str:
        return self.anchor_prefix + validate_run_id(run_id)

    def _tag_name(self, run_id: str) -> str:
        return f"{self.namespace}/run/{run_id}"

    def _read_ledger(self) -> tuple[str | None, str | None]:
        """(tip, tree) of the ledger branch as it is now."""
        found = self._cat.read([self.ledger_ref])[0]
        if found is None:
            state: tuple[str | None, str | None] = (None, None)
        elif found[1] != "commit":
            raise IntegrityError(
                f"{self.ledger_ref} points at a {found[1]}, not a commit",
                hint=f"move it back to the ledger's last commit (`git reflog {self.ledger_ref}`)",
            )
        else:
            state = (found[0], parse_commit(found[2])[0])
        self._ledger_state = state
        return state

    def _ledger(self) -> tuple[str | None, str | None]:
        """The last ledger state seen (read once); a stale one only costs a retry, the CAS catches it."""
        return self._ledger_state if self._ledger_state is not None else self._read_ledger()

    def _update_ledger(self, what: str, plan: Callable[[str | None, str | None, int], _LedgerChange | None]) -> Any:
        """Commit a change to the ledger branch with a compare-and-swap, rebuilding it on the new tip until it lands.

        ``plan(tip, tree, attempt)`` looks at the ledger as it is and returns
        the change (or None: nothing to do); it may raise ``ConflictError``.
        The change's ref commands ride in the same transaction as the branch.
        """
        unexplained = 0
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            self._backoff(attempt)
            tip, root = self._ledger()
            change = plan(tip, root, attempt)
            if change is None:
                return None
            new_root = self._trees.edit(root, change.edits) if change.edits else root
            commit = tip
            commands = []
            if new_root != root or tip is None:
                commit = self._writer.commit(
                    new_root or self._writer.empty_tree, [tip] if tip else [], self._ident(), change.message
                )
                commands.append(self._ref_command(self.ledger_ref, commit, tip))
            commands += change.refs(commit) if change.refs is not None else []
            if not commands:
                return change.result
            failure = self._apply(commands)
            if failure is None:
                self._ledger_state = (commit, new_root)
                if change.done is not None:
                    change.done()
                self._after_write()
                return change.result
            moved = self._read_ledger()[0] != tip
            unexplained = 0 if moved else unexplained + 1
            if unexplained >= _MAX_UNEXPLAINED and not _is_lock_contention(failure):
                raise self._give_up(what, failure)
        raise self._give_up(what, None)

    def _head_commit(self) -> Callable[[], str | None]:
        """The commit the user's HEAD points at (None in a repository with no commits), asked for now and
        answered when called: git looks it up while the caller builds the run's objects."""
        answer = self._cat.info_later("HEAD")

        def commit() -> str | None:
            found = answer()
            return found[0] if found is not None and found[1] == "commit" else None

        return commit

    def _run_of_tag(self, oid: str, data: bytes) -> Run | None:
        run = self._runs.get(oid)
        if run is None:
            _, message = parse_tag(data)
            try:
                run = ledger.run_from_bytes(message)
            except (ValueError, TypeError, KeyError, ValidationError):
                return None
            self._runs[oid] = run
        return run

    def _stored_run(self, run_id: str) -> tuple[str, Run, str] | None:
        """(tag id, run, the commit the tag points at) of a stored run, or None."""
        found = self._cat.read([self._anchor(run_id)])[0]
        if found is None or found[1] != "tag":
            return None
        target, _ = parse_tag(found[2])
        run = self._run_of_tag(found[0], found[2])
        if run is None or run.run_id != run_id:
            raise IntegrityError(
                f"run {run_id}: its tag {found[0][:12]} holds " + ("no run" if run is None else f"run {run.run_id}"),
                hint=f"run `cairn check`; point {self._anchor(run_id)} back at the run's tag (from a clone)",
            )
        return found[0], run, target

    def _file(self, root: str | None, path: str) -> bytes | None:
        entry = self._trees.lookup(root, path)
        if entry is None:
            return None
        found = self._cat.read_one(entry[1])
        return found[2] if found is not None else None

    def _events_blob(self, root: str | None, run_id: str) -> bytes:
        return self._file(root, f"{ledger.run_dir(run_id)}/{ledger.EVENTS}") or b""

    def _tag(self, run: Run, target: str, message: bytes | None = None) -> str:
        message = ledger.run_bytes(run) if message is None else message
        return self._writer.tag(target, "commit", self._tag_name(run.run_id), self._ident(), message)

    @_writing
    def put_run(self, run: Run, events: Sequence[RunEvent] = (), *, expected_status: str | None = None) -> None:
        """Write a run and append ``events`` in one ledger commit and one transaction (see ``Store.put_run``).

        Creating is a ``create`` of the run's ref (git refuses it if the run
        exists); closing is an ``update`` of it from the tag that was read.
        """
        if not isinstance(run, Run):
            raise ValidationError(f"expected a cairn.model.ledger.Run, got {type(run).__name__}", what="put_run")
        events = ledger.checked_events(run.run_id, events)
        if expected_status is None:
            self._create_runs([(run, events)])
            return
        anchor = self._anchor(run.run_id)
        directory = ledger.run_dir(run.run_id)
        message = ledger.run_bytes(run)
        record = self._writer.blob(message)

        moved: list[str] = []  # the run's tag before and after

        def plan(tip: str | None, root: str | None, attempt: int) -> _LedgerChange:
            stored = self._stored_run(run.run_id)
            actual = stored[1].status if stored is not None else None
            if stored is None or actual != expected_status:
                raise ConflictError(f"run {run.run_id}", expected_status, actual)
            old_tag, _, target = stored
            existing = self._events_blob(root, run.run_id)
            ledger.refuse_taken(run.run_id, events, existing)
            tag = self._tag(run, target, message)  # the run keeps the commit it started on
            moved[:] = [old_tag, tag]
            return _LedgerChange(
                {
                    f"{directory}/{ledger.RUN}": (BLOB_MODE, record),
                    f"{directory}/{ledger.EVENTS}": (
                        BLOB_MODE,
                        self._writer.blob(existing + ledger.event_lines(events)),
                    ),
                },
                f"run {run.run_id}: {run.status}",
                refs=lambda commit: [self._ref_command(anchor, tag, old_tag)],
                done=lambda: self._runs.__setitem__(tag, run),
            )

        self._update_ledger(f"writing run {run.run_id}", plan)
        # The run's messages follow it to its new tag (a second compare-and-swap: if this process stops
        # in between, the note stays on the old tag, still read by chat_messages, and the next sync moves it).
        if moved and self._cat.info([self.notes_ref])[0] is not None:
            self._move_notes({run.run_id: moved[1]}, [moved[0]])

    @_writing
    def put_runs(self, runs: Sequence[tuple[Run, Sequence[RunEvent]]]) -> None:
        """Create many runs with their events in ONE ledger commit and one transaction; all or nothing.

        An id that exists (or appears twice in ``runs``) raises ``ConflictError`` and nothing is written.
        """
        batch = []
        for run, events in runs:
            if not isinstance(run, Run):
                raise ValidationError(f"expected a cairn.model.ledger.Run, got {type(run).__name__}", what="put_runs")
            batch.append((run, ledger.checked_events(run.run_id, events)))
        if batch:
            self._create_runs(batch)

    def _create_runs(self, batch: Sequence[tuple[Run, list[RunEvent]]]) -> None:
        seen: set[str] = set()
        for run, _ in batch:
            if run.run_id in seen:
                raise ConflictError(
                    f"run {run.run_id}",
                    None,
                    "in this batch",
                    hint="give every run in a batch its own id; nothing was written",
                )
            seen.add(run.run_id)
        anchors = [self._anchor(run.run_id) for run, _ in batch]
        files = {}
        messages = []
        for run, events in batch:
            directory = ledger.run_dir(run.run_id)
            messages.append(ledger.run_bytes(run))  # run.json and the tag's message: the same bytes
            files[f"{directory}/{ledger.RUN}"] = (BLOB_MODE, self._writer.blob(messages[-1]))
            files[f"{directory}/{ledger.EVENTS}"] = (BLOB_MODE, self._writer.blob(ledger.event_lines(events)))
        tags: list[str] = []
        head = self._head_commit()

        def refs(commit: str) -> list[str]:
            # Tags point at the user's HEAD commit, or at the ledger commit in a repository without commits.
            target = head() or commit
            tags[:] = [self._tag(run, target, message) for (run, _), message in zip(batch, messages, strict=True)]
            return [self._ref_command(anchor, tag, None) for anchor, tag in zip(anchors, tags, strict=True)]

        def plan(tip: str | None, root: str | None, attempt: int) -> _LedgerChange:
            if attempt > 1:  # the last try lost: was it to an existing run (a conflict) or just to the ledger moving?
                for (run, _), found in zip(batch, self._cat.info(anchors), strict=True):
                    if found is not None:
                        stored = self._stored_run(run.run_id)
                        raise ConflictError(
                            f"run {run.run_id}",
                            None,
                            stored[1].status if stored else "exists",
                            hint="run ids are unique; nothing of this write was stored",
                        )
            message = f"run {batch[0][0].run_id}" if len(batch) == 1 else f"{len(batch)} runs"
            return _LedgerChange(
                files,
                message,
                refs=refs,
                done=lambda: self._runs.update(zip(tags, (run for run, _ in batch), strict=True)),
            )

        self._update_ledger("recording runs", plan)

    @_writing
    def append_events(self, run_id: str, events: Sequence[RunEvent]) -> None:
        """Append events to an open run (``NotFoundError`` if none, ``ConflictError`` if closed or a seq is taken).

        The run's ref is verified in the same transaction: a run closed meanwhile takes no events.
        """
        anchor = self._anchor(run_id)
        events = ledger.checked_events(run_id, events)
        path = f"{ledger.run_dir(run_id)}/{ledger.EVENTS}"

        def plan(tip: str | None, root: str | None, attempt: int) -> _LedgerChange | None:
            stored = self._stored_run(run_id)
            if stored is None:
                raise NotFoundError("run", run_id, hint="create it with put_run first")
            tag, run, _ = stored
            if not run.is_open:
                raise ConflictError(
                    f"run {run_id}", "open", run.status, hint="the run is closed; events can no longer be added"
                )
            if not events:
                return None
            existing = self._events_blob(root, run_id)
            ledger.refuse_taken(run_id, events, existing)
            return _LedgerChange(
                {path: (BLOB_MODE, self._writer.blob(existing + ledger.event_lines(events)))},
                f"run {run_id}: {len(events)} events",
                refs=lambda commit: [f"verify {anchor} {tag}"],
            )

        self._update_ledger(f"appending events to run {run_id}", plan)

    @_locked
    def get_run(self, run_id: str) -> Run | None:
        """The run, or None. One ``cat-file`` round trip."""
        stored = self._stored_run(run_id)
        return stored[1] if stored is not None else None

    def _all_runs(self) -> dict[str, Run]:
        """Every anchored run by id, with one ``for-each-ref``.

        Tags never change, so runs already read are kept by tag id: once
        they are known, listing asks git only for the refs' object ids (no
        object is read), and the few new tags come through ``cat-file``.
        With nothing known yet, the one call reads every tag's message too.
        """
        if not self._runs:
            return self._read_all_runs()
        text = self._git.run("for-each-ref", "--format=%(objectname)", self.anchor_prefix).stdout.decode()
        oids = text.split()
        fresh = [oid for oid in oids if oid not in self._runs]
        if len(fresh) > 256:
            return self._read_all_runs()  # mostly unknown: reading every message in one call is cheaper
        for oid, found in zip(fresh, self._cat.read(fresh), strict=True):
            if found is not None and found[1] == "tag":
                self._run_of_tag(oid, found[2])
        runs = {}
        for oid in oids:
            run = self._runs.get(oid)
            if run is not None:
                runs[run.run_id] = run
        return runs

    def _read_all_runs(self) -> dict[str, Run]:
        """Read every run tag's message with one ``for-each-ref``, parsing while git is still writing.

        Each ref prints as ``["<tag id>",<message>],`` so any run of whole
        records is a JSON array: parsed in chunks as they arrive, the parse
        overlaps with git reading the tags. A message that is not a run (a tag
        someone else made) is skipped; ``check`` reports it.
        """
        proc = subprocess.Popen(
            self._git.command("for-each-ref", '--format=["%(objectname)",%(contents)],', self.anchor_prefix),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=self._git.env,
        )
        assert proc.stdout is not None
        runs: dict[str, Run] = {}
        pending = b""
        while True:
            chunk = proc.stdout.read1(1 << 16)
            pending += chunk
            # Canonical JSON holds no raw newline, so "],\n" ends a record and nothing else.
            cut = pending.rfind(b"],\n") + 3 if chunk else len(pending)
            if cut > 2:
                self._parse_run_records(pending[:cut], runs)
                pending = pending[cut:]
            if not chunk:
                break
        stderr = proc.stderr.read() if proc.stderr is not None else b""
        if proc.wait() != 0:
            raise GitCommandError(
                ["for-each-ref", self.anchor_prefix], proc.returncode, stderr.decode(errors="replace")
            )
        return runs

    def _parse_run_records(self, text: bytes, runs: dict[str, Run]) -> None:
        try:
            pairs = json.loads(b"[" + text.rstrip().rstrip(b",") + b"]")
        except ValueError:
            pairs = [p for p in (_one_record(line) for line in text.split(b"],\n")) if p is not None]
        for item in pairs:
            try:
                oid, record = item
                run = ledger.run_from_record(record)
            except (ValueError, TypeError, KeyError, AttributeError, ValidationError):
                continue  # not a run: ``check`` reports it
            self._runs[oid] = run
            runs[run.run_id] = run

    @_locked
    def list_runs(
        self,
        *,
        type: str | None = None,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        """Runs with ``since <= started_at <= until``, newest first (ties: run id descending). One git call."""
        n = _limit(limit)
        found = [
            r
            for r in self._all_runs().values()
            if (type is None or r.type == type)
            and (status is None or r.status == status)
            and (since is None or r.started_at >= since)
            and (until is None or r.started_at <= until)
        ]
        found.sort(key=lambda r: (r.started_at, r.run_id), reverse=True)
        return found if n is None else found[:n]

    @_locked
    def run_events(self, run_id: str, *, after_seq: int | None = None) -> list[RunEvent]:
        """A run's events in seq order (after ``after_seq`` when given). One ``cat-file`` round trip."""
        validate_run_id(run_id)
        found = self._cat.read([f"{self.ledger_ref}:{ledger.run_dir(run_id)}/{ledger.EVENTS}"])[0]
        if found is None:
            return []
        events = ledger.parse_events(found[2])
        events.sort(key=lambda e: e.seq)
        return [e for e in events if after_seq is None or e.seq > after_seq]

    @_writing
    def delete_runs(self, run_ids: Iterable[str]) -> int:
        """Delete runs and their events in one ledger commit and transaction; returns how many existed."""
        ids = _keys(run_ids, "delete_runs")
        anchors = [self._anchor(i) for i in ids]
        if not ids:
            return 0

        def plan(tip: str | None, root: str | None, attempt: int) -> _LedgerChange:
            existing = [(a, f[0]) for a, f in zip(anchors, self._cat.info(anchors), strict=True) if f is not None]
            return _LedgerChange(
                {ledger.run_dir(i): None for i in ids},
                f"delete {len(existing)} runs",
                refs=lambda commit: [self._ref_command(a, None, oid) for a, oid in existing],
                result=len(existing),
            )

        return self._update_ledger("deleting runs", plan) or 0

    @_writing
    def add_spend(self, records: Sequence[SpendRecord]) -> None:
        """Append spend records, one file each on the ledger branch, in one commit."""
        items = list(records)
        for item in items:
            if not isinstance(item, SpendRecord):
                raise ValidationError(
                    f"expected a cairn.model.ledger.SpendRecord, got {type(item).__name__}", what="add_spend"
                )
        if not items:
            return
        edits = {ledger.spend_path(r): (BLOB_MODE, self._writer.blob(ledger.spend_bytes(r))) for r in items}
        self._update_ledger(
            "recording spend", lambda tip, root, attempt: _LedgerChange(edits, f"spend: {len(items)} records")
        )

    def _ledger_files(
        self, root: str | None, path: str, keep: Callable[[str], bool] | None = None
    ) -> list[tuple[str, str]]:
        """(path, blob id) of the files under ``path`` whose first directory below it passes ``keep``."""
        top = self._trees.lookup(root, path)
        if top is None or top[0] != TREE_MODE:
            return []
        subdirs = [
            (name, e[1])
            for name, e in self._trees.get(top[1]).items()
            if e[0] == TREE_MODE and (keep is None or keep(name))
        ]
        self._trees.prefetch([oid for _, oid in subdirs])
        return [(f"{name}/{file}", e[1]) for name, oid in subdirs for file, e in self._trees.get(oid).items()]

    def _parsed(self, oids: Sequence[str], parse: Callable[[bytes], Any]) -> dict[str, Any]:
        """Parse ledger files by blob id, reading those never seen in one round trip (blobs never change)."""
        unknown = [oid for oid in dict.fromkeys(oids) if oid not in self._parsed_files]
        for oid, found in zip(unknown, self._cat.read(unknown), strict=True):
            if found is not None:
                self._parsed_files[oid] = parse(found[2])
        return {oid: self._parsed_files[oid] for oid in oids if oid in self._parsed_files}

    @_locked
    def spend(
        self, *, since: str | None = None, until: str | None = None, run_id: str | None = None
    ) -> list[SpendRecord]:
        """Spend records with ``since <= ts <= until`` (and of ``run_id``), oldest first."""
        _, root = self._read_ledger()
        files = self._ledger_files(
            root,
            ledger.SPEND_DIR,
            lambda day: (since is None or day >= since[:10]) and (until is None or day <= until[:10]),
        )
        parsed = self._parsed([oid for _, oid in files], ledger.spend_from_bytes)
        out = []
        for name, oid in files:
            record = parsed.get(oid)
            if (
                record is not None
                and (since is None or record.ts >= since)
                and (until is None or record.ts <= until)
                and (run_id is None or record.run_id == run_id)
            ):
                out.append((record.ts, name, record))
        out.sort(key=lambda item: (item[0], item[1]))
        return [record for _, _, record in out]

    # -- chat --------------------------------------------------------------------------------------

    # Run-attached messages are notes on the run's tag under ``notes_ref`` (see cairn_git._notes); messages
    # in a thread -- or on a run with no tag (not recorded here) -- are files on the ledger branch. A message
    # with both is in both places, written in one transaction.

    def _read_notes(self) -> tuple[str | None, str | None]:
        """(tip, tree) of the chat notes ref as it is now."""
        found = self._cat.read([self.notes_ref])[0]
        if found is None:
            return None, None
        if found[1] != "commit":
            raise IntegrityError(
                f"{self.notes_ref} points at a {found[1]}, not a commit",
                hint=f"move it back to its last notes commit (`git reflog {self.notes_ref}`)",
            )
        return found[0], parse_commit(found[2])[0]

    def _note_index(self, root: str | None) -> dict[str, tuple[str, str]]:
        """annotated object id -> (path, blob id) of every note in the notes tree ``root``."""
        if root is None:
            return {}
        if self._note_index_cache[0] != root:
            self._note_index_cache = (root, notes.note_index(self._trees.walk(root), len(self._writer.zero)))
        return self._note_index_cache[1]

    def _note_messages(self, blobs: Iterable[str]) -> list[ChatMessage]:
        parsed = self._parsed(list(blobs), notes.parse_note)
        return [m for found in parsed.values() for m in found]

    def _read_blobs(self, oids: Sequence[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(oids))
        return {oid: found[2] for oid, found in zip(wanted, self._cat.read(wanted), strict=True) if found is not None}

    def _notes_edit(
        self, tip: str | None, root: str | None, edits: Mapping[str, bytes | None], message: str = notes.NOTES_MESSAGE
    ) -> str:
        """A new notes commit on ``tip``: each annotated object's note replaced (None removes it)."""
        index = self._note_index(root)
        paths: dict[str, tuple[str, str] | None] = {}
        for key, data in edits.items():
            path = index[key][0] if key in index else key
            paths[path] = None if data is None else (BLOB_MODE, self._writer.blob(data))
        tree = self._trees.edit(root, paths) or self._writer.empty_tree
        return self._writer.commit(tree, [tip] if tip else [], self._ident(), message)

    def _rehome_edits(
        self, root: str | None, anchors: Mapping[str, str], strays: Iterable[str] | None = None
    ) -> dict[str, bytes | None]:
        """Notes on objects that are no run's tag any more (a run closed, or a sync gave it a new tag), merged
        into the note of the run's current tag (``anchors``: run id -> tag id). Looks at the notes on
        ``strays`` (default: every note not on a tag in ``anchors``). Changes only."""
        index = self._note_index(root)
        tags = set(anchors.values())
        strays = [key for key in (index if strays is None else strays) if key in index and key not in tags]
        if not strays:
            return {}
        contents = self._read_blobs([index[k][1] for k in strays])
        moved: dict[str, list[bytes]] = {}
        edits: dict[str, bytes | None] = {}
        for key in strays:
            data = contents.get(index[key][1])
            if data is None:
                continue
            keep, moving = [], False
            for run_id, line in notes.lines_by_run(data):
                target = anchors.get(run_id) if run_id is not None else None
                if target is not None:
                    moved.setdefault(target, []).append(line)
                    moving = True
                else:
                    keep.append(line)
            if moving:
                edits[key] = b"".join(keep) or None
        if not moved:
            return {}
        current = self._read_blobs([index[t][1] for t in moved if t in index])
        for target, lines in moved.items():
            existing = current.get(index[target][1]) if target in index else None
            edits[target] = notes.union_lines(existing, b"".join(lines))
        return edits

    def _move_notes(self, anchors: Mapping[str, str], strays: Sequence[str]) -> None:
        """Publish ``_rehome_edits`` with a compare-and-swap, retrying while other writers win."""
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            self._backoff(attempt)
            tip, root = self._read_notes()
            edits = self._rehome_edits(root, anchors, strays)
            if not edits:
                return
            commit = self._notes_edit(tip, root, edits, "cairn: notes follow their runs' tags")
            if self._apply([self._ref_command(self.notes_ref, commit, tip)]) is None:
                self._after_write()
                return
        raise self._give_up("moving chat notes", None)

    @_writing
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
        path = chat.message_path(message.id)
        anchor = self._anchor(message.run_id) if message.run_id is not None else None

        def anchor_tag() -> str | None:
            found = self._cat.info([anchor])[0] if anchor is not None else None
            return found[0] if found is not None and found[1] == "tag" else None

        line = notes.message_line(message)
        unexplained = 0
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            self._backoff(attempt)
            tag = anchor_tag()
            file_oid = (
                self._writer.blob(chat.to_bytes(message)) if message.thread_id is not None or tag is None else None
            )
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
            if unexplained >= _MAX_UNEXPLAINED and not _is_lock_contention(failure):
                raise self._give_up("storing a message", failure)
        raise self._give_up("storing a message", None)

    @_locked
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
        n = _limit(limit)
        _, root = self._read_ledger()
        by_id: dict[str, ChatMessage] = {}
        files = self._ledger_files(root, chat.MESSAGES_DIR)
        for m in self._parsed([oid for _, oid in files], chat.message_from_bytes).values():
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

    @_writing
    def put_thread(self, thread: Thread) -> None:
        """Create a thread (its own file on the ledger branch); ``ConflictError`` if it exists."""
        if not isinstance(thread, Thread):
            raise ValidationError(f"expected a cairn.model.chat.Thread, got {type(thread).__name__}", what="put_thread")
        path = chat.thread_path(thread.thread_id)
        oid = self._writer.blob(chat.to_bytes(thread))

        def plan(tip: str | None, root: str | None, attempt: int) -> _LedgerChange:
            if self._trees.lookup(root, path) is not None:
                raise ConflictError(f"thread {thread.thread_id}", None, "exists")
            return _LedgerChange({path: (BLOB_MODE, oid)}, f"thread {thread.thread_id}")

        self._update_ledger("creating a thread", plan)

    @_locked
    def get_thread(self, thread_id: str) -> Thread | None:
        """The thread, or None. One ``cat-file`` round trip."""
        found = self._cat.read([f"{self.ledger_ref}:{chat.thread_path(thread_id)}"])[0]
        return chat.thread_from_bytes(found[2]) if found is not None else None

    @_locked
    def list_threads(self) -> list[Thread]:
        """Every thread, newest first (ties: id descending)."""
        _, root = self._read_ledger()
        top = self._trees.lookup(root, chat.THREADS_DIR)
        files = [] if top is None else [e[1] for e in self._trees.get(top[1]).values() if e[0] != TREE_MODE]
        threads = list(self._parsed(files, chat.thread_from_bytes).values())
        return sorted(threads, key=lambda t: (t.created_at, t.thread_id), reverse=True)

    # -- maintenance ------------------------------------------------------------------------------------

    @_locked
    def stats(self) -> StoreStats:
        """Object counts; ``bytes`` is the size of the content blobs and commit records."""
        catalog = self._refresh()
        oids = list(catalog.blobs.values()) + list(catalog.commit_oids.values())
        size = sum(found[2] for found in self._cat.info(oids) if found is not None)
        refs = len(self._context_refs())
        runs = self._git.output("for-each-ref", "--format=x", self.anchor_prefix).count("\n")
        return StoreStats(
            blobs=len(catalog.blobs),
            commits=len(catalog.commits),
            refs=refs,
            annotations=catalog.annotation_count(),
            bytes=size,
            details={
                "backend": "git",
                "git_dir": str(self.git_dir),
                "namespace": self.namespace,
                "ledger_branch": self.ledger_branch,
                "runs": runs,
                "token_counts": sum(len(v) for v in catalog.tokens.values()),
                "catalog_commit": catalog.commit_oid,
                "object_format": self._writer.object_format,
                "last_gc_error": self.last_gc_error,
            },
        )

    @_writing
    def gc(self, *, dry_run: bool = False) -> GcReport:
        """Drop commits no ref reaches, the blobs only they used, their annotations and counts, in one catalog commit.

        Earlier catalog commits keep the dropped objects in git's history (so
        a clone that still has them merges cleanly); the store no longer
        serves them.
        """
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            self._backoff(attempt)
            catalog = self._refresh()
            refs = self._context_refs()
            values = self._values_of(oid for _, oid in refs.values())
            dead, dead_blobs = unreachable(
                {n: values.get(oid, "") for n, (_, oid) in refs.items()}, catalog.commits, catalog.blobs
            )
            doomed = sum(len(catalog.notes.get(t, ())) for t in dead)
            report = GcReport(
                commits_removed=len(dead), blobs_removed=len(dead_blobs), annotations_removed=doomed, dry_run=dry_run
            )
            if dry_run or not (dead or dead_blobs):
                return report
            edits: dict[str, tuple[str, str] | None] = {}
            for digest in dead:
                edits[commit_path(digest)] = None
                if digest in catalog.notes:
                    edits[f"annotations/{digest[:2]}/{digest}"] = None
            for digest in dead_blobs:
                edits[blob_path(digest)] = None
                for tokenizer, counts in catalog.tokens.items():
                    if digest in counts:
                        edits[token_path(tokenizer, digest)] = None
            # Every ref must still be where gc saw it: a writer that just moved one to a "dead" commit wins.
            verify = [f"verify {git_ref} {oid}" for git_ref, oid in refs.values()]
            commit, root, failure = self._publish_catalog(catalog, edits, f"cairn gc: {len(dead)} commits", verify)
            if failure is None:
                self._catalog.apply(self._trees.diff(catalog.root, root), {})  # removals only: nothing to read
                catalog.commit_oid, catalog.root = commit, root
                self._after_write()
                return report
        raise self._give_up("collecting garbage", None)

    @_locked
    def check(self) -> list[Problem]:
        """Every problem found: hashes, links, derived fields, dangling refs, and ledger/anchor mismatches."""
        catalog = self._refresh()
        problems: list[Problem] = []
        for path, oid in self._trees.walk(catalog.root, "commits"):
            name = path.rsplit("/", 1)[-1]
            commit = catalog.commits.get(name)
            if commit is None or catalog.commit_oids.get(name) != oid:
                problems.append(Problem("commit_hash", name, f"the record at {path} is for another commit"))
        refs = self._context_refs()
        values = self._values_of(oid for _, oid in refs.values())
        readable = {}
        for name in sorted(refs):
            value = values.get(refs[name][1])
            if value is None:
                problems.append(Problem("dangling_ref", name, f"{refs[name][0]} does not point at a value blob"))
            else:
                readable[name] = value
        blobs = _CatalogBlobs(self._cat, catalog.blobs)
        problems.extend(check_objects(self, catalog.commits.values(), blobs, readable))
        problems.extend(self._check_ledger())
        return problems

    def _check_ledger(self) -> list[Problem]:
        problems = []
        _, root = self._read_ledger()
        on_branch = {}
        for path, oid in self._trees.walk(root, ledger.RUNS_DIR):
            parts = path.split("/")
            if parts[-1] == ledger.RUN and len(parts) == 5:
                on_branch[parts[3]] = oid
        text = self._git.run(
            "for-each-ref", "--format=%(objectname) %(objecttype) %(refname)", self.anchor_prefix
        ).stdout.decode()
        anchored = {}
        for line in text.splitlines():
            oid, kind, ref = line.split(" ", 2)
            run_id = ref[len(self.anchor_prefix) :]
            if kind != "tag":
                problems.append(Problem("other", ref, f"points at a {kind}, not a run's tag"))
                continue
            anchored[run_id] = oid
        tags = dict(zip(anchored, self._cat.read(list(anchored.values())), strict=True))
        for run_id, found in tags.items():
            if found is None:
                problems.append(Problem("other", f"run {run_id}", "its tag object is missing"))
                continue
            _, message = parse_tag(found[2])
            if run_id not in on_branch:
                problems.append(Problem("other", f"run {run_id}", f"anchored, but not on {self.ledger_ref}"))
            elif self._writer.oid("blob", message) != on_branch[run_id]:
                problems.append(Problem("other", f"run {run_id}", "its tag message differs from its run.json"))
        for run_id in sorted(set(on_branch) - set(anchored)):
            problems.append(
                Problem("other", f"run {run_id}", f"on {self.ledger_ref} but has no ref under {self.anchor_prefix}")
            )
        return problems

    # -- sync ---------------------------------------------------------------------------------------------

    @_locked
    def push(self, remote: str | None = None, *, progress: Any = None) -> SyncReport:
        """Publish the ledger, run anchors, catalog and context refs with one ``git push --atomic``.

        Merges the remote's history first when it moved on, and loops while
        the push is rejected because someone else pushed in between.
        """
        from cairn_git._sync import Sync

        return Sync(self, remote).push(progress)

    @_locked
    def pull(self, remote: str | None = None, *, progress: Any = None) -> SyncReport:
        """Fetch the remote's cairn refs and merge them into the local ones, losing nothing."""
        from cairn_git._sync import Sync

        return Sync(self, remote).pull(progress)

    @_locked
    def sync_status(self, remote: str | None = None) -> SyncStatus:
        """Fetch, then count ledger and catalog commits (and context refs) on each side only."""
        from cairn_git._sync import Sync

        return Sync(self, remote).status()


class _CatalogBlobs(Mapping[str, bytes]):
    """Every stored content blob for ``check_objects``, read in one pipelined pass when iterated."""

    def __init__(self, cat: CatFile, blobs: Mapping[str, str]) -> None:
        self._cat = cat
        self._blobs = blobs

    def __getitem__(self, key: str) -> bytes:
        found = self._cat.read_one(self._blobs[key])
        if found is None:
            raise KeyError(key)
        return found[2]

    def __contains__(self, key: object) -> bool:
        return key in self._blobs

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._blobs)

    def __len__(self) -> int:
        return len(self._blobs)

    def items(self):  # type: ignore[no-untyped-def]
        keys = list(self._blobs)
        found = self._cat.read([self._blobs[k] for k in keys])
        return [(k, f[2]) for k, f in zip(keys, found, strict=True) if f is not None]


# -- validation helpers ----------------------------------------------------------------------------------


def _checked_blobs(blobs: Mapping[str, bytes]) -> list[tuple[str, bytes]]:
    rows = []
    for digest, data in blobs.items():
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValidationError(f"blob {digest!r:.20} must be bytes, got {type(data).__name__}", what="write")
        data = bytes(data)
        if not isinstance(digest, str) or sha256_hex(data) != digest:
            raise IntegrityError(
                f"blob {str(digest)[:12]}: its bytes do not match its hash",
                hint="key each blob by the SHA-256 of its bytes; nothing was written",
            )
        rows.append((digest, data))
    return rows


def _checked_commits(commits: Sequence[Commit]) -> list[Commit]:
    out = []
    for commit in commits:
        if not isinstance(commit, Commit):
            raise ValidationError(f"expected a cairn.model.Commit, got {type(commit).__name__}", what="write")
        if not _HASH.match(commit.hash):
            raise ValidationError(f"commit hash {commit.hash!r:.80} is not a SHA-256 hex digest", what="write")
        out.append(commit)
    return out


def _checked_refs(refs: Sequence[RefUpdate]) -> list[RefUpdate]:
    updates = list(refs)
    seen: set[str] = set()
    for update in updates:
        if not isinstance(update, RefUpdate):
            raise ValidationError(f"expected a cairn.storage.RefUpdate, got {type(update).__name__}", what="write")
        for label, value in (("new", update.new), ("expected", update.expected)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ValidationError(
                    f"ref {update.name}: the {label} value must be a non-empty string or None",
                    what="write",
                    given=value,
                )
        if update.name in seen:
            raise ValidationError(
                f"ref {update.name} is updated twice in one write",
                what="write",
                hint="give each ref one update per write",
            )
        seen.add(update.name)
    return updates


def _count_rows(tokenizer: str, counts: Mapping[str, int]) -> list[tuple[str, int]]:
    if not isinstance(tokenizer, str) or not tokenizer or len(tokenizer) > 200:
        raise ValidationError(
            "a tokenizer name must be a non-empty string of at most 200 characters",
            what="token counts",
            given=tokenizer,
        )
    rows = []
    for digest, count in counts.items():
        if not isinstance(digest, str) or not _HASH.match(digest):
            raise ValidationError(f"{tokenizer}: {str(digest)[:70]!r} is not a content hash", what="token counts")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValidationError(
                f"{tokenizer}: the count for {digest[:12]} must be a whole number >= 0, got {count!r}",
                what="token counts",
            )
        rows.append((digest, count))
    return rows


def _one_record(text: bytes) -> Any:
    """One ``["<tag id>",<message>`` record of ``_read_all_runs``, or None if its message is not JSON."""
    text = text.strip()
    if not text:
        return None
    try:
        return json.loads(text + b"]")
    except ValueError:
        return None


def _is_lock_contention(message: str | None) -> bool:
    text = (message or "").lower()
    return ".lock" in text or "unable to create" in text or "cannot lock" in text


# -- opening in a directory ---------------------------------------------------------------------------------


def open_in_directory(directory: str | os.PathLike[str]) -> GitStore:
    """``git init`` ``directory`` if it is not a repository yet, and open the store there (default settings).

    The conformance suite's ``store_opener``: several processes may call it
    at once on a fresh directory, so the repository is made aside and moved
    into place in one rename.
    """
    path = Path(directory)
    if not (path / ".git").exists():
        scratch = tempfile.mkdtemp(prefix=".cairn-git-init-", dir=path)
        try:
            done = subprocess.run(
                ["git", "init", "-q", scratch], capture_output=True, env=git_environment(), stdin=subprocess.DEVNULL
            )
            if done.returncode != 0:
                raise GitCommandError(["init"], done.returncode, done.stderr.decode(errors="replace"))
            try:
                os.rename(os.path.join(scratch, ".git"), path / ".git")
            except OSError:
                if not (path / ".git").exists():
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return GitStore(path)
