"""Every error cairn raises on purpose.

Library code raises these; only ``cairn.cli`` turns them into one line on a
terminal. Each error carries the facts (which file, key, commit or plugin) as
attributes and says what to do next in ``hint``::

    CairnError
    ├── ConfigError             a config file, table, key or value is wrong
    ├── FileError               a file the user named cannot be read or written
    ├── PluginError             a plugin failed to load or registered badly
    │   └── DuplicateNameError  two plugins registered the same name
    ├── ValidationError         a value does not fit its type or field
    │   └── EmbedderMismatchError  a vector index was built by another embedder
    ├── NotFoundError           no commit, ref, run, backend ... by that name
    ├── ConflictError           a compare-and-swap lost; retry from the new value
    ├── MergeConflictError      both sides of a merge changed the same items
    ├── BudgetExceededError     a token budget would be exceeded
    ├── StorageError            the backend failed to read or write
    │   ├── IntegrityError      stored data does not match its hash or shape
    │   └── MissingFacetError   the backend does not keep that kind of data
    ├── ProviderError           an LLM or embedding call failed (see providers)
    ├── SnapshotError           a strict snapshot met a file it could not keep
    └── PolicyError             the policy gate stopped an action
        ├── PolicyDeniedError      the policy (or a person) denied it
        └── ApprovalRequiredError  it waits for a person's approval

This module is a leaf: it imports nothing of cairn, so every layer, the data
model included, may raise these.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BudgetExceededError",
    "CairnError",
    "ConfigError",
    "ConflictError",
    "DuplicateNameError",
    "EmbedderMismatchError",
    "FileError",
    "ApprovalRequiredError",
    "IntegrityError",
    "MergeConflictError",
    "MissingFacetError",
    "NotFoundError",
    "PluginError",
    "PolicyDeniedError",
    "PolicyError",
    "ProviderError",
    "SnapshotError",
    "StorageError",
    "ValidationError",
]


class CairnError(Exception):
    """Root of every error cairn raises on purpose.

    ``message`` says what was wrong, ``hint`` what to do about it.
    ``command_line`` is true when the mistake is in the command line itself
    (a ``--set`` value, the ``--config`` file): the CLI then exits 2, as for
    any usage error, instead of 1.
    """

    command_line: bool = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class ConfigError(CairnError):
    """Configuration is wrong: names the file and, when known, table, key, line and column."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        table: str | None = None,
        key: str | None = None,
        line: int | None = None,
        column: int | None = None,
        hint: str | None = None,
        command_line: bool = False,
    ) -> None:
        self.file = file
        self.table = table
        self.key = key
        self.line = line
        self.column = column
        self.command_line = command_line
        super().__init__(_located(message, file, line, column, table, key), hint=hint)
        self.problem = message


def _located(
    message: str,
    file: str | None,
    line: int | None,
    column: int | None,
    table: str | None,
    key: str | None,
) -> str:
    where = ""
    if file:
        where = file
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
    place = ""
    if table and key:
        place = f"[{table}] {key}"
    elif table:
        place = f"[{table}]"
    elif key:
        place = key
    prefix = ": ".join(p for p in (where, place) if p)
    return f"{prefix}: {message}" if prefix else message


class FileError(CairnError):
    """A file the user named cannot be read or written: ``path`` says which, the message why."""

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None) -> None:
        self.path = path
        super().__init__(message, hint=hint)


class PluginError(CairnError):
    """A plugin could not be loaded or registered something invalid."""

    def __init__(self, message: str, *, plugin: str | None = None, hint: str | None = None) -> None:
        self.plugin = plugin
        self.problem = message  # without the "plugin 'x':" prefix
        super().__init__(f"plugin {plugin!r}: {message}" if plugin else message, hint=hint)


class DuplicateNameError(PluginError):
    """Two plugins registered the same name in one registry."""

    def __init__(self, kind: str, name: str, first: str, second: str) -> None:
        self.kind = kind
        self.name = name
        self.first = first
        self.second = second
        super().__init__(
            f"{kind} {name!r} is registered by both {first!r} and {second!r}",
            plugin=second,
            hint=f"uninstall or disable one of them (CAIRN_DISABLE_PLUGINS={second})",
        )


class ValidationError(CairnError):
    """A value does not fit: says which field of what, what was expected and what was given."""

    def __init__(
        self,
        message: str,
        *,
        what: str | None = None,
        field: str | None = None,
        given: Any = None,
        hint: str | None = None,
        command_line: bool = False,
    ) -> None:
        self.what = what
        self.field = field
        self.given = given
        self.command_line = command_line
        prefix = ".".join(p for p in (what, field) if p)
        super().__init__(f"{prefix}: {message}" if prefix else message, hint=hint)


class EmbedderMismatchError(ValidationError):
    """A vector index at ``path`` was built by embedder ``stored``; it was opened for ``wanted``.

    Vectors of two embedders are not comparable, so the index must be rebuilt.
    """

    def __init__(self, path: str, stored: str, wanted: str, reindex_command: str) -> None:
        self.path = path
        self.stored = stored
        self.wanted = wanted
        super().__init__(
            f"{path} was built with {stored}, but the configured embedder is {wanted}",
            what="vector index",
            given=wanted,
            hint=f"run `{reindex_command}` to rebuild it with {wanted}, or configure the embedder it was built with",
        )


class NotFoundError(CairnError):
    """Nothing of ``kind`` is called ``name``."""

    def __init__(self, kind: str, name: str, *, hint: str | None = None) -> None:
        self.kind = kind
        self.name = name
        super().__init__(f"no {kind} {name!r}", hint=hint)


class ConflictError(CairnError):
    """A compare-and-swap lost: ``ref`` was ``actual``, not the ``expected`` value."""

    def __init__(
        self,
        ref: str,
        expected: str | None,
        actual: str | None,
        *,
        hint: str | None = "another writer moved it first; read it again and retry",
    ) -> None:
        self.ref = ref
        self.expected = expected
        self.actual = actual
        super().__init__(f"{ref} is at {_short(actual)}, expected {_short(expected)}", hint=hint)


def _short(value: str | None) -> str:
    if value is None:
        return "nothing"
    return value[:12] if len(value) == 64 else value


class MergeConflictError(CairnError):
    """A merge of ``branch`` stopped: both sides changed the items in ``conflicts``; nothing was written.

    Each conflict has ``item``, ``kind`` (``edit/edit``, ``edit/delete``,
    ``delete/edit``) and the ``ours`` and ``theirs`` changes.
    """

    def __init__(self, branch: str, conflicts: list[Any]) -> None:
        self.branch = branch
        self.conflicts = conflicts
        super().__init__(
            f"merging {branch} stopped: {len(conflicts)} conflict{'s' if len(conflicts) != 1 else ''}; nothing was written",
            hint="resolve them all with --strategy ours or --strategy theirs",
        )


class BudgetExceededError(CairnError):
    """A token budget would be exceeded: ``current`` tokens against ``maximum``."""

    def __init__(self, current: int, maximum: int, *, what: str = "context", hint: str | None = None) -> None:
        self.current = current
        self.maximum = maximum
        super().__init__(
            f"{what} would hold {current} tokens, over the budget of {maximum}",
            hint=hint or "raise the budget, skip or delete older items, or use budget_action = 'warn'",
        )


class StorageError(CairnError):
    """The storage backend failed to read or write."""


class IntegrityError(StorageError):
    """Stored data does not match its hash or its expected shape."""


class MissingFacetError(StorageError):
    """The configured backend does not provide a storage facet (``facet``) that an operation needs."""

    def __init__(
        self, backend: str, facet: str, holds: str = "", *, doing: str | None = None, lacks: str | None = None
    ) -> None:
        self.backend = backend
        self.facet = facet
        # ``lacks`` says it in the facet's own words ("cannot sync between machines").
        what = lacks or (f"does not keep {holds}" if holds else "does not provide it")
        need = f"; {doing} needs it" if doing else ""
        super().__init__(
            f"the {backend!r} storage backend {what} (the {facet!r} facet){need}",
            hint="use a backend that provides it for this project ([cairn] storage in cairn.toml, "
            'e.g. "sqlite", which keeps every facet but sync, or "git", which keeps them all); '
            "docs/storage.md lists what each backend keeps",
        )


class ProviderError(CairnError):
    """An LLM or embedding call failed; see ``cairn.providers`` for the taxonomy."""


class SnapshotError(CairnError):
    """A strict snapshot met a file it could not keep: unreadable, vanished, changed while read, or special."""


class PolicyError(CairnError):
    """The policy gate stopped an action; ``decision`` (a ``cairn.policy.Decision``) says which rule and why."""

    def __init__(self, message: str, decision: Any, *, hint: str | None = None) -> None:
        self.decision = decision
        super().__init__(message, hint=hint)


class PolicyDeniedError(PolicyError):
    """The policy, or the person deciding an approval, denied the action; nothing was done."""


class ApprovalRequiredError(PolicyError):
    """The action waits for a person: ``approval_id`` names the pending approval; nothing was done yet."""

    def __init__(self, message: str, decision: Any, approval_id: str, *, hint: str | None = None) -> None:
        self.approval_id = approval_id
        super().__init__(message, decision, hint=hint)
