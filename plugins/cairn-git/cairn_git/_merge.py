"""Sync's merge: the remote-tracking state integrated into the local refs in one ``update-ref`` transaction.

The transaction checks every local ref's old value, so a local writer that
moved one meanwhile makes the whole step start over:

- the ledger branch and the object catalog: fast-forward when one side
  contains the other, else ``git merge-tree --write-tree
  --allow-unrelated-histories`` and a merge commit with both parents; the
  rare conflicting files are settled by ``_ledger.resolve`` (every event of
  both sides, a closed run over an open one) and, for the catalog, by
  keeping ours (content addressing makes both sides alike);
- the chat notes (``refs/notes/<ns>-chat``): fast-forward, or a three-way
  merge per annotated object that keeps every message of both sides once
  (``_notes.merge_notes``); notes left on a run's old tag then move to its
  current tag;
- run refs follow the merged ledger: a run on the branch gets a ref (the
  remote's tag when it says the same, else a new tag), a run no longer on
  the branch loses it;
- context refs merge three ways against what the last sync saw of the
  remote (``refs/<ns>/sync/<remote>``): a side that did not move takes the
  other's value; when both moved, the descendant wins; when the lines
  diverged the local branch stays and the remote's tip is kept as the
  branch ``conflict/<remote>/<branch>``. Nothing is dropped. ``HEAD``
  (which branch this machine is on) is never synced.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping

from cairn.errors import StorageError
from cairn_git import _ledger as ledger
from cairn_git import _notes as notes
from cairn_git._catalog import Catalog
from cairn_git._git import BLOB_MODE, parse_tag
from cairn_git._remote import ATTEMPTS, HEAD, RemoteRefs, Side

__all__ = ["Merge"]


class Merge(RemoteRefs):
    """Integrating one remote's fetched state into the local refs, losing nothing."""

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
        orphans: dict[str, tuple[str, str] | None] = {}
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
        root = self.store._commit_tree(commit)
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
        root = store._commit_tree(tip)
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

    def _anchors_for(self, ledger_tip: str | None, local: Side, remote: Side) -> dict[str, str | None]:
        """The run refs the merged ledger calls for: run id -> tag id (None: delete), changes only."""
        store = self.store
        root = store._commit_tree(ledger_tip) if ledger_tip else None
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
        if fresh and ledger_tip is not None:  # (runs come from the ledger at ledger_tip: it is there)
            contents = store._cat.read([want for _, want, _ in fresh])
            head = store._head_commit()() or ledger_tip
            for (run_id, _, target), found in zip(fresh, contents, strict=True):
                if found is None:
                    continue
                # The run keeps the commit its tag named; a run new to this side gets HEAD.
                changes[run_id] = store._writer.tag(
                    target or head,
                    "commit",
                    store._tag_name(run_id),
                    store._ident(),
                    found[2],
                )
        for run_id in local.anchors:
            if run_id not in on_branch:
                changes[run_id] = None
        return changes

    def _context_for(
        self, local: Side, remote: Side, base: Mapping[str, str], catalog: Catalog
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
        for _ in range(ATTEMPTS):
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


def _keep_ours(path: str, base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    """Catalog files are content addressed, so both sides agree but for derived fields and counts: keep ours."""
    return ours if ours is not None else theirs
