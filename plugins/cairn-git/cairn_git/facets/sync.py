"""The sync facet: push and pull through the ``git`` command line, so the user's remotes, URLs and credentials just work.

A sync has three steps:

1. **fetch** the remote's cairn refs into tracking refs of our own
   (``cairn_git._remote``);
2. **integrate** them into the local refs in one transaction that checks
   every local ref's old value (``cairn_git._merge``): histories merge,
   run refs follow the merged ledger, context refs merge three ways and a
   diverged branch keeps the remote's tip as ``conflict/<remote>/<branch>``;
3. **push** (``push`` only): every ref that differs from the remote goes in
   one ``git push --atomic`` with ``--force-with-lease=<ref>:<value we
   saw>`` for each, so the remote changes all or nothing and only if nobody
   pushed in between; a rejection starts over from step 1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cairn.errors import StorageError
from cairn.storage import Syncable, SyncReport, SyncStatus
from cairn_git._base import locked
from cairn_git._merge import Merge
from cairn_git._remote import ATTEMPTS, HEAD, REMOTE_HINT, SyncedStore

__all__ = ["GitSync", "Sync"]


class GitSync(SyncedStore, Syncable):
    """``Syncable``: push, pull and status against a git remote (``remote`` in ``[storage.git]`` by default)."""

    @locked
    def push(self, remote: str | None = None, *, progress: Any = None) -> SyncReport:
        """Publish the ledger, run anchors, catalog and context refs with one ``git push --atomic``.

        Merges the remote's history first when it moved on, and loops while
        the push is rejected because someone else pushed in between.
        """
        return Sync(self, remote).push(progress)

    @locked
    def pull(self, remote: str | None = None, *, progress: Any = None) -> SyncReport:
        """Fetch the remote's cairn refs and merge them into the local ones, losing nothing."""
        return Sync(self, remote).pull(progress)

    @locked
    def sync_status(self, remote: str | None = None) -> SyncStatus:
        """Fetch, then count ledger and catalog commits (and context refs) on each side only."""
        return Sync(self, remote).status()


class Sync(Merge):
    """One push, pull or status against ``remote`` for ``store`` (the store's lock is held by the caller)."""

    # -- 3. push -----------------------------------------------------------------------------------

    def _publish(self) -> tuple[list[str], dict[str, str | None]]:
        """The push arguments for every ref that differs from the remote, and what each remote ref becomes."""
        store = self.store
        local, remote = self._local(), self._tracked()
        pairs: list[tuple[str, str | None, str | None]] = []  # (remote ref, ours, theirs)
        pairs.append((store.ledger_ref, local.ledger, remote.ledger))
        pairs.append((store.objects_ref, local.objects, remote.objects))
        pairs.append((store.notes_ref, local.notes, remote.notes))
        for name in sorted(set(local.context) | set(remote.context)):
            if name != HEAD:
                pairs.append((store._git_ref(name), local.context.get(name), remote.context.get(name)))
        for run_id in sorted(set(local.anchors) | set(remote.anchors)):
            pairs.append((store._anchor(run_id), local.anchors.get(run_id), remote.anchors.get(run_id)))
        leases, specs, outcome = [], [], {}
        for ref, ours, theirs in pairs:
            if ours == theirs:
                continue
            # No '+' on the refspec: git lets a forced refspec override a stale lease. The lease
            # alone allows the non-fast-forward, and only if the remote still holds ``theirs``.
            leases.append(f"--force-with-lease={ref}:{theirs or ''}")
            specs.append(f"{ours}:{ref}" if ours is not None else f":{ref}")
            outcome[ref] = ours
        return leases + specs, outcome

    def _track(self, outcome: Mapping[str, str | None]) -> None:
        """After a push: the tracking refs and the sync base say what the remote now holds."""
        store = self.store
        current = self._refs(self.tracking)
        commands = []
        for ref, oid in outcome.items():
            tracking = self._remote_to_tracking(ref)
            if tracking is not None and current.get(tracking) != oid:
                commands.append(store._ref_command(tracking, oid, current.get(tracking)))
        local = self._local()
        values = store._values_of(local.context.values())
        base = {n: values[o] for n, o in local.context.items() if o in values and n != HEAD}
        blob = store._writer.blob(json.dumps(base, sort_keys=True, ensure_ascii=False).encode())
        commands.append(store._ref_command(self.base_ref, blob, self._one(self.base_ref)))
        store._apply(commands)  # if another sync moved them meanwhile, the next fetch puts them right

    # -- the three operations ----------------------------------------------------------------------

    def pull(self, progress: Any = None) -> SyncReport:
        self._progress = progress if callable(progress) else None
        if not self._configured():
            return SyncReport(remote=None, message=self._no_remote("pull"))
        fetched = self.fetch()
        merged, conflicts = self.integrate()
        return SyncReport(
            remote=self.remote,
            fetched=fetched,
            merged=merged,
            message=self._summary("pulled from", fetched, None, merged, conflicts),
        )

    def push(self, progress: Any = None) -> SyncReport:
        self._progress = progress if callable(progress) else None
        if not self._configured():
            return SyncReport(remote=None, message=self._no_remote("push"))
        fetched = merged = 0
        conflicts: list[str] = []
        last = ""
        for _ in range(ATTEMPTS):
            fetched += self.fetch()
            more, saved = self.integrate()
            merged += more
            conflicts += saved
            args, outcome = self._publish()
            if not args:
                return SyncReport(
                    remote=self.remote,
                    fetched=fetched,
                    merged=merged,
                    message=self._summary("pushed to", fetched, 0, merged, conflicts),
                )
            self._say(f"pushing {len(outcome)} refs to {self.remote}")
            done = self._remote_git(
                "push",
                "--atomic",
                "--porcelain",
                "--no-verify",
                "--no-signed",
                "--recurse-submodules=no",
                self.remote,
                *args,
                ok=(0, 1),
            )
            if done.returncode == 0:
                self._track(outcome)
                return SyncReport(
                    remote=self.remote,
                    pushed=len(outcome),
                    fetched=fetched,
                    merged=merged,
                    message=self._summary("pushed to", fetched, len(outcome), merged, conflicts),
                )
            last = (done.stdout + done.stderr).decode(errors="replace")
            if not _rejected_by_a_race(last):
                raise StorageError(
                    f"git push {self.remote} failed: {last.strip().splitlines()[-1] if last else ''}",
                    hint=REMOTE_HINT.format(remote=self.remote),
                )
        raise StorageError(
            f"git push {self.remote} was rejected {ATTEMPTS} times: others keep pushing", hint="retry in a moment"
        )

    def status(self) -> SyncStatus:
        if not self._configured():
            return SyncStatus(remote=None, ahead=0, behind=0, details={"message": self._no_remote("compare")})
        self.fetch()
        local, remote, base = self._local(), self._tracked(), self._base()
        details: dict[str, Any] = {}
        ahead = behind = 0
        for label, mine, theirs in (
            ("ledger", local.ledger, remote.ledger),
            ("objects", local.objects, remote.objects),
        ):
            if mine and theirs:
                a, b = self._counts(mine, theirs)
            else:
                a = int(self.git.output("rev-list", "--count", mine).strip()) if mine else 0
                b = int(self.git.output("rev-list", "--count", theirs).strip()) if theirs else 0
            details[label] = {"ahead": a, "behind": b}
            ahead, behind = ahead + a, behind + b
        values = self.store._values_of([*local.context.values(), *remote.context.values()])
        here = {n: values.get(o) for n, o in local.context.items() if n != HEAD}
        there = {n: values.get(o) for n, o in remote.context.items() if n != HEAD}
        moved_here = [
            n for n in set(here) | set(there) | set(base) if here.get(n) != there.get(n) and here.get(n) != base.get(n)
        ]
        moved_there = [
            n for n in set(here) | set(there) | set(base) if here.get(n) != there.get(n) and there.get(n) != base.get(n)
        ]
        details["context_refs"] = {"ahead": sorted(moved_here), "behind": sorted(moved_there)}
        details["runs"] = {
            "only_here": len(set(local.anchors) - set(remote.anchors)),
            "only_there": len(set(remote.anchors) - set(local.anchors)),
        }
        return SyncStatus(
            remote=self.remote, ahead=ahead + len(moved_here), behind=behind + len(moved_there), details=details
        )

    def _summary(self, verb: str, fetched: int, pushed: int | None, merged: int, conflicts: list[str]) -> str:
        """One line for people; a pull (``pushed`` None) says nothing of pushing."""
        done = [f"{fetched} {'ref' if fetched == 1 else 'refs'} fetched"]
        if pushed is not None:
            done.append(f"{pushed} pushed")
        parts = [f"{verb} {self.remote}: {', '.join(done)}, {merged} merged"]
        for name in conflicts:
            parts.append(f"diverged context branch kept the remote tip as {name[len('refs/heads/') :]}")
        return "; ".join(parts)


def _rejected_by_a_race(output: str) -> bool:
    text = output.lower()
    return any(
        reason in text
        for reason in (
            "stale info",
            "fetch first",
            "non-fast-forward",
            "atomic push failed",
            "cannot lock ref",
            "failed to update ref",
            "[rejected]",
        )
    )
