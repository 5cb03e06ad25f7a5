"""Sync's view of one remote: its refs as ``git ls-remote`` lists them, fetched into tracking refs of our own.

``fetch`` asks ``git ls-remote`` which of our refs the remote has; if any
differ from what we saw last, one ``git fetch`` brings them into
remote-tracking refs of our own, ``refs/<ns>/remotes/<remote>/...``
(``ledger``, ``objects``, ``notes/chat``, ``context/*``, ``runs/*``) -- not
under ``refs/remotes/``, where ``git branch -a`` would list every run. The
user's own remote-tracking branches, ``FETCH_HEAD`` and tags are left alone
(``--refmap=``, ``--no-write-fetch-head``, ``--no-tags``). ``_local`` and
``_tracked`` snapshot both sides' refs for the merge (``cairn_git._merge``)
and the push (``cairn_git.facets.sync``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cairn.errors import StorageError, ValidationError
from cairn.model.ledger import validate_run_id
from cairn_git._context import ContextBase
from cairn_git._git import GitCommandError
from cairn_git._ledger_base import LedgerBase
from cairn_git.config import check_remote

__all__ = ["ATTEMPTS", "HEAD", "REMOTE_HINT", "RemoteRefs", "Side", "SyncedStore"]

HEAD = "HEAD"
#: Rounds of fetch and merge (and push) before giving up while local writers or other pushers keep winning.
ATTEMPTS = 12
REMOTE_HINT = "check the remote's URL and your access to it; `git fetch {remote}` shows git's full message"


class SyncedStore(ContextBase, LedgerBase):
    """What sync reads and writes: the catalog and context refs, the ledger branch, run refs and chat notes."""


class Side:
    """One side's cairn refs: ledger tip, catalog tip, context refs and run refs (git ref -> object id)."""

    def __init__(
        self,
        ledger_tip: str | None,
        objects: str | None,
        context: dict[str, str],
        anchors: dict[str, str],
        notes: str | None = None,
    ) -> None:
        self.notes = notes  # the chat notes ref's tip
        self.ledger = ledger_tip
        self.objects = objects
        self.context = context  # cairn ref name -> value-blob id
        self.anchors = anchors  # run id -> tag id


class RemoteRefs:
    """One remote's refs as sync sees them, for ``store`` (whose lock the caller holds)."""

    def __init__(self, store: SyncedStore, remote: str | None) -> None:
        name = remote if remote is not None else store.remote
        try:
            check_remote(name)
        except ValueError as exc:
            raise ValidationError(str(exc), what="sync") from None
        self.store = store
        self.remote = name
        self.git = store._git
        ns = store.namespace
        # Our own namespace, not refs/remotes/: `git branch -a` would list every run's ref otherwise.
        self.tracking = f"refs/{ns}/remotes/{name}/"
        self.t_ledger = self.tracking + "ledger"
        self.t_objects = self.tracking + "objects"
        self.t_context = self.tracking + "context/"
        self.t_runs = self.tracking + "runs/"
        self.t_notes = self.tracking + "notes/chat"
        self.base_ref = f"{store.sync_prefix}{name}"
        self.conflict_prefix = f"refs/heads/conflict/{name}/"
        self._progress: Callable[[str], Any] | None = None

    # -- small helpers ---------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        if self._progress is not None:
            self._progress(text)

    def _configured(self) -> bool:
        done = self.git.run("config", "--get", f"remote.{self.remote}.url", ok=(0, 1))
        return done.returncode == 0 and bool(done.stdout.strip())

    def _no_remote(self, verb: str) -> str:
        return (
            f"no git remote {self.remote!r}: nothing to {verb} "
            f"(add one with `git remote add {self.remote} URL`, or set remote in [storage.git])"
        )

    def _remote_git(self, *args: str, ok: tuple[int, ...] = (0,)) -> Any:
        try:
            return self.git.run(*args, ok=ok, hint=REMOTE_HINT.format(remote=self.remote))
        except GitCommandError as exc:
            raise StorageError(
                f"git {args[0]} {self.remote} failed: {exc.stderr or exc.message}",
                hint=REMOTE_HINT.format(remote=self.remote),
            ) from None

    def _refs(self, prefix: str) -> dict[str, str]:
        text = self.git.output("for-each-ref", "--format=%(objectname) %(refname)", prefix)
        return {ref: oid for oid, _, ref in (line.partition(" ") for line in text.splitlines())}

    def _one(self, ref: str) -> str | None:
        found = self.store._cat.info([ref])[0]
        return found[0] if found is not None else None

    # -- snapshots -------------------------------------------------------------------------------

    def _anchors(self, prefix: str) -> dict[str, str]:
        """run id -> tag id of the refs under ``prefix``; a ref whose name is no run id is not ours to sync."""
        out = {}
        for ref, oid in self._refs(prefix).items():
            try:
                out[validate_run_id(ref[len(prefix) :])] = oid
            except ValidationError:
                continue
        return out

    def _local(self) -> Side:
        store = self.store
        context = {name: oid for name, (_, oid) in store._context_refs().items()}
        anchors = self._anchors(store.anchor_prefix)
        return Side(
            self._one(store.ledger_ref), self._one(store.objects_ref), context, anchors, self._one(store.notes_ref)
        )

    def _tracked(self) -> Side:
        context = {}
        for ref, oid in self._refs(self.t_context).items():
            name = self.store._cairn_ref(self.store.context_prefix + ref[len(self.t_context) :])
            if name is not None:
                context[name] = oid
        return Side(
            self._one(self.t_ledger),
            self._one(self.t_objects),
            context,
            self._anchors(self.t_runs),
            self._one(self.t_notes),
        )

    def _base(self) -> dict[str, str]:
        """The remote's context refs (name -> value) as the last sync integrated them."""
        found = self.store._cat.read([self.base_ref])[0]
        if found is None or found[1] != "blob":
            return {}
        try:
            data = json.loads(found[2])
        except ValueError:
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}

    # -- 1. fetch --------------------------------------------------------------------------------

    def _remote_to_tracking(self, ref: str) -> str | None:
        store = self.store
        if ref == store.ledger_ref:
            return self.t_ledger
        if ref == store.objects_ref:
            return self.t_objects
        if ref == store.notes_ref:
            return self.t_notes
        if ref.startswith(store.context_prefix):
            return self.t_context + ref[len(store.context_prefix) :]
        if ref.startswith(store.anchor_prefix):
            run_id = ref[len(store.anchor_prefix) :]
            try:
                return self.t_runs + validate_run_id(run_id)
            except ValidationError:
                return None  # not a run id this store would ever write: not ours to copy
        return None

    def fetch(self) -> int:
        """Bring the remote's cairn refs into our remote-tracking refs; how many of those changed."""
        store = self.store
        listed = self._remote_git(
            "ls-remote",
            "--refs",
            self.remote,
            store.ledger_ref,
            store.objects_ref,
            store.notes_ref,
            f"{store.context_prefix}*",
            f"{store.anchor_prefix}*",
        ).stdout.decode()
        wanted: dict[str, str] = {}
        for line in listed.splitlines():
            oid, _, ref = line.partition("\t")
            tracking = self._remote_to_tracking(ref.strip())
            if tracking is not None:
                wanted[tracking] = oid
        current = self._refs(self.tracking)
        if wanted == current:
            return 0
        self._say(f"fetching from {self.remote}")
        specs = [f"+{store.context_prefix}*:{self.t_context}*", f"+{store.anchor_prefix}*:{self.t_runs}*"]
        if self.t_ledger in wanted:
            specs.append(f"+{store.ledger_ref}:{self.t_ledger}")
        if self.t_objects in wanted:
            specs.append(f"+{store.objects_ref}:{self.t_objects}")
        if self.t_notes in wanted:
            specs.append(f"+{store.notes_ref}:{self.t_notes}")
        # --refmap= keeps the user's own remote-tracking branches as they are.
        self._remote_git(
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--refmap=",
            "--prune",
            "--no-recurse-submodules",
            *([] if store.gc_auto else ["--no-auto-gc"]),
            self.remote,
            *specs,
        )
        after = self._refs(self.tracking)
        stale = [ref for ref in after if ref not in wanted and ref in (self.t_ledger, self.t_objects, self.t_notes)]
        if stale:
            store._apply([store._ref_command(ref, None, after[ref]) for ref in stale])
            for ref in stale:
                after.pop(ref)
        return sum(1 for ref in set(after) | set(current) if after.get(ref) != current.get(ref))

    # -- 2. integrate ----------------------------------------------------------------------------

    def _counts(self, left: str, right: str) -> tuple[int, int]:
        """(commits only in ``left``, commits only in ``right``)."""
        text = self.git.output("rev-list", "--left-right", "--count", f"{left}...{right}")
        ahead, behind = text.split()
        return int(ahead), int(behind)
