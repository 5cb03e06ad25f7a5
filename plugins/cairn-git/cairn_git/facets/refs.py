"""The refs facet: each cairn ref is a git ref, ``refs/<ns>/context/<quoted name>.ref``, pointing at a blob of its value.

Every change is a compare-and-swap in one ``update-ref --stdin`` transaction
(``ContextBase._write``, the one ``ObjectStore.write`` uses too).
"""

from __future__ import annotations

from cairn.storage import RefStore, RefUpdate
from cairn_git._base import locked, writing
from cairn_git._context import ContextBase, checked_refs

__all__ = ["GitRefs"]


class GitRefs(ContextBase, RefStore):
    """``RefStore`` over the context refs."""

    @locked
    def get_ref(self, name: str) -> str | None:
        """The value of cairn ref ``name``, or None. One ``cat-file`` round trip."""
        return self._read_values([self._git_ref(name)])[0]

    @locked
    def list_refs(self, prefix: str = "") -> dict[str, str]:
        """Every cairn ref whose name starts with ``prefix`` (literally), sorted by name."""
        refs = {n: v for n, v in self._context_refs().items() if n.startswith(prefix)}
        values = self._values_of(oid for _, oid in refs.values())
        return {n: values[refs[n][1]] for n in sorted(refs) if refs[n][1] in values}

    @writing
    def update_refs(self, updates: list[RefUpdate]) -> None:
        """Compare-and-swap every update in one git transaction, all or nothing (see ``RefStore.update_refs``).

        ``ConflictError`` (and every ref left where it was) when a ref does not hold its expected value.
        """
        checked = [(u, self._git_ref(u.name)) for u in checked_refs(updates)]
        if checked:
            self._write([], [], checked, [])
