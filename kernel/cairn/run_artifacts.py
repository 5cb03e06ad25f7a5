"""What a run made and changed, as events: attached files, directory snapshots before and after, the changes.

``cairn run --artifact PATH --snapshot DIR -- COMMAND`` records, in the
run's event stream:

- ``snapshot`` (``phase: "before"``) for each DIR, before the command
  starts: ``tree``, ``root``, ``files``, ``bytes``, ``problems``;
- after it exits, ``snapshot`` (``phase: "after"``) for each DIR, and a
  ``changes`` event: the ``before`` and ``after`` trees and the paths
  ``added``, ``removed``, ``changed`` and ``mode_changed`` (each list cut at
  ``MAX_PATHS`` paths, with the full counts beside them), so a run says
  exactly which files it changed;
- ``artifact`` for each PATH that exists after the command: ``hash``,
  ``name``, ``mime``, ``size``, ``path``; a PATH that is missing or not a
  file becomes an ``artifact_missing`` event with the reason instead.

Every hash in these events keeps its object from ``cairn gc``
(``hashes_of_event``). Files and trees are recorded in the artifact
metadata with the referrer ``run:<run id>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from cairn.model.artifacts import ArtifactRecord, SnapshotRecord

if TYPE_CHECKING:  # pragma: no cover
    from cairn.model import RunEvent
    from cairn.project_artifacts import ProjectArtifacts
    from cairn.trees import TreeDiff

__all__ = [
    "ARTIFACT_EVENT",
    "ARTIFACT_MISSING_EVENT",
    "CHANGES_EVENT",
    "MAX_PATHS",
    "SNAPSHOT_EVENT",
    "RunAttachments",
    "artifact_event",
    "changes_event",
    "hashes_of_event",
    "snapshot_event",
]

ARTIFACT_EVENT = "artifact"
ARTIFACT_MISSING_EVENT = "artifact_missing"
SNAPSHOT_EVENT = "snapshot"
CHANGES_EVENT = "changes"
#: The most paths a ``changes`` event lists per kind; the counts are always complete.
MAX_PATHS = 1000


def artifact_event(record: ArtifactRecord, path: str) -> dict[str, Any]:
    """The ``artifact`` event of a file attached to a run."""
    return {
        "type": ARTIFACT_EVENT,
        "hash": record.hash,
        "name": record.name,
        "mime": record.mime,
        "size": record.size,
        "path": path,
    }


def snapshot_event(record: SnapshotRecord, phase: str) -> dict[str, Any]:
    """The ``snapshot`` event of a directory taken ``before`` or ``after`` the command."""
    return {
        "type": SNAPSHOT_EVENT,
        "phase": phase,
        "tree": record.tree,
        "root": record.root,
        "files": record.files,
        "bytes": record.bytes,
        "problems": record.problems,
    }


def changes_event(root: str, before: str, after: str, diff: TreeDiff) -> dict[str, Any]:
    """The ``changes`` event: which paths the command added, removed, changed, or changed the mode of."""
    event: dict[str, Any] = {"type": CHANGES_EVENT, "root": root, "before": before, "after": after}
    for kind in ("added", "removed", "changed", "mode_changed"):
        paths = [c.path for c in getattr(diff, kind)]
        event[kind] = paths[:MAX_PATHS]
        event[f"{kind}_count"] = len(paths)
    return event


def hashes_of_event(event: RunEvent) -> Iterable[tuple[str, str]]:
    """(``"artifact"`` or ``"tree"``, hash) for every object a run event keeps: for ``cairn gc``'s roots."""
    fields = event.fields
    if event.type == ARTIFACT_EVENT and isinstance(fields.get("hash"), str):
        yield "artifact", fields["hash"]
    elif event.type == SNAPSHOT_EVENT and isinstance(fields.get("tree"), str):
        yield "tree", fields["tree"]
    elif event.type == CHANGES_EVENT:
        for key in ("before", "after"):
            if isinstance(fields.get(key), str):
                yield "tree", fields[key]


@attrs.define
class RunAttachments:
    """The ``--snapshot`` directories and ``--artifact`` paths of one run, turned into its events.

    ``before()`` snapshots each directory; ``after()`` snapshots them again,
    diffs, and attaches each path. Both return event dicts for the ledger.
    ``notes`` collects what people should be told (a missing artifact, the
    paths a snapshot left out, what changed). A PATH the command did not
    make is an ``artifact_missing`` event; failing to store one is an error.
    """

    artifacts: ProjectArtifacts
    run_id: str
    directories: Sequence[str] = ()
    paths: Sequence[str] = ()
    exclude: Sequence[str] = ()
    respect_gitignore: bool = False
    progress: Callable[[str], None] | None = None
    notes: list[str] = attrs.field(factory=list)
    #: The events ``after`` made so far (all of them once it returns).
    done: list[dict[str, Any]] = attrs.field(factory=list)
    _before: dict[str, SnapshotRecord] = attrs.field(factory=dict)

    @property
    def referrer(self) -> str:
        return f"run:{self.run_id}"

    def _snapshot(self, directory: str) -> SnapshotRecord:
        result, record = self.artifacts.snapshot(
            directory,
            exclude=self.exclude,
            respect_gitignore=self.respect_gitignore,
            progress=self.progress,
            referrer=self.referrer,
        )
        for problem in result.problems:
            self.notes.append(f"{directory}: left out {problem}")
        return record

    def before(self) -> list[dict[str, Any]]:
        """Snapshot every directory; their ``snapshot`` events (phase ``before``)."""
        events = []
        for directory in self.directories:
            record = self._snapshot(directory)
            self._before[directory] = record
            events.append(snapshot_event(record, "before"))
        return events

    def after(self) -> list[dict[str, Any]]:
        """Snapshot every directory again and attach every path; their events, in that order.

        If storing fails (a full disk, an unreachable bucket), the error
        propagates and ``done`` holds the events made before it.
        """
        from cairn.trees import diff_trees

        self.done.clear()
        for directory in self.directories:
            record = self._snapshot(directory)
            self.done.append(snapshot_event(record, "after"))
            before = self._before[directory]
            diff = diff_trees(self.artifacts.load_tree(before.tree), self.artifacts.load_tree(record.tree))
            self.done.append(changes_event(record.root, before.tree, record.tree, diff))
            counts = ", ".join(
                f"{len(getattr(diff, k))} {k.replace('_', ' ')}"
                for k in ("added", "removed", "changed", "mode_changed")
                if getattr(diff, k)
            )
            self.notes.append(f"{directory}: {counts or 'no changes'} (tree {before.tree[:12]} -> {record.tree[:12]})")
        for path in self.paths:
            self.done.append(self._attach(path))
        return list(self.done)

    def _attach(self, path: str) -> dict[str, Any]:
        target = Path(path)
        if not target.exists() and not target.is_symlink():
            reason = "it does not exist"
        elif not target.is_file():
            reason = "it is not a file (keep a directory with --snapshot)"
        else:
            record = self.artifacts.put(target, name=target.name, referrer=self.referrer)
            self.notes.append(f"attached {path} ({record.hash[:12]}, {record.size} bytes)")
            return artifact_event(record, path)
        self.notes.append(f"not attached: {path}: {reason}")
        return {"type": ARTIFACT_MISSING_EVENT, "path": path, "reason": reason}
