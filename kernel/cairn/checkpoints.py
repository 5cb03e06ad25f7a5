"""Checkpoints: immutable named points of a branch, to go back to without losing anything.

A checkpoint ``NAME`` is the ref ``refs/checkpoints/NAME`` pointing at one
record commit (``cairn.model.session.CheckpointRecord``: name, message,
branch, session, effective tokens, time) whose *parent* is the context
commit it names. So the commit stays reachable (gc keeps it), the record
travels with the ref (cairn-git pushes and pulls ``refs/checkpoints/*`` like
every cairn ref) and nothing but the objects and refs facets is needed.

A checkpoint is never moved: ``create`` refuses an existing name and
``delete`` removes it. ``restore`` moves a branch back to a checkpoint by
compare-and-swap, in the same transaction that records the branch's current
tip as an automatic checkpoint (``auto-...``), so nothing is lost; or it
makes a new branch there (``as_branch``).
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from cairn.errors import ConflictError, NotFoundError, ValidationError
from cairn.model import Commit, now
from cairn.model.session import CheckpointRecord, validate_checkpoint_name
from cairn.repo_branches import RepoBranches
from cairn.sessions import CHECKPOINT_PREFIX, Sessions, write_record
from cairn.storage import RefUpdate, branch_ref

__all__ = ["Checkpoint", "Checkpoints", "Restored"]


@attrs.frozen
class Checkpoint:
    """A checkpoint: its record, the record commit, and the context commit it names."""

    record: CheckpointRecord
    version: Commit
    target: Commit

    @property
    def name(self) -> str:
        return self.record.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "commit": self.target.hash,
            "branch": self.record.branch,
            "session": self.record.session,
            "message": self.record.message,
            "tokens": self.record.tokens,
            "created": self.record.created,
            "auto": self.record.auto,
        }


@attrs.frozen
class Restored:
    """What ``restore`` did: the checkpoint, the branch it moved or made, and the automatic checkpoint of the old tip."""

    checkpoint: Checkpoint
    branch: str
    saved: Checkpoint | None


class Checkpoints:
    """The checkpoints of a repository."""

    def __init__(self, repo: RepoBranches) -> None:
        self.repo = repo

    def _load(self, name: str, value: str) -> Checkpoint:
        version = self.repo.commit(value)
        record = self.repo.content_of(version)
        if not isinstance(record, CheckpointRecord) or record.name != name or version.parent is None:
            raise ValidationError(
                f"{CHECKPOINT_PREFIX}{name} does not hold a checkpoint record",
                hint="run `cairn fsck`; delete the ref if it was made by hand",
            )
        return Checkpoint(record, version, self.repo.commit(version.parent))

    def find(self, name: str) -> Checkpoint | None:
        """Checkpoint ``name``, or None (also when ``name`` could not name one)."""
        try:
            validate_checkpoint_name(name)
        except ValidationError:
            return None
        value = self.repo.refs.get_ref(CHECKPOINT_PREFIX + name)
        return self._load(name, value) if value is not None else None

    def get(self, name: str) -> Checkpoint:
        validate_checkpoint_name(name)
        found = self.find(name)
        if found is None:
            raise NotFoundError("checkpoint", name, hint="`cairn checkpoint list` lists checkpoints")
        return found

    def list(self) -> list[Checkpoint]:
        """Every checkpoint, newest first."""
        out = []
        for ref, value in self.repo.refs.list_refs(CHECKPOINT_PREFIX).items():
            name = ref[len(CHECKPOINT_PREFIX) :]
            try:
                validate_checkpoint_name(name)
                out.append(self._load(name, value))
            except ValidationError:
                continue  # not made by cairn; fsck reports what is wrong with it
        out.sort(key=lambda c: (c.record.created, c.name), reverse=True)
        return out

    def create(self, name: str, message: str | None = None, *, rev: str | None = None) -> Checkpoint:
        """Checkpoint ``rev`` (default HEAD) as ``name``; an existing name is refused.

        The checkpoint records the branch (HEAD's, or ``rev`` when it names one) that ``restore`` moves back.
        """
        validate_checkpoint_name(name)
        if message is not None and not isinstance(message, str):
            raise ValidationError("a checkpoint message must be a string", given=message)
        repo = self.repo
        commit = repo.resolve(rev)  # NotFoundError on an empty branch: there is nothing to checkpoint
        # The branch it belongs to (what restore moves): HEAD's, or the branch ``rev`` names.
        branch = repo.branch if rev is None else (rev if rev in repo.branches() else None)
        return self._write(name, commit, message=message or None, branch=branch)

    def _record(
        self, name: str, commit: Commit, *, message: str | None, branch: str | None, auto: bool = False
    ) -> CheckpointRecord:
        session = Sessions(self.repo).on_branch(branch)
        return CheckpointRecord(
            name=name,
            commit=commit.hash,
            created=now(),
            branch=branch,
            session=session.id if session is not None else None,
            message=message,
            tokens=commit.cumulative_tokens,
            auto=auto,
        )

    def _write(
        self,
        name: str,
        commit: Commit,
        *,
        message: str | None,
        branch: str | None,
        auto: bool = False,
        also: tuple[RefUpdate, ...] = (),
    ) -> Checkpoint:
        record = self._record(name, commit, message=message, branch=branch, auto=auto)
        ref = CHECKPOINT_PREFIX + name
        if not also and self.repo.refs.get_ref(ref) is not None:
            raise ValidationError(
                f"checkpoint {name} already exists",
                hint="checkpoints never move: pick another name, or delete that one first",
            )
        version = write_record(
            self.repo, ref, record, parent=commit, expected=None, message=f"checkpoint {name}", also=also
        )
        return Checkpoint(record, version, commit)

    def restore(self, name: str, *, as_branch: str | None = None) -> Restored:
        """Move the checkpoint's branch (else the current one) back to it, saving the old tip first; or make ``as_branch``."""
        checkpoint = self.get(name)
        repo = self.repo
        if as_branch is not None:
            repo.create_branch(as_branch, checkpoint.target.hash)
            return Restored(checkpoint, as_branch, None)
        branch = checkpoint.record.branch
        if branch is None or repo.refs.get_ref(branch_ref(branch)) is None:
            branch = repo.branch
        if branch is None:
            raise ValidationError(
                "HEAD is detached and the checkpoint names no branch that exists",
                hint=f"switch to a branch first, or make one: `cairn checkpoint restore {name} --as-branch NEW`",
            )
        ref = branch_ref(branch)
        tip = repo.refs.get_ref(ref)
        if tip == checkpoint.target.hash:
            return Restored(checkpoint, branch, None)
        if tip is None:  # an unborn branch: nothing to save
            repo.refs.set_ref(ref, checkpoint.target.hash, expected=None)
            return Restored(checkpoint, branch, None)
        tip_commit = repo.commit(tip)
        saved_name = self._auto_name(tip_commit)
        try:
            saved = self._write(
                saved_name,
                tip_commit,
                message=f"before restoring {name}",
                branch=branch,
                auto=True,
                also=(RefUpdate(ref, checkpoint.target.hash, tip),),
            )
        except ConflictError:
            raise ConflictError(
                ref, tip, None, hint="the branch moved while restoring; nothing changed, run the restore again"
            ) from None
        return Restored(checkpoint, branch, saved)

    def _auto_name(self, tip: Commit) -> str:
        stamp = re.sub(r"[^0-9]", "", now())[:14]
        base = f"auto-{stamp}-{tip.hash[:8]}"
        taken = {r[len(CHECKPOINT_PREFIX) :] for r in self.repo.refs.list_refs(CHECKPOINT_PREFIX + base)}
        if base not in taken:
            return base
        n = 2
        while f"{base}-{n}" in taken:
            n += 1
        return f"{base}-{n}"

    def delete(self, name: str) -> Checkpoint:
        checkpoint = self.get(name)
        self.repo.refs.delete_ref(CHECKPOINT_PREFIX + name, expected=checkpoint.version.hash)
        return checkpoint
