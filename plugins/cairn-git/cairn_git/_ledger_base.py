"""``LedgerBase``: the ledger branch, the run refs and the chat notes, which the ledger, chat and sync facets share.

- the ledger branch (``refs/heads/<ledger_branch>``, files laid out by
  ``cairn_git._ledger`` and ``cairn_git.facets.chat``): read, and changed by
  ``_update_ledger``, a compare-and-swap of the branch retried on the new
  tip until it lands, carrying the ref commands that go with the change;
- each run's ref (``refs/<ns>/runs/<id>`` or ``refs/tags/<ns>/run/<id>``),
  pointing at the run's annotated tag;
- the chat notes ref (``refs/notes/<ns>-chat``): notes on run tags
  (``cairn_git._notes``), which follow a run to its new tag when it is
  closed or merged (``_rehome_edits``, ``_move_notes``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from cairn.errors import IntegrityError
from cairn.model.chat import ChatMessage
from cairn.model.ledger import validate_run_id
from cairn_git import _notes as notes
from cairn_git._base import MAX_ATTEMPTS, MAX_UNEXPLAINED, GitBase, is_lock_contention
from cairn_git._git import BLOB_MODE, TREE_MODE, parse_commit

__all__ = ["LedgerBase", "LedgerChange"]


@attrs.define
class LedgerChange:
    """What one ledger commit changes: files (None removes), its message, the refs that move with it."""

    edits: Mapping[str, tuple[str, str] | None]
    message: str
    refs: Callable[[str], list[str]] | None = None  # ref commands, given the new ledger commit
    done: Callable[[], None] | None = None  # run once the transaction is applied
    result: Any = None  # what the writing method returns


class LedgerBase(GitBase):
    """The ledger branch, run refs and chat notes (see the module docstring); a base of the ledger, chat and sync facets."""

    _ledger_state: tuple[str | None, str | None] | None  # (tip, tree) last seen
    _parsed_files: dict[str, Any]  # blob id -> the spend record, message, thread or note it holds
    _note_index_cache: tuple[str | None, dict[str, tuple[str, str]]]

    def _init_facet(self) -> None:
        super()._init_facet()
        self._ledger_state = None
        self._parsed_files = {}
        self._note_index_cache = (None, {})

    # -- the ledger branch ------------------------------------------------------------------------

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

    def _update_ledger(self, what: str, plan: Callable[[str | None, str | None, int], LedgerChange | None]) -> Any:
        """Commit a change to the ledger branch with a compare-and-swap, rebuilding it on the new tip until it lands.

        ``plan(tip, tree, attempt)`` looks at the ledger as it is and returns
        the change (or None: nothing to do); it may raise ``ConflictError``.
        The change's ref commands ride in the same transaction as the branch.
        """
        unexplained = 0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._backoff(attempt)
            tip, root = self._ledger()
            change = plan(tip, root, attempt)
            if change is None:
                return None
            new_root = self._trees.edit(root, change.edits) if change.edits else root
            commands = []
            if new_root != root or tip is None:
                commit = self._writer.commit(
                    new_root or self._writer.empty_tree, [tip] if tip else [], self._ident(), change.message
                )
                commands.append(self._ref_command(self.ledger_ref, commit, tip))
            else:
                commit = tip
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
            if unexplained >= MAX_UNEXPLAINED and not is_lock_contention(failure):
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

    # -- the chat notes ----------------------------------------------------------------------------

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
        for attempt in range(1, MAX_ATTEMPTS + 1):
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
