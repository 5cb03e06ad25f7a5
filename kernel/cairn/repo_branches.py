"""Branches of the context engine: list, create, switch, detach HEAD, rename, delete.

Every ref moves by compare-and-swap, so a concurrent change is refused
rather than lost; each change is published on the event bus
(``branch.changed``).
"""

from __future__ import annotations

import re

from cairn.errors import ConflictError, NotFoundError, ValidationError
from cairn.events import EventName
from cairn.model import Commit, validate_branch_name, validate_ref_text
from cairn.repo_reader import RepoReader
from cairn.storage import BRANCH_PREFIX, HEAD, SYMBOLIC_PREFIX, RefUpdate, branch_ref

__all__ = ["RepoBranches"]

_HASH_LIKE = re.compile(r"\A[0-9a-fA-F]{4,64}\Z")


class RepoBranches(RepoReader):
    """The branch operations of ``Repo``."""

    def branches(self) -> dict[str, str]:
        """Branch name -> commit hash."""
        return {name[len(BRANCH_PREFIX) :]: value for name, value in self.refs.list_refs(BRANCH_PREFIX).items()}

    def create_branch(self, name: str, start: str | None = None) -> Commit:
        validate_branch_name(name)
        commit = self.resolve(start)
        try:
            self.refs.set_ref(branch_ref(name), commit.hash, expected=None)
        except ConflictError:
            raise ValidationError(
                f"branch {name!r} already exists", hint="pick another name or delete it first"
            ) from None
        self._bus.publish(EventName.BRANCH_CHANGED, {"branch": name, "action": "create", "commit": commit.hash})
        return commit

    def switch(self, name: str, *, create: bool = False) -> None:
        """Point HEAD at branch ``name`` (creating it at HEAD when ``create``)."""
        validate_branch_name(name, existing=not create)
        if not create and self._ensure_head() == SYMBOLIC_PREFIX + branch_ref(name):
            return  # already there (possibly a branch with no commits yet)
        if create:
            self.create_branch(name)
        elif self.refs.get_ref(branch_ref(name)) is None:
            hint = f"create it with `cairn branch create {name}` or `cairn switch -c {name}`"
            if _HASH_LIKE.match(name):
                hint = f"to move HEAD to a commit, use `cairn switch --detach {name}`"
            raise NotFoundError("branch", name, hint=hint)
        self._set_head(SYMBOLIC_PREFIX + branch_ref(name))

    def detach(self, rev: str) -> Commit:
        """Point HEAD directly at a commit: it can be materialized, logged and diffed; committing there is refused."""
        commit = self.resolve(rev)
        self._set_head(commit.hash)
        return commit

    def _set_head(self, value: str) -> None:
        current = self._ensure_head()
        self.refs.set_ref(HEAD, value, expected=current)
        self._bus.publish(EventName.BRANCH_CHANGED, {"head": value, "action": "switch"})

    def rename_branch(self, old: str, new: str) -> None:
        validate_ref_text(old, what="branch name")
        validate_branch_name(new)
        value = self.refs.get_ref(branch_ref(old))
        if value is None:
            raise NotFoundError("branch", old, hint="`cairn branch` lists branches")
        if self.refs.get_ref(branch_ref(new)) is not None:
            raise ValidationError(f"branch {new!r} already exists")
        updates = [RefUpdate(branch_ref(new), value, None), RefUpdate(branch_ref(old), None, value)]
        head = self._ensure_head()
        if head == SYMBOLIC_PREFIX + branch_ref(old):
            updates.append(RefUpdate(HEAD, SYMBOLIC_PREFIX + branch_ref(new), head))
        self.refs.update_refs(updates)
        self._bus.publish(EventName.BRANCH_CHANGED, {"branch": new, "action": "rename", "from": old})

    def delete_branch(self, name: str, *, force: bool = False) -> None:
        """Delete branch ``name``; any name a ref can hold is looked up, so a badly named branch can go too.

        A branch with commits no other branch (nor a detached HEAD) reaches is
        refused unless ``force``, as git's ``branch -d`` / ``-D``.
        """
        validate_ref_text(name, what="branch name")
        value = self.refs.get_ref(branch_ref(name))
        if value is None:
            raise NotFoundError("branch", name, hint="`cairn branch` lists branches")
        head = self._ensure_head()
        if head == SYMBOLIC_PREFIX + branch_ref(name):
            raise ValidationError(f"branch {name!r} is the current branch", hint="switch to another branch first")
        if not force:
            tip = self.commit(value)
            others = [v for n, v in self.branches().items() if n != name]
            if not head.startswith(SYMBOLIC_PREFIX):
                others.append(head)
            if not any(self.is_ancestor(tip, self.commit(other)) for other in others):
                raise ValidationError(
                    f"branch {name!r} has commits no other branch reaches",
                    hint=f"merge it first (`cairn merge {name}`), or delete it anyway: `cairn branch delete --force {name}`",
                )
        self.refs.delete_ref(branch_ref(name), expected=value)
        self._bus.publish(EventName.BRANCH_CHANGED, {"branch": name, "action": "delete"})
