"""Reading history: log, an item's edit history, diff, materialize, and export / import of the whole history.

``log`` walks back from a revision in growing batches and stops as soon as
its filters allow (times only decrease going back along a branch);
``materialize`` is ``cairn.materialize``; ``diff`` compares two materialized
states item by item; export and import are ``cairn.transfer``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any

import attrs

from cairn.errors import NotFoundError, ValidationError
from cairn.model import Commit, Content, Operation, format_time, parse_time
from cairn.repo_reader import RepoReader

if TYPE_CHECKING:  # pragma: no cover
    from cairn.materialize import Materialized
    from cairn.transfer import ImportReport

__all__ = ["DiffEntry", "LogEntry", "RepoHistory"]


@attrs.frozen
class LogEntry:
    """One commit of ``Repo.log``, with its decoded content (None for a delete)."""

    commit: Commit
    content: Content | None


@attrs.frozen
class DiffEntry:
    """One item that differs between two materialized states."""

    status: str  # added | removed | changed
    item: str  # the item's original (append) commit
    before: Content | None
    after: Content | None


class RepoHistory(RepoReader):
    """The history operations of ``Repo``: log, materialize, diff, export, import."""

    def log(
        self,
        rev: str | None = None,
        *,
        limit: int | None = None,
        content_type: str | None = None,
        since: str | None = None,
        until: str | None = None,
        grep: str | None = None,
    ) -> list[LogEntry]:
        """Commits reachable from ``rev`` (default HEAD), newest first, filtered."""
        try:
            head = self.resolve(rev)
        except NotFoundError:
            if rev is None:
                return []
            raise
        since_t = format_time(parse_time(since)) if since else None
        until_t = format_time(parse_time(until)) if until else None
        pattern = grep.lower() if grep else None
        out: list[LogEntry] = []
        for commit in self.walk(head):
            if until_t and commit.created_at > until_t:
                continue
            if since_t and commit.created_at < since_t:
                break  # times only decrease going back along a branch
            if content_type and commit.content_type != content_type:
                continue
            content = self.content_of(commit) if commit.content_hash else None
            if pattern:
                haystack = commit.message.lower()
                if content is not None:
                    haystack += "\n" + content.text_for_search().lower()
                if pattern not in haystack:
                    continue
            out.append(LogEntry(commit, content))
            if limit is not None and len(out) >= limit:
                break
        return out

    def edit_history(self, rev: str) -> list[LogEntry]:
        """The item ``rev`` names (its original or any edit or delete of it) and every change of it, oldest first.

        Changes on every branch are listed (the target index finds them, so
        the cost grows with the item's changes, not with history).
        """
        commit = self.resolve(rev)
        if commit.operation is Operation.MERGE:
            raise ValidationError(f"commit {commit.short} is a merge: it changes no item", hint="give an item's hash")
        item = commit if commit.target is None else self.commit(commit.target)
        changes = self.objects.commits_targeting([item.hash])
        for change in changes:
            self._remember(change)
        entries = [item, *changes]
        contents = self.contents(c.content_hash for c in entries if c.content_hash is not None)
        return [LogEntry(c, contents.get(c.content_hash) if c.content_hash else None) for c in entries]

    def directives(self, rev: str | None = None) -> dict[str, str]:
        """Named instructions in force at ``rev`` (default HEAD): name -> item hash; see ``cairn.materialize``."""
        from cairn.materialize import _on_line, _resolve_items
        from cairn.materialize_rules import superseded_directives

        try:
            head = self.resolve(rev)
        except NotFoundError:
            if rev is None:
                return {}
            raise
        wanted = {c.hash if c.target is None else c.target for c in self.objects.commits_by_type("instruction")}
        items = _on_line(self, head, self.get_commits(wanted).values())
        resolved = _resolve_items(self, head, None, items) if items else {}
        gone = superseded_directives(resolved.values())
        return {
            # a resolved candidate that is not deleted has content; `name` is Instruction's
            c.content.name: c.commit.hash  # type: ignore[union-attr]
            for c in resolved.values()
            # as above: the content of a resolved, undeleted candidate is set
            if getattr(c.content, "name", None) and c.content.content_type == "instruction"  # type: ignore[union-attr]
            if not c.deleted and c.priority.value != "skip" and c.commit.hash not in gone
        }

    def materialize(self, rev: str | None = None, **options: Any) -> Materialized:
        """Turn the history at ``rev`` into provider-ready messages; see ``cairn.materialize``."""
        from cairn.materialize import materialize

        return materialize(self, rev, **options)

    def diff(self, a: str, b: str) -> list[DiffEntry]:
        """What differs between the materialized (unbudgeted) contexts at two revisions."""
        before = {i.item: i for i in self.materialize(a, include_reasoning=True, keep_pending_calls=True).items}
        after = {i.item: i for i in self.materialize(b, include_reasoning=True, keep_pending_calls=True).items}
        out: list[DiffEntry] = []
        for key, old in before.items():
            new = after.get(key)
            if new is None:
                out.append(DiffEntry("removed", key, old.content, None))
            elif new.content_hash != old.content_hash:
                out.append(DiffEntry("changed", key, old.content, new.content))
        for key, new in after.items():
            if key not in before:
                out.append(DiffEntry("added", key, None, new.content))
        return out

    # -- export / import -------------------------------------------------------

    def export(self, out: IO[str], *, branch: str | None = None, progress: Callable[[int], None] | None = None) -> int:
        """Write JSONL: a header, then blobs, commits (parents first), refs and annotations. Returns lines written.

        See ``cairn.transfer`` for the format.
        """
        from cairn.transfer import export_history

        return export_history(self, out, branch=branch, progress=progress)

    def import_(
        self,
        lines: Iterable[str | bytes],
        *,
        batch_size: int = 5000,
        progress: Callable[[int], None] | None = None,
        source: str = "<import>",
    ) -> ImportReport:
        """Read an export, check every record, then store what is new; nothing is stored if a record is wrong.

        Derived fields are recomputed, never taken from the file. New commits
        are written in transactions of ``batch_size``; each ``progress(n)``
        acknowledges ``n`` of them durable. Refs move in the last transaction;
        a ref that exists here with another value is refused before anything
        is written. See ``cairn.transfer``.
        """
        from cairn.transfer import import_history

        return import_history(self, lines, batch_size=batch_size, progress=progress, source=source)
