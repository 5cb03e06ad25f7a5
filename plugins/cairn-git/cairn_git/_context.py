"""``ContextBase``: the catalog of context objects and the context refs, and the one transaction that moves both.

The objects, refs, annotations and token-count facets (and maintenance and
sync) all read the catalog (``refs/<ns>/objects``, indexed in memory by
``cairn_git._catalog.Catalog``) and the context refs
(``refs/<ns>/context/<quoted name>.ref``, each pointing at a blob holding
the cairn ref's value). ``_write`` is the compare-and-swap transaction of
``ObjectStore.write`` and ``RefStore.update_refs``: a new catalog commit and
every ref update in one ``update-ref --stdin`` transaction, rebuilt and
retried while other writers win, ``ConflictError`` when a cairn ref does not
hold what the caller expected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import unquote

from cairn.errors import ConflictError, IntegrityError, ValidationError
from cairn.model import Commit, sha256_hex
from cairn.storage import RefUpdate
from cairn_git._base import MAX_ATTEMPTS, MAX_UNEXPLAINED, GitBase, is_lock_contention
from cairn_git._catalog import Catalog, blob_path, commit_bytes, commit_path, quote_name, token_path
from cairn_git._git import BLOB_MODE, parse_commit

__all__ = ["ContextBase", "checked_blobs", "checked_commits", "checked_refs", "count_rows"]

HASH = re.compile(r"\A[0-9a-f]{64}\Z")


class ContextBase(GitBase):
    """The catalog and the context refs (see the module docstring); a base of the context facets."""

    _catalog: Catalog
    _values: dict[str, str]  # blob id -> cairn ref value it holds

    def _init_facet(self) -> None:
        super()._init_facet()
        self._catalog = Catalog()
        self._values = {}

    # -- cairn refs as git refs ---------------------------------------------------------------

    def _git_ref(self, name: str) -> str:
        """``refs/<ns>/context/<quoted name>.ref``: each component quoted, so any cairn name is a safe git ref.

        The ``.ref`` suffix (every '.' inside a component is quoted) means no
        ref is ever a directory of another: ``a`` and ``a/b`` can both exist.
        """
        if not isinstance(name, str) or not name:
            raise ValidationError("a ref name must be a non-empty string", what="ref", given=name)
        parts = name.split("/")
        if any(not p for p in parts):
            raise ValidationError(
                f"ref name {name!r:.80} has an empty component",
                what="ref",
                hint="ref names are components separated by single '/'",
            )
        quoted = [quote_name(p) for p in parts]
        if any(len(p) > 200 for p in quoted) or len(name) > 1000:
            raise ValidationError(f"ref name {name[:60]!r}... is too long", what="ref")
        return self.context_prefix + "/".join(quoted) + ".ref"

    def _cairn_ref(self, git_ref: str) -> str | None:
        if not git_ref.startswith(self.context_prefix) or not git_ref.endswith(".ref"):
            return None
        body = git_ref[len(self.context_prefix) : -4]
        return "/".join(unquote(p) for p in body.split("/"))

    def _value_oid(self, value: str) -> str:
        oid = self._writer.oid("blob", value.encode("utf-8"))
        self._values[oid] = value
        return oid

    def _values_of(self, oids: Iterable[str]) -> dict[str, str]:
        """The cairn value each value-blob holds (read once, then cached: blobs never change)."""
        oids = list(oids)
        wanted = [o for o in dict.fromkeys(oids) if o not in self._values]
        for oid, found in zip(wanted, self._cat.read(wanted), strict=True):
            if found is not None and found[1] == "blob":
                self._values[oid] = found[2].decode("utf-8", errors="replace")
        return {o: self._values[o] for o in oids if o in self._values}

    def _context_refs(self) -> dict[str, tuple[str, str]]:
        """Every cairn ref: name -> (git ref, value-blob id). One ``for-each-ref``."""
        text = self._git.output("for-each-ref", "--format=%(objectname) %(refname)", self.context_prefix)
        out = {}
        for line in text.splitlines():
            oid, _, git_ref = line.partition(" ")
            name = self._cairn_ref(git_ref)
            if name is not None:
                out[name] = (git_ref, oid)
        return out

    def _read_values(self, git_refs: Sequence[str]) -> list[str | None]:
        found = self._cat.read(list(git_refs))
        out: list[str | None] = []
        for item in found:
            if item is None or item[1] != "blob":
                out.append(None)
            else:
                value = item[2].decode("utf-8", errors="replace")
                self._values[item[0]] = value
                out.append(value)
        return out

    # -- the catalog ------------------------------------------------------------------------------

    def _refresh(self) -> Catalog:
        """The catalog index, brought up to date if the catalog ref moved (one round trip when it did not)."""
        found = self._cat.info([self.objects_ref])[0]
        oid = found[0] if found is not None else None
        if oid != self._catalog.commit_oid:
            self._load_catalog(oid)
        return self._catalog

    def _commit_tree(self, oid: str) -> str:
        found = self._cat.read_one(oid)
        if found is None or found[1] != "commit":
            raise IntegrityError(
                f"git commit {oid} is missing or is not a commit", hint="run `git fsck` in the repository"
            )
        return parse_commit(found[2])[0]

    def _load_catalog(self, oid: str | None) -> None:
        catalog = self._catalog
        root = self._commit_tree(oid) if oid is not None else None
        try:
            changes = self._trees.diff(catalog.root, root)
            needed = [
                new
                for path, _, new in changes
                if new is not None and Catalog.needs_content(path, new, catalog.count_of_oid)
            ]
            contents = {}
            for want, found in zip(needed, self._cat.read(needed), strict=True):
                if found is None:
                    raise IntegrityError(
                        f"git object {want} of the catalog is missing",
                        hint="run `git fsck`; fetch the missing objects from a clone",
                    )
                contents[want] = found[2]
            catalog.apply(changes, contents)
        except BaseException:
            self._catalog = Catalog()  # never keep a half-applied index: the next call reloads it all
            raise
        catalog.commit_oid, catalog.root = oid, root

    def _publish_catalog(
        self,
        catalog: Catalog,
        edits: Mapping[str, tuple[str, str] | None],
        message: str,
        extra: Sequence[str] = (),
    ) -> tuple[str | None, str | None, str | None]:
        """Write the catalog commit for ``edits`` and apply it with ``extra`` commands.

        Returns (new commit, new tree, git's refusal or None).
        """
        root = self._trees.edit(catalog.root, edits) or self._writer.empty_tree
        parents = [catalog.commit_oid] if catalog.commit_oid else []
        commit = self._writer.commit(root, parents, self._ident(), message)
        failure = self._apply([self._ref_command(self.objects_ref, commit, catalog.commit_oid), *extra])
        return commit, root, failure

    # -- the transaction ---------------------------------------------------------------------------

    def _write(
        self,
        blob_items: list[tuple[str, bytes]],
        commit_list: list[Commit],
        updates: list[tuple[RefUpdate, str]],
        counts: list[tuple[str, str, int]],
    ) -> None:
        """Store checked blobs, commits and token counts and apply ref updates (with their git refs), all or nothing.

        One catalog commit (when anything is new) and every ref command go in
        one ``update-ref`` transaction; one that lost a race is rebuilt on the
        new catalog. ``ConflictError`` when a cairn ref does not hold its
        expected value, ``IntegrityError`` when a commit's links are missing.
        """
        unexplained = 0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._backoff(attempt)
            catalog = self._refresh()
            self._check_links(catalog, commit_list, {d for d, _ in blob_items})
            edits: dict[str, tuple[str, str] | None] = {}
            new_blobs = {}
            for digest, data in blob_items:
                if digest not in catalog.blobs and digest not in new_blobs:
                    new_blobs[digest] = self._writer.blob(data)
                    edits[blob_path(digest)] = (BLOB_MODE, new_blobs[digest])
            new_commits = {}
            for commit in commit_list:
                if commit.hash not in catalog.commits and commit.hash not in new_commits:
                    new_commits[commit.hash] = (commit, self._writer.blob(commit_bytes(commit)))
                    edits[commit_path(commit.hash)] = (BLOB_MODE, new_commits[commit.hash][1])
            new_counts = []
            for tokenizer, digest, count in counts:
                if catalog.tokens.get(tokenizer, {}).get(digest) != count:
                    oid = self._writer.blob(str(count).encode())
                    new_counts.append((tokenizer, digest, count, oid))
                    edits[token_path(tokenizer, digest)] = (BLOB_MODE, oid)
            ref_commands = []
            for update, git_ref in updates:
                new = None
                if update.new is not None:
                    new = self._writer.blob(update.new.encode("utf-8"))
                    self._values[new] = update.new
                old = self._value_oid(update.expected) if update.expected is not None else None
                ref_commands.append(self._ref_command(git_ref, new, old))
            if edits:
                message = f"cairn: {len(new_commits)} commits, {len(new_blobs)} blobs, {len(new_counts)} token counts"
                tip, root, failure = self._publish_catalog(catalog, edits, message, ref_commands)
            else:
                tip, root, failure = catalog.commit_oid, catalog.root, self._apply(ref_commands)
            if failure is None:
                for digest, oid in new_blobs.items():
                    catalog.blobs[digest] = oid
                for c, oid in new_commits.values():
                    catalog.add_commit(c, oid)
                for tokenizer, digest, count, oid in new_counts:
                    catalog.set_count(tokenizer, digest, count, oid)
                catalog.commit_oid, catalog.root = tip, root
                self._after_write()
                return
            self._raise_ref_conflict([(u.name, g, u.expected) for u, g in updates])
            moved = (self._cat.info([self.objects_ref])[0] or (None,))[0] != catalog.commit_oid
            unexplained = 0 if moved else unexplained + 1
            if unexplained >= MAX_UNEXPLAINED and not is_lock_contention(failure):
                raise self._give_up("writing", failure)
        raise self._give_up("writing", None)

    def _raise_ref_conflict(self, refs: Sequence[tuple[str, str, str | None]]) -> None:
        """After a refused transaction: ``ConflictError`` for the first cairn ref that no longer holds its expected value."""
        if not refs:
            return
        actual = self._read_values([g for _, g, _ in refs])
        for (name, _, expected), value in zip(refs, actual, strict=True):
            if value != expected:
                raise ConflictError(name, expected, value)

    @staticmethod
    def _check_links(catalog: Catalog, commits: Sequence[Commit], batch_blobs: set[str]) -> None:
        batch = {c.hash for c in commits}
        for commit in commits:
            for what, digest, known, extra in (
                ("parent", commit.parent, catalog.commits, batch),
                ("target", commit.target, catalog.commits, batch),
                ("merged-in parent", commit.merge_parent, catalog.commits, batch),
                ("content blob", commit.content_hash, catalog.blobs, batch_blobs),
            ):
                if digest is not None and digest not in known and digest not in extra:
                    error = IntegrityError(
                        f"commit {commit.short}: its {what} {digest[:12]} is neither stored nor in this write",
                        hint=f"write the {what} first or in the same batch; nothing was written",
                    )
                    # The facts cairn-sqlite's error carries too; IntegrityError declares no fields for them.
                    error.commit = commit.hash  # type: ignore[attr-defined]
                    error.missing = digest  # type: ignore[attr-defined]  # as above
                    raise error


# -- checking what callers pass ----------------------------------------------------------------------------------


def checked_blobs(blobs: Mapping[str, bytes]) -> list[tuple[str, bytes]]:
    rows = []
    for digest, data in blobs.items():
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValidationError(f"blob {digest!r:.20} must be bytes, got {type(data).__name__}", what="write")
        data = bytes(data)
        if not isinstance(digest, str) or sha256_hex(data) != digest:
            raise IntegrityError(
                f"blob {str(digest)[:12]}: its bytes do not match its hash",
                hint="key each blob by the SHA-256 of its bytes; nothing was written",
            )
        rows.append((digest, data))
    return rows


def checked_commits(commits: Sequence[Commit]) -> list[Commit]:
    out = []
    for commit in commits:
        if not isinstance(commit, Commit):
            raise ValidationError(f"expected a cairn.model.Commit, got {type(commit).__name__}", what="write")
        if not HASH.match(commit.hash):
            raise ValidationError(f"commit hash {commit.hash!r:.80} is not a SHA-256 hex digest", what="write")
        out.append(commit)
    return out


def checked_refs(refs: Sequence[RefUpdate]) -> list[RefUpdate]:
    updates = list(refs)
    seen: set[str] = set()
    for update in updates:
        if not isinstance(update, RefUpdate):
            raise ValidationError(f"expected a cairn.storage.RefUpdate, got {type(update).__name__}", what="write")
        for label, value in (("new", update.new), ("expected", update.expected)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ValidationError(
                    f"ref {update.name}: the {label} value must be a non-empty string or None",
                    what="write",
                    given=value,
                )
        if update.name in seen:
            raise ValidationError(
                f"ref {update.name} is updated twice in one write",
                what="write",
                hint="give each ref one update per write",
            )
        seen.add(update.name)
    return updates


def count_rows(tokenizer: str, counts: Mapping[str, int]) -> list[tuple[str, int]]:
    if not isinstance(tokenizer, str) or not tokenizer or len(tokenizer) > 200:
        raise ValidationError(
            "a tokenizer name must be a non-empty string of at most 200 characters",
            what="token counts",
            given=tokenizer,
        )
    rows = []
    for digest, count in counts.items():
        if not isinstance(digest, str) or not HASH.match(digest):
            raise ValidationError(f"{tokenizer}: {str(digest)[:70]!r} is not a content hash", what="token counts")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValidationError(
                f"{tokenizer}: the count for {digest[:12]} must be a whole number >= 0, got {count!r}",
                what="token counts",
            )
        rows.append((digest, count))
    return rows
