"""Push and pull through the ``git`` command line, so the user's remotes, URLs and credentials just work.

A sync has three steps:

1. **fetch**: ``git ls-remote`` says which of our refs the remote has; if
   any differ from what we saw last, one ``git fetch`` brings them into
   remote-tracking refs of our own, ``refs/<ns>/remotes/<remote>/...``
   (``ledger``, ``objects``, ``notes/chat``, ``context/*``, ``runs/*``) -- not under
   ``refs/remotes/``, where ``git branch -a`` would list every run. The
   user's own remote-tracking branches, ``FETCH_HEAD`` and tags are left
   alone (``--refmap=``, ``--no-write-fetch-head``, ``--no-tags``).
2. **integrate** the remote's state into the local refs, in one
   ``update-ref`` transaction that checks every local ref's old value (a
   local writer that moved one meanwhile makes the whole step start over):

   - the ledger branch and the object catalog: fast-forward when one side
     contains the other, else ``git merge-tree --write-tree
     --allow-unrelated-histories`` and a merge commit with both parents;
     the rare conflicting files are settled by ``_ledger.resolve`` (every
     event of both sides, a closed run over an open one) and, for the
     catalog, by keeping ours (content addressing makes both sides alike);
   - the chat notes (``refs/notes/<ns>-chat``): fast-forward, or a
     three-way merge per annotated object that keeps every message of both
     sides once (``_notes.merge_notes``); notes left on a run's old tag then
     move to its current tag;
   - run refs follow the merged ledger: a run on the branch gets a ref
     (the remote's tag when it says the same, else a new tag), a run no
     longer on the branch loses it;
   - context refs merge three ways against what the last sync saw of the
     remote (``refs/<ns>/sync/<remote>``): a side that did not move takes
     the other's value; when both moved, the descendant wins; when the
     lines diverged the local branch stays and the remote's tip is kept as
     the branch ``conflict/<remote>/<branch>``. Nothing is dropped.
     ``HEAD`` (which branch this machine is on) is never synced.
3. **push** (``push`` only): every ref that differs from the remote goes in
   one ``git push --atomic`` with ``--force-with-lease=<ref>:<value we
   saw>`` for each, so the remote changes all or nothing and only if nobody
   pushed in between; a rejection starts over from step 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from cairn.errors import StorageError, ValidationError
from cairn.model.ledger import validate_run_id
from cairn.storage import SyncReport, SyncStatus
from cairn_git import _ledger as ledger
from cairn_git import _notes as notes
from cairn_git._catalog import Catalog
from cairn_git._git import BLOB_MODE, GitCommandError, parse_commit, parse_tag
from cairn_git.config import check_remote

if TYPE_CHECKING:
    from cairn_git.store import GitStore

__all__ = ["Sync"]

HEAD = "HEAD"
_ATTEMPTS = 12
_REMOTE_HINT = "check the remote's URL and your access to it; `git fetch {remote}` shows git's full message"


class _Side:
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


class Sync:
    """One push, pull or status against ``remote`` for ``store`` (the store's lock is held by the caller)."""

    def __init__(self, store: GitStore, remote: str | None) -> None:
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
            return self.git.run(*args, ok=ok, hint=_REMOTE_HINT.format(remote=self.remote))
        except GitCommandError as exc:
            raise StorageError(
                f"git {args[0]} {self.remote} failed: {exc.stderr or exc.message}",
                hint=_REMOTE_HINT.format(remote=self.remote),
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

    def _local(self) -> _Side:
        store = self.store
        context = {name: oid for name, (_, oid) in store._context_refs().items()}
        anchors = self._anchors(store.anchor_prefix)
        return _Side(
            self._one(store.ledger_ref), self._one(store.objects_ref), context, anchors, self._one(store.notes_ref)
        )

    def _tracked(self) -> _Side:
        context = {}
        for ref, oid in self._refs(self.t_context).items():
            name = self.store._cairn_ref(self.store.context_prefix + ref[len(self.t_context) :])
            if name is not None:
                context[name] = oid
        return _Side(
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

    def _merge(
        self,
        local: str | None,
        remote: str | None,
        what: str,
        resolve: Callable[[str, bytes | None, bytes | None, bytes | None], bytes | None],
    ) -> tuple[str | None, int]:
        """The merged tip of two histories and 1 if a merge commit was made (0 for nothing or a fast-forward)."""
        if remote is None or remote == local:
            return local, 0
        if local is None:
            return remote, 0
        ahead, behind = self._counts(local, remote)
        if behind == 0:
            return local, 0
        if ahead == 0:
            return remote, 0
        self._say(f"merging the {what} of {self.remote}")
        done = self.git.run(
            "-c",
            "merge.renames=false",
            "merge-tree",
            "--write-tree",
            "-z",
            "--allow-unrelated-histories",
            local,
            remote,
            ok=(0, 1),
        )
        fields = done.stdout.split(b"\0")
        tree = fields[0].decode().strip()
        stages: dict[str, dict[int, str]] = {}
        if done.returncode == 1:
            for item in fields[1:]:
                if not item:
                    break
                meta, _, path = item.partition(b"\t")
                _, oid, stage = meta.decode().split()
                stages.setdefault(path.decode("utf-8", errors="surrogateescape"), {})[int(stage)] = oid
        if stages:
            tree = self._settle(tree, stages, resolve)
        store = self.store
        commit = store._writer.commit(
            tree, [local, remote], store._ident(), f"cairn: merge the {what} of {self.remote}"
        )
        return commit, 1

    def _settle(
        self,
        tree: str,
        stages: Mapping[str, Mapping[int, str]],
        resolve: Callable[[str, bytes | None, bytes | None, bytes | None], bytes | None],
    ) -> str:
        """``tree`` with every conflicted file replaced by its resolution."""
        store = self.store
        oids = sorted({oid for per in stages.values() for oid in per.values()})
        contents = {oid: found[2] for oid, found in zip(oids, store._cat.read(oids), strict=True) if found is not None}
        edits: dict[str, tuple[str, str] | None] = {}
        for path, per in stages.items():
            merged = resolve(path, *(contents.get(per[s]) if s in per else None for s in (1, 2, 3)))
            edits[path] = None if merged is None else (BLOB_MODE, store._writer.blob(merged))
        new = store._trees.edit(tree, edits) or store._writer.empty_tree
        # A run whose record was deleted on one side while the other added events: the deletion stands.
        orphans = {}
        for path in stages:
            directory, _, name = path.rpartition("/")
            if name == ledger.EVENTS and directory.startswith(ledger.RUNS_DIR + "/"):
                if store._trees.lookup(new, f"{directory}/{ledger.RUN}") is None:
                    orphans[directory] = None
        return (store._trees.edit(new, orphans) or store._writer.empty_tree) if orphans else new

    def _note_blobs(self, commit: str | None) -> dict[str, str]:
        """annotated object id -> note blob id in the notes commit ``commit``."""
        if commit is None:
            return {}
        root = parse_commit(self.store._cat.read_one(commit)[2])[0]  # type: ignore[index]
        return {key: blob for key, (_, blob) in self.store._note_index(root).items()}

    def _merge_notes(self, local: str | None, remote: str | None, anchors: dict[str, str]) -> tuple[str | None, int]:
        """The chat notes' new tip and 1 if a merge commit was made.

        Fast-forward when one side contains the other; else a three-way merge per annotated object
        (``_notes.merge_notes``: a note both sides changed keeps every message of both, once, in ts
        order) and a merge commit with both parents. Then notes left on a run's old tag move to the
        run's current tag (``anchors``), so each message is in one note.
        """
        store = self.store
        tip, made = local, 0
        if remote is not None and remote != local:
            if local is None:
                tip = remote
            else:
                ahead, behind = self._counts(local, remote)
                if ahead == 0:
                    tip = remote
                elif behind != 0:
                    self._say(f"merging the chat notes of {self.remote}")
                    done = self.git.run("merge-base", local, remote, ok=(0, 1))
                    base = done.stdout.decode().strip() or None
                    merged = notes.merge_notes(
                        self._note_blobs(base), self._note_blobs(local), self._note_blobs(remote), store._read_blobs
                    )
                    tree = store._writer.tree(
                        {
                            key: (BLOB_MODE, value if isinstance(value, str) else store._writer.blob(value))
                            for key, value in merged.items()
                        }
                    )
                    tip = store._writer.commit(
                        tree, [local, remote], store._ident(), f"cairn: merge the chat notes of {self.remote}"
                    )
                    made = 1
        if tip is None:
            return None, made
        root = parse_commit(store._cat.read_one(tip)[2])[0]  # type: ignore[index]
        edits = store._rehome_edits(root, anchors)
        if edits:
            tip = store._notes_edit(tip, root, edits, "cairn: notes follow their runs' tags")
        return tip, made

    def _messages(self, tags: Iterable[str]) -> dict[str, tuple[str, bytes]]:
        """tag id -> (target, message) for the given tags, in one round trip."""
        oids = sorted(set(tags))
        out = {}
        for oid, found in zip(oids, self.store._cat.read(oids), strict=True):
            if found is not None and found[1] == "tag":
                out[oid] = parse_tag(found[2])
        return out

    def _anchors_for(self, ledger_tip: str | None, local: _Side, remote: _Side) -> dict[str, str | None]:
        """The run refs the merged ledger calls for: run id -> tag id (None: delete), changes only."""
        store = self.store
        root = parse_commit(store._cat.read_one(ledger_tip)[2])[0] if ledger_tip else None  # type: ignore[index]
        on_branch = {}
        for path, oid in store._trees.walk(root, ledger.RUNS_DIR):
            parts = path.split("/")
            if len(parts) == 5 and parts[4] == ledger.RUN:
                on_branch[parts[3]] = oid
        tags = self._messages([*local.anchors.values(), *remote.anchors.values()])
        blob_of = {oid: store._writer.oid("blob", message) for oid, (_, message) in tags.items()}
        changes: dict[str, str | None] = {}
        fresh = []
        for run_id, want in on_branch.items():
            mine, theirs = local.anchors.get(run_id), remote.anchors.get(run_id)
            if mine is not None and blob_of.get(mine) == want:
                continue
            if theirs is not None and blob_of.get(theirs) == want:
                changes[run_id] = theirs
            else:
                old = mine if mine in tags else theirs if theirs in tags else None
                fresh.append((run_id, want, tags[old][0] if old is not None else None))
        if fresh:
            contents = store._cat.read([want for _, want, _ in fresh])
            head = store._head_commit()() or ledger_tip
            for (run_id, _, target), found in zip(fresh, contents, strict=True):
                if found is None:
                    continue
                # The run keeps the commit its tag named; a run new to this side gets HEAD.
                changes[run_id] = store._writer.tag(
                    target or head,
                    "commit",
                    store._tag_name(run_id),  # type: ignore[arg-type]
                    store._ident(),
                    found[2],
                )
        for run_id in local.anchors:
            if run_id not in on_branch:
                changes[run_id] = None
        return changes

    def _context_for(
        self, local: _Side, remote: _Side, base: Mapping[str, str], catalog: Catalog
    ) -> tuple[dict[str, str | None], list[str]]:
        """Context refs to change (name -> value, None deletes) and the conflict branches among them."""
        store = self.store
        values = store._values_of([*local.context.values(), *remote.context.values()])
        mine = {n: values[o] for n, o in local.context.items() if o in values}
        theirs = {n: values[o] for n, o in remote.context.items() if o in values}
        changes: dict[str, str | None] = {}
        conflicts: list[str] = []
        for name in sorted(set(mine) | set(theirs) | set(base)):
            if name == HEAD:
                continue
            ours, other, was = mine.get(name), theirs.get(name), base.get(name)
            if ours == other or other == was:
                continue  # alike, or only we moved: ours stands (push publishes it)
            if ours == was or ours is None:
                changes[name] = other  # only they moved (or we deleted what they kept changing)
                continue
            if other is None:
                continue  # they deleted what we changed: ours stands
            if catalog.is_ancestor(ours, other):
                changes[name] = other
            elif catalog.is_ancestor(other, ours):
                continue
            else:
                saved = self._conflict_name(name, other, mine, changes, catalog)
                if saved is not None:
                    changes[saved] = other
                    conflicts.append(saved)
        return changes, conflicts

    def _conflict_name(
        self, name: str, value: str, mine: Mapping[str, str], changes: Mapping[str, str | None], catalog: Catalog
    ) -> str | None:
        """Where to keep the remote tip of a diverged branch: ``refs/heads/conflict/<remote>/<branch>[-N]``.

        None when it is kept there already; a name holding another line is
        never overwritten (a new suffix is taken).
        """
        branch = name[len("refs/heads/") :] if name.startswith("refs/heads/") else name.replace("/", "-")
        for n in range(1, 1000):
            candidate = self.conflict_prefix + branch + ("" if n == 1 else f"-{n}")
            current = changes.get(candidate, mine.get(candidate))
            if current == value:
                return None
            if current is None or catalog.is_ancestor(current, value):
                return candidate
        raise StorageError(
            f"too many conflict branches for {name}", hint=f"delete old ones under {self.conflict_prefix}"
        )

    def integrate(self) -> tuple[int, list[str]]:
        """Merge the remote-tracking state into the local refs; (merges made, conflict branches saved)."""
        store = self.store
        for _ in range(_ATTEMPTS):
            local, remote, base = self._local(), self._tracked(), self._base()
            objects, merged_objects = self._merge(local.objects, remote.objects, "objects", _keep_ours)
            ledger_tip, merged_ledger = self._merge(local.ledger, remote.ledger, "ledger", ledger.resolve)
            # The merged catalog (not yet published) answers ancestry questions for the context refs;
            # if the transaction below loses, the next read reloads the published one.
            if objects != store._catalog.commit_oid:
                store._load_catalog(objects)
            context, conflicts = self._context_for(local, remote, base, store._catalog)
            # Local run refs always match the local ledger; only a new ledger tip calls for changes.
            anchors = self._anchors_for(ledger_tip, local, remote) if ledger_tip != local.ledger else {}
            remote_values = store._values_of(remote.context.values())
            new_base = {n: remote_values[o] for n, o in remote.context.items() if o in remote_values and n != HEAD}
            commands = []
            if ledger_tip != local.ledger:
                commands.append(store._ref_command(store.ledger_ref, ledger_tip, local.ledger))
            if objects != local.objects:
                commands.append(store._ref_command(store.objects_ref, objects, local.objects))
            for name, value in context.items():
                new = store._writer.blob(value.encode("utf-8")) if value is not None else None
                commands.append(store._ref_command(store._git_ref(name), new, local.context.get(name)))
            for run_id, tag in anchors.items():
                commands.append(store._ref_command(store._anchor(run_id), tag, local.anchors.get(run_id)))
            final = {r: t for r, t in {**local.anchors, **anchors}.items() if t is not None}
            notes_tip, merged_notes = self._merge_notes(local.notes, remote.notes, final)
            if notes_tip != local.notes:
                commands.append(store._ref_command(store.notes_ref, notes_tip, local.notes))
            if new_base != base or self._one(self.base_ref) is None:
                blob = store._writer.blob(json.dumps(new_base, sort_keys=True, ensure_ascii=False).encode())
                commands.append(store._ref_command(self.base_ref, blob, self._one(self.base_ref)))
            if store._apply(commands) is None:
                store._ledger_state = None
                return merged_objects + merged_ledger + merged_notes + len(conflicts), conflicts
        raise StorageError(
            f"merging {self.remote}'s history kept losing to local writers", hint="retry when the writers are done"
        )

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
            message=self._summary("pulled from", fetched, 0, merged, conflicts),
        )

    def push(self, progress: Any = None) -> SyncReport:
        self._progress = progress if callable(progress) else None
        if not self._configured():
            return SyncReport(remote=None, message=self._no_remote("push"))
        fetched = merged = 0
        conflicts: list[str] = []
        last = ""
        for _ in range(_ATTEMPTS):
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
                    hint=_REMOTE_HINT.format(remote=self.remote),
                )
        raise StorageError(
            f"git push {self.remote} was rejected {_ATTEMPTS} times: others keep pushing", hint="retry in a moment"
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
        ours = {n: values.get(o) for n, o in local.context.items() if n != HEAD}
        theirs = {n: values.get(o) for n, o in remote.context.items() if n != HEAD}
        moved_here = [
            n
            for n in set(ours) | set(theirs) | set(base)
            if ours.get(n) != theirs.get(n) and ours.get(n) != base.get(n)
        ]
        moved_there = [
            n
            for n in set(ours) | set(theirs) | set(base)
            if ours.get(n) != theirs.get(n) and theirs.get(n) != base.get(n)
        ]
        details["context_refs"] = {"ahead": sorted(moved_here), "behind": sorted(moved_there)}
        details["runs"] = {
            "only_here": len(set(local.anchors) - set(remote.anchors)),
            "only_there": len(set(remote.anchors) - set(local.anchors)),
        }
        return SyncStatus(
            remote=self.remote, ahead=ahead + len(moved_here), behind=behind + len(moved_there), details=details
        )

    def _summary(self, verb: str, fetched: int, pushed: int, merged: int, conflicts: list[str]) -> str:
        parts = [f"{verb} {self.remote}: {fetched} refs fetched, {pushed} pushed, {merged} merged"]
        for name in conflicts:
            parts.append(f"diverged context branch kept the remote tip as {name[len('refs/heads/') :]}")
        return "; ".join(parts)


def _keep_ours(path: str, base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    """Catalog files are content addressed, so both sides agree but for derived fields and counts: keep ours."""
    return ours if ours is not None else theirs


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
