"""The refs facet: named pointers (``HEAD``, branches), moved only by compare-and-swap."""

from __future__ import annotations

import abc

import attrs

from cairn.errors import ValidationError
from cairn.model import is_hash, validate_branch_name
from cairn.storage._facet import Facet

__all__ = ["BRANCH_PREFIX", "HEAD", "SYMBOLIC_PREFIX", "RefStore", "RefUpdate", "branch_ref", "ref_problem"]

HEAD = "HEAD"
BRANCH_PREFIX = "refs/heads/"
#: A symbolic ref's value: ``"ref: refs/heads/main"``.
SYMBOLIC_PREFIX = "ref: "


def branch_ref(branch: str) -> str:
    return BRANCH_PREFIX + branch


@attrs.frozen
class RefUpdate:
    """Set ``name`` to ``new`` (None deletes it) if it currently holds ``expected`` (None: it must not exist)."""

    name: str
    new: str | None
    expected: str | None


class RefStore(Facet, abc.ABC):
    """``HEAD`` and ``refs/heads/<branch>`` (and other ``refs/...``); every change is a compare-and-swap.

    A backend that provides refs also accepts ref updates in
    ``ObjectStore.write``, so objects and the ref that publishes them land in
    one transaction.
    """

    facet = "refs"
    holds = "refs (HEAD and branches)"

    @abc.abstractmethod
    def get_ref(self, name: str) -> str | None:
        """The value of ``name``, or None."""

    @abc.abstractmethod
    def list_refs(self, prefix: str = "") -> dict[str, str]:
        """Every ref whose name starts with ``prefix`` (literally), sorted by name."""

    @abc.abstractmethod
    def update_refs(self, updates: list[RefUpdate]) -> None:
        """Apply compare-and-swap updates all or nothing; ``ConflictError`` (nothing changed) if one does not hold ``expected``."""

    def set_ref(self, name: str, new: str, *, expected: str | None) -> None:
        """Compare-and-swap one ref; ``ConflictError`` if it does not hold ``expected``."""
        self.update_refs([RefUpdate(name, new, expected)])

    def delete_ref(self, name: str, *, expected: str) -> None:
        """Delete ``name`` if it holds ``expected``; ``ConflictError`` otherwise."""
        self.update_refs([RefUpdate(name, None, expected)])


def ref_problem(name: object, value: object) -> str | None:
    """What is wrong with a ref, or None.

    ``HEAD`` holds a commit hash or ``ref: refs/heads/<branch>``; every other
    ref is ``refs/<kind>/<name>`` (``refs/heads/<branch>`` for branches) and
    holds a commit hash. Names follow ``validate_branch_name``'s rules (names
    from before its hash-like rule still pass).
    """
    if not isinstance(name, str) or not isinstance(value, str):
        return "a ref's name and value must be strings"
    if name == HEAD:
        if is_hash(value):
            return None
        if value.startswith(SYMBOLIC_PREFIX + BRANCH_PREFIX):
            return _branch_problem(value[len(SYMBOLIC_PREFIX + BRANCH_PREFIX) :], "HEAD points at a bad name: ")
        return f"HEAD holds {value!r:.80}: neither a commit hash nor 'ref: refs/heads/<branch>'"
    if name.startswith(BRANCH_PREFIX):
        problem = _branch_problem(name[len(BRANCH_PREFIX) :])
    elif name.startswith("refs/") and name.count("/") >= 2:
        problem = _branch_problem(name[len("refs/") :])
    else:
        problem = f"{name!r:.80} is neither HEAD nor refs/<kind>/<name>"
    if problem is None and not is_hash(value):
        problem = f"it holds {value!r:.80}, not a commit hash"
    return problem


def _branch_problem(branch: str, prefix: str = "") -> str | None:
    try:
        validate_branch_name(branch, existing=True)
    except ValidationError as exc:
        return prefix + exc.message
    return None
