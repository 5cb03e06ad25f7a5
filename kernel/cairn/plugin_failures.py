"""Failures of plugins' notification hooks: counted in each command, remembered between commands.

A notification hook (``cairn_commit_created``, ``cairn_run_recorded``) runs
after what it announces is durable, so its exception never undoes anything
and never makes the plugin broken: the plugin keeps everything it
registered. The failure is counted here instead; the CLI prints one warning
per plugin and hook at the end of the command, and ``cairn plugins`` shows
the plugin as ``failing`` with its last error, in later commands too,
through ``<data_dir>/plugin-failures.json``. A later successful call of the
same hook clears the record.

The file is diagnostics, not data: it is replaced atomically, and two
commands finishing at the same moment may each count only their own
failures.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from cairn.model import now

__all__ = ["FILE_NAME", "NOTIFICATION_HOOKS", "HookFailure", "HookFailures", "load_failures"]

#: Notification hook -> what it announces, which the failure never loses.
NOTIFICATION_HOOKS: dict[str, str] = {
    "cairn_commit_created": "commit",
    "cairn_run_recorded": "run",
}

FILE_NAME = "plugin-failures.json"


@attrs.define
class HookFailure:
    """One plugin's hook failing: how often, first and last time, and the last error."""

    plugin: str
    hook: str
    error: str
    count: int = 1
    first_at: str = attrs.field(factory=now)
    last_at: str = attrs.field(factory=now)

    @property
    def kept(self) -> str:
        """What the failure did not lose: "the commit was stored"."""
        return f"the {NOTIFICATION_HOOKS.get(self.hook, 'data')} was stored"

    def to_record(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> HookFailure | None:
        """A failure read back from the file, or None when the entry is not one (a hand-edited file)."""
        try:
            failure = cls(**{f.name: record[f.name] for f in attrs.fields(cls)})
        except (KeyError, TypeError):
            return None
        texts = (failure.plugin, failure.hook, failure.error, failure.first_at, failure.last_at)
        if not all(isinstance(t, str) for t in texts) or type(failure.count) is not int:
            return None
        return failure


class HookFailures:
    """What notification hooks did in this process, by (plugin, hook)."""

    def __init__(self) -> None:
        self.failed: dict[tuple[str, str], HookFailure] = {}
        self.succeeded: set[tuple[str, str]] = set()

    def failure(self, plugin: str, hook: str, exc: BaseException) -> HookFailure:
        error = f"{type(exc).__name__}: {exc}"[:500]
        key = (plugin, hook)
        self.succeeded.discard(key)
        found = self.failed.get(key)
        if found is None:
            found = self.failed[key] = HookFailure(plugin, hook, error)
        else:
            found.count += 1
            found.error, found.last_at = error, now()
        return found

    def success(self, plugin: str, hook: str) -> None:
        if (plugin, hook) not in self.failed:
            self.succeeded.add((plugin, hook))

    def __bool__(self) -> bool:
        return bool(self.failed or self.succeeded)

    def save(self, data_dir: Path) -> bool:
        """Fold this process's failures and successes into the file under ``data_dir`` (when it exists).

        Nothing is created for a project without a data directory, and
        nothing is written when nothing changed. Best effort: diagnostics
        never fail a command, so a file that cannot be written returns False.
        """
        try:
            if not self or not data_dir.is_dir():
                return True
        except OSError:
            return False
        known = load_failures(data_dir)
        changed = False
        for key in self.succeeded:
            changed |= known.pop(key, None) is not None
        for key, failure in self.failed.items():
            earlier = known.get(key)
            if earlier is not None:
                failure = attrs.evolve(failure, count=earlier.count + failure.count, first_at=earlier.first_at)
            known[key] = failure
            changed = True
        if changed:
            try:
                _write(data_dir / FILE_NAME, [f.to_record() for f in known.values()])
            except OSError:
                return False
        return True


def load_failures(data_dir: Path) -> dict[tuple[str, str], HookFailure]:
    """The failures remembered under ``data_dir``; an unreadable or foreign file counts as none."""
    try:
        raw = json.loads((data_dir / FILE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    entries: Iterable[Any] = raw if isinstance(raw, list) else []
    failures = (HookFailure.from_record(e) for e in entries if isinstance(e, dict))
    return {(f.plugin, f.hook): f for f in failures if f is not None}


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    import tempfile

    # A fresh name in the same directory, then an atomic rename: never a half-written file,
    # and never through a symlink someone left at a predictable name.
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(sorted(records, key=lambda r: (r["plugin"], r["hook"])), out, indent=2)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
