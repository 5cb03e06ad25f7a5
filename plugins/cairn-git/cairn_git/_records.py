"""``LedgerRecords``: reading one JSON record file of the ledger branch, and the checks the governance and
nonces facets share."""

from __future__ import annotations

import json
from typing import Any

from cairn.errors import ValidationError
from cairn.model import canonical_json
from cairn_git._git import TREE_MODE
from cairn_git._ledger_base import LedgerBase

__all__ = ["LedgerRecords", "checked", "known_id", "record_bytes"]


def record_bytes(record: dict[str, Any]) -> bytes:
    return canonical_json(record, check_keys=False) + b"\n"


def checked(value: Any, kind: type, method: str) -> Any:
    if not isinstance(value, kind):
        raise ValidationError(f"expected a {kind.__name__}, got {type(value).__name__}", what=method)
    return value


def known_id(value: str, check: Any) -> str | None:
    """``value`` when it is a well-formed id (so it can become a path), else None."""
    try:
        return str(check(value))
    except ValidationError:
        return None


class LedgerRecords(LedgerBase):
    """Reading one JSON record file of the ledger branch (the governance and nonces facets share it)."""

    def _blob_at(self, root: str | None, path: str) -> bytes | None:
        entry = self._trees.lookup(root, path)
        if entry is None or entry[0] == TREE_MODE:
            return None
        found = self._cat.read([entry[1]])[0]
        return None if found is None else found[2]

    def _record_at(self, root: str | None, path: str) -> dict[str, Any] | None:
        data = self._blob_at(root, path)
        return None if data is None else json.loads(data)
