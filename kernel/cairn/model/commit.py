"""Commits, annotations and names: the versioned-context half of the data model.

A commit's hash is SHA-256 over the canonical JSON of the fields that say what
happened (parent, operation, content hash, target, reply_to, message,
metadata, time, and a merge's second parent). The other fields (content type,
token counts, depth, skip pointer, last merge) are derived facts every
backend stores beside it to keep reads fast; they never change the hash, so
the same history hashes the same everywhere.

A merge commit (``Operation.MERGE``) has two parents: ``parent``, the branch
merged into, and ``merge_parent``, the commit merged in. ``merge_parent`` is
hashed only when it is set, so every commit written before merges existed
keeps its hash. ``depth`` and ``skip`` follow ``parent`` (the first-parent
chain); ``last_merge`` names the nearest merge commit on that chain (the
commit itself for a merge), so the merges under a commit are found one read
each.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any

import attrs

from cairn.errors import ValidationError
from cairn.model.canonical import canonical_json, is_hash, sha256_hex, value_hash
from cairn.model.content import Priority

__all__ = [
    "Annotation",
    "Commit",
    "Operation",
    "skip_depth",
    "MAX_COUNT",
    "validate_branch_name",
    "validate_name",
    "validate_ref_text",
]


class Operation(str, enum.Enum):
    APPEND = "append"
    EDIT = "edit"  # replaces the content of ``target`` in what is materialized
    DELETE = "delete"  # removes ``target`` from what is materialized; history keeps it
    MERGE = "merge"  # joins ``merge_parent``'s history into ``parent``'s; no content, no target
    COMPACT = "compact"  # puts summaries in place of older items in what is materialized (cairn.compaction)


def _optional_hash(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not is_hash(value):
        raise ValueError(f"{attribute.name} must be a 64-hex-digit hash, got {value!r:.80}")


def _json_object(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, dict):
        raise TypeError(f"{attribute.name} must be a JSON object, got {type(value).__name__}")


def _fields_named(*names: str) -> tuple[attrs.Attribute[Any], ...]:
    return tuple(a for a in attrs.fields(Commit) if a.name in names)


HASHED_FIELDS = ("parent", "operation", "content_hash", "target", "reply_to", "message", "metadata", "created_at")
#: Hashed too, but only when set (a merge's second parent): older commits keep their hashes.
OPTIONAL_HASHED_FIELDS = ("merge_parent",)


@attrs.frozen
class Commit:
    """One step of a context history.

    Build new commits with ``Commit.new``, which computes ``hash``. Records
    from outside (an import, a file) go through ``Commit.from_record``, which
    validates every field. A backend rebuilding commits it stored itself may
    call the constructor directly: those values were validated on the way in,
    and skipping the checks keeps history reads fast.
    """

    hash: str
    parent: str | None
    operation: Operation = attrs.field(converter=Operation)
    content_hash: str | None
    target: str | None
    reply_to: str | None
    message: str
    metadata: dict[str, Any]
    created_at: str
    merge_parent: str | None = None  # a merge's second parent (hashed when set)
    # derived, not hashed
    content_type: str | None = None
    token_count: int = 0
    cumulative_tokens: int = 0
    depth: int = 0  # number of ancestors
    skip: str | None = None  # an ancestor at depth skip_depth(depth), for O(log n) ancestry
    tokenizer: str | None = None  # the tokenizer that counted token_count and cumulative_tokens
    last_merge: str | None = None  # the nearest merge on the first-parent chain, this commit included

    @classmethod
    def new(
        cls,
        *,
        parent: str | None,
        operation: Operation | str,
        content_hash: str | None,
        target: str | None = None,
        reply_to: str | None = None,
        message: str = "",
        metadata: Mapping[str, Any] | None = None,
        created_at: str,
        merge_parent: str | None = None,
        **derived: Any,
    ) -> Commit:
        operation = Operation(operation)
        if (operation is Operation.MERGE) is not (merge_parent is not None):
            needs = "needs the commit it merges in" if operation is Operation.MERGE else "only a merge has one"
            raise ValidationError(needs, what="commit", field="merge_parent")
        if operation is Operation.MERGE:
            if target is not None or content_hash is not None or parent is None:
                raise ValidationError("a merge has a parent and no target or content", what="commit")
        elif operation in (Operation.APPEND, Operation.COMPACT) and target is not None:
            raise ValidationError(f"an {operation.value} has no target", what="commit", field="target")
        elif operation is Operation.COMPACT and parent is None:
            raise ValidationError("a compaction needs the history it compacts", what="commit", field="parent")
        elif operation in (Operation.EDIT, Operation.DELETE) and target is None:
            raise ValidationError(f"an {operation.value} needs the commit it targets", what="commit", field="target")
        elif operation is Operation.DELETE and content_hash is not None:
            raise ValidationError("a delete carries no content", what="commit", field="content_hash")
        elif operation is not Operation.DELETE and content_hash is None:
            raise ValidationError(f"an {operation.value} needs content", what="commit", field="content_hash")
        if not isinstance(message, str):
            raise ValidationError("must be a string", what="commit", field="message", given=message)
        meta = dict(metadata or {})
        if meta:
            canonical_json(meta)  # the one user-supplied structure: check it once, here
        fields: dict[str, Any] = {
            "parent": parent,
            "operation": operation.value,
            "content_hash": content_hash,
            "target": target,
            "reply_to": reply_to,
            "message": message,
            "metadata": meta,
            "created_at": created_at,
        }
        if merge_parent is not None:
            fields["merge_parent"] = merge_parent
        commit = cls(hash=value_hash(fields, check_keys=False), **{**fields, "operation": operation}, **derived)
        commit.validate()
        return commit

    def hashed_fields(self) -> dict[str, Any]:
        fields = {
            "parent": self.parent,
            "operation": self.operation.value,
            "content_hash": self.content_hash,
            "target": self.target,
            "reply_to": self.reply_to,
            "message": self.message,
            "metadata": self.metadata,
            "created_at": self.created_at,
        }
        if self.merge_parent is not None:
            fields["merge_parent"] = self.merge_parent
        return fields

    def computed_hash(self) -> str:
        return sha256_hex(canonical_json(self.hashed_fields(), check_keys=False))

    def derived_fields(self) -> dict[str, Any]:
        """The fields every backend stores beside the hashed ones (never part of the hash).

        ``last_merge`` is left out while it is None, so records of histories
        without merges are what they were before merges existed.
        """
        fields = {
            "content_type": self.content_type,
            "token_count": self.token_count,
            "cumulative_tokens": self.cumulative_tokens,
            "depth": self.depth,
            "skip": self.skip,
            "tokenizer": self.tokenizer,
        }
        if self.last_merge is not None:
            fields["last_merge"] = self.last_merge
        return fields

    def to_record(self) -> dict[str, Any]:
        """Every field as plain JSON types, for backends and export."""
        return {"hash": self.hash, **self.hashed_fields(), **self.derived_fields()}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Commit:
        """A commit from a plain record (``to_record``'s shape), every field validated."""
        commit = cls(**record)
        commit.validate()
        return commit

    def validate(self) -> None:
        """Raise ``ValueError``/``TypeError`` naming the first malformed field.

        Checks each field's shape and what the operation implies (an append
        has content and no target, an edit both, a delete a target only), so a
        record from outside can never hold a commit ``Commit.new`` refuses.
        """
        match = _HASH_RE.match
        for name in ("hash", "parent", "content_hash", "target", "reply_to", "skip", "merge_parent", "last_merge"):
            value = getattr(self, name)
            if value is not None and (value.__class__ is not str or not match(value)):
                raise ValueError(f"{name} must be a 64-hex-digit hash, got {value!r:.80}")
        _json_object(self, _METADATA, self.metadata)
        if not isinstance(self.message, str) or not isinstance(self.created_at, str):
            raise TypeError("message and created_at must be strings")
        for name in ("token_count", "cumulative_tokens", "depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
                given = "a larger number" if isinstance(value, int) and value > MAX_COUNT else f"{value!r:.80}"
                raise ValueError(f"{name} must be an integer from 0 to {MAX_COUNT}, got {given}")
        for name in ("content_type", "tokenizer"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value or len(value) > 200):
                raise ValueError(f"{name} must be null or a string of 1 to 200 characters, got {value!r:.80}")
        operation = self.operation
        named = ("a " if operation is Operation.DELETE else "an ") + operation.value
        if (self.merge_parent is None) is (operation is Operation.MERGE):
            needs = "a merge needs the commit it merges in" if self.merge_parent is None else "only a merge has one"
            raise ValueError(f"merge_parent: {needs}")
        if operation is Operation.MERGE:
            if self.target is not None or self.content_hash is not None or self.parent is None:
                raise ValueError("a merge has a parent and no target or content")
            return
        if operation is Operation.COMPACT and self.parent is None:
            raise ValueError("parent: a compaction needs the history it compacts")
        untargeted = operation in (Operation.APPEND, Operation.COMPACT)
        if (self.target is None) is not untargeted:
            needs = "has no target" if untargeted else "needs the commit it targets"
            raise ValueError(f"target: {named} {needs}")
        if (self.content_hash is None) is not (operation is Operation.DELETE):
            needs = "carries no content" if operation is Operation.DELETE else "needs content"
            raise ValueError(f"content_hash: {named} {needs}")

    @property
    def short(self) -> str:
        return self.hash[:12]


_HASH_RE = re.compile(r"[0-9a-f]{64}\Z")
#: The largest count a commit may record: what a signed 64-bit column holds.
MAX_COUNT = 2**63 - 1
(_METADATA,) = _fields_named("metadata")


def skip_depth(depth: int) -> int:
    """The depth a commit's skip pointer reaches: any ancestor is O(log n) hops away.

    The scheme (clear the lowest set bits, as in Bitcoin's block index) makes
    pointers of neighbouring commits land on shared ancestors, so a walk to
    any depth takes a logarithmic number of steps.
    """
    if depth < 2:
        return 0

    def invert_lowest_one(n: int) -> int:
        return n & (n - 1)

    if depth & 1:
        return invert_lowest_one(invert_lowest_one(depth - 1)) + 1
    return invert_lowest_one(depth)


@attrs.frozen
class Annotation:
    """An append-only priority record on a commit; the latest one as of a time applies."""

    target: str = attrs.field(validator=_optional_hash)
    priority: Priority = attrs.field(converter=Priority)
    reason: str
    created_at: str

    @property
    def id(self) -> str:
        return value_hash(self.to_record())

    def to_record(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "priority": self.priority.value,
            "reason": self.reason,
            "created_at": self.created_at,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Annotation:
        return cls(**record)


_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_BRANCH_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9._/-]*\Z")


def validate_name(value: object, *, what: str, max_length: int = 128) -> str:
    """A plain identifier: letters, digits, ``.``, ``_``, ``-``; no leading ``-`` or ``.``, no ``..``."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{what} must be a non-empty string", given=value)
    if len(value) > max_length or not _NAME_RE.match(value) or ".." in value:
        raise ValidationError(
            f"{value!r:.80} is not a valid {what}",
            given=value,
            hint=f"use letters, digits, '.', '_' and '-' (not first), at most {max_length} characters",
        )
    return value


def _not_text(value: str) -> str | None:
    """Why ``value`` cannot be stored as text, or None: lone surrogates are bytes a command line
    held that are not UTF-8 (Python decodes them so); control characters break refs and logs."""
    for char in value:
        if "\ud800" <= char <= "\udfff":
            return "holds bytes that are not valid UTF-8"
        if char < " " or char == "\x7f":
            return "holds a control character"
    return None


#: 4 to 64 hex digits: what a short or full commit hash looks like.
_HASH_LIKE = re.compile(r"\A[0-9a-fA-F]{4,64}\Z")


def validate_branch_name(value: object, *, existing: bool = False) -> str:
    """A branch name safe as a ref, a path and a command-line argument (git's rules, tightened).

    A new name may not look like a commit hash (4 to 64 hex digits), so a
    revision never names both a branch and a commit. ``existing=True`` checks
    a name to look a branch up by and lets such a name through, so a branch
    made before that rule can still be switched to, renamed and deleted.
    """
    if not isinstance(value, str) or not value:
        raise ValidationError("branch name must be a non-empty string", given=value)
    problem = _not_text(value)
    if problem is not None:
        raise ValidationError(
            f"branch name {value!r:.80} {problem}",
            given=value,
            hint="name branches with letters, digits, '.', '_', '-' and '/'",
        )
    bad = (
        len(value) > 200
        or not _BRANCH_RE.match(value)
        or ".." in value
        or "//" in value
        or value.endswith(("/", ".", ".lock"))
        or "/." in value
        or value == "HEAD"
    )
    if bad:
        raise ValidationError(
            f"{value!r:.80} is not a valid branch name",
            given=value,
            hint="use letters, digits, '.', '_', '-' and '/' between parts; not HEAD, no '..', no leading '-'",
        )
    if not existing and _HASH_LIKE.match(value):
        raise ValidationError(
            f"{value!r:.80} looks like a commit hash, so it cannot name a branch",
            given=value,
            hint="add a letter that is not a-f or another character, e.g. 'b-" + value[:12] + "'",
        )
    return value


def validate_ref_text(value: object, *, what: str = "ref name", max_length: int = 1000) -> str:
    """Text a ref name or value can be stored as: non-empty, valid Unicode, no control characters.

    Looser than ``validate_branch_name``: it lets ``cairn branch delete``
    remove a branch whatever it is called, as long as the name can be stored.
    """
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{what} must be a non-empty string", given=value)
    problem = _not_text(value) or (f"is longer than {max_length} characters" if len(value) > max_length else None)
    if problem is not None:
        raise ValidationError(
            f"{what} {value!r:.80} {problem}", given=value, hint="use valid UTF-8 text without control characters"
        )
    return value
