"""``GitBase``: what every facet of the git store shares.

- the repository: its git directory, the settings it was opened with, and
  the names of every ref the store writes (the layout, see
  ``cairn_git.store``);
- the git processes: ``Git`` for one-shot commands, ``CatFile`` (reads, many
  per round trip), ``RefTransaction`` (``update-ref --stdin``), and the
  in-process ``ObjectWriter`` and ``Trees``;
- the compare-and-swap transaction: ``_ref_command`` turns (ref, new, old)
  into the command git checks under its locks, ``_apply`` runs a
  transaction after writing any objects held back, and ``_backoff`` /
  ``_give_up`` pace and end the retry loops each facet runs around it;
- upkeep after writes (small packs merged, ``git repack --geometric``,
  ``git gc --auto``);
- ``locked`` / ``writing``: every public method is serialized on the
  store's lock, refuses a closed store, and turns an ``OSError`` into a
  ``StorageError`` naming the repository.

Each facet is a mixin over ``GitBase`` (``cairn_git.facets``) and sets up
the state it keeps itself in ``_init_facet``.
"""

from __future__ import annotations

import functools
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from cairn.errors import StorageError, ValidationError
from cairn_git._git import CatFile, Git, GitCommandError, RefTransaction, TransactionFailed, discover
from cairn_git._trees import Trees
from cairn_git._writer import ObjectWriter, identity
from cairn_git.config import GitConfig

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_UNEXPLAINED",
    "GitBase",
    "checked_keys",
    "checked_limit",
    "is_lock_contention",
    "locked",
    "writing",
]

_T = TypeVar("_T")
_P = ParamSpec("_P")
_Store = TypeVar("_Store", bound="GitBase")

#: Attempts at a transaction that keeps losing races before giving up.
MAX_ATTEMPTS = 400
#: Refusals in a row with no ref moved and no lock in the way: something else is wrong, say so.
MAX_UNEXPLAINED = 8
#: With gc_auto: a write of this many objects or more goes into a pack of its own.
_SMALL_PACK_AT = 4
#: With gc_auto: this many small packs of our own are merged into one; as many packs in the directory
#: call for ``git repack -d --geometric=2``.
_ROLL_UP_EVERY = 32


def locked(method: Callable[Concatenate[_Store, _P], _T]) -> Callable[Concatenate[_Store, _P], _T]:
    """Serialize use of the store's git processes and refuse a closed store."""

    @functools.wraps(method)
    def call(self: _Store, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
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


def writing(method: Callable[Concatenate[_Store, _P], _T]) -> Callable[Concatenate[_Store, _P], _T]:
    """``locked``, and the method's new objects are held back and written together (see ``ObjectWriter.batch``)."""

    @functools.wraps(method)
    def call(self: _Store, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        with self._writer.batch():
            return method(self, *args, **kwargs)

    return locked(call)


def checked_keys(values: Iterable[str], what: str) -> list[str]:
    """``values`` without repeats, each checked to be a string (``ValidationError`` naming ``what`` if not)."""
    out = list(dict.fromkeys(values))
    for value in out:
        if not isinstance(value, str):
            raise ValidationError(f"expected strings, got {type(value).__name__} {value!r:.60}", what=what)
    return out


def checked_limit(limit: int | None) -> int | None:
    """A ``limit`` argument: None, or a whole number (a negative one counts as 0)."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValidationError(f"limit must be a whole number or None, got {limit!r}")
    return max(limit, 0)


def is_lock_contention(message: str | None) -> bool:
    """Whether git refused a transaction because another writer held a ref's lock (worth retrying)."""
    text = (message or "").lower()
    return ".lock" in text or "unable to create" in text or "cannot lock" in text


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


class GitBase:
    """The repository, its git processes and the compare-and-swap transaction (see the module docstring).

    Not a store by itself: ``cairn_git.store.GitStore`` composes it with
    every facet mixin.
    """

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
        self._lock = threading.RLock()
        self._closed = False
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
        self._init_facet()

    def _init_facet(self) -> None:
        """Set up what a facet keeps in memory; each mixin that keeps something extends it (``super()`` first)."""

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self.git_dir} namespace={self.namespace} ({state})>"

    def close(self) -> None:
        """Stop the git processes (idempotent). The store is unusable afterwards."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._cat.close()
                self._tx.close()

    # -- the transaction ---------------------------------------------------------------------------

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

    def _read_blobs(self, oids: Sequence[str]) -> dict[str, bytes]:
        """The bytes of each object that exists, by id, in one round trip."""
        wanted = list(dict.fromkeys(oids))
        return {oid: found[2] for oid, found in zip(wanted, self._cat.read(wanted), strict=True) if found is not None}

    # -- upkeep ---------------------------------------------------------------------------------------

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
