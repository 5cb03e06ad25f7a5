"""Export and import: a repository's history as JSONL, verified hash for hash.

The format, ``cairn-export/1``, is one JSON object per line::

    {"type":"header","format":"cairn-export/1","tokenizer":"approx","commits":N}
    {"type":"blob","hash":H,"data":<the content item>}
    {"type":"commit","hash":H,"fields":{<hashed fields>},"derived":{<derived fields>}}
    {"type":"ref","name":"refs/heads/main","value":H}
    {"type":"annotation","target":H,"priority":"pinned","reason":"...","created_at":T}

Import never trusts a file. It reads the whole file and checks every record
before it writes anything: each record's shape (``file:line: what is
wrong``), every hash, that every parent, target and content is in the file
or already stored, that edits and deletes target earlier items on their own
lineage, that ref names follow the rules ``cairn branch`` applies, and that
no existing ref would move. Derived fields (depth, skip pointer, content
type, token counts, tokenizer) are recomputed with ``cairn.model.lineage``
and this repository's tokenizer; the file's values are only checked for
shape. A file with one bad record stores nothing.

Then it writes the new commits in batches, parents first, each batch one
durable transaction reported through ``progress``, so a killed import keeps
what it acknowledged and a second run completes it (objects deduplicate).
Refs move in the last transaction, annotations follow it. The whole file is
held in memory while it is checked: about the size of the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import IO, TYPE_CHECKING, Any

import attrs

from cairn.errors import CairnError, IntegrityError, ValidationError
from cairn.model import (
    Annotation,
    Commit,
    Operation,
    Priority,
    canonical_json,
    is_hash,
    sha256_hex,
    validate_branch_name,
)
from cairn.model.commit import HASHED_FIELDS, OPTIONAL_HASHED_FIELDS
from cairn.model.lineage import Lineage
from cairn.storage import BRANCH_PREFIX, HEAD, SYMBOLIC_PREFIX, RefUpdate, branch_ref, ref_problem

if TYPE_CHECKING:  # pragma: no cover
    from cairn.repo_reader import RepoReader

__all__ = ["EXPORT_FORMAT", "ImportReport", "export_history", "import_history"]

EXPORT_FORMAT = "cairn-export/1"

_HINT = "was it written by `cairn export`? Fix or remove the line, or export again"
_DERIVED_FIELDS = ("content_type", "token_count", "cumulative_tokens", "depth", "skip", "tokenizer", "last_merge")
_TIME = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\Z")
_PRIORITIES = {p.value for p in Priority}
#: How many hashes one batched read asks the store about.
_READ_CHUNK = 10_000


@attrs.frozen
class ImportReport:
    """What an import did: commits new to this store and already in it, refs set, annotations added."""

    commits: int
    present: int
    refs: int
    annotations: int


# -- export ---------------------------------------------------------------------------------------


def export_history(
    repo: RepoReader, out: IO[str], *, branch: str | None = None, progress: Callable[[int], None] | None = None
) -> int:
    """Write JSONL: a header, then blobs, commits (parents first), refs and annotations. Returns lines written."""
    from cairn.errors import NotFoundError

    refs = repo.refs.list_refs()
    if branch is not None:
        value = refs.get(branch_ref(branch))
        if value is None:
            raise NotFoundError("branch", branch, hint="`cairn branch` lists branches")
        heads = {branch_ref(branch): value}
    else:
        heads = {k: v for k, v in refs.items() if k.startswith(BRANCH_PREFIX) or (k == HEAD and is_hash(v))}
    commits: dict[str, Commit] = {}
    for value in heads.values():
        for commit in repo.walk(repo.commit(value)):
            if commit.hash in commits:
                break  # the rest is shared with a branch already walked
            commits[commit.hash] = commit
    ordered = sorted(commits.values(), key=lambda c: (c.depth, c.created_at, c.hash))
    lines = 0

    def emit(record: Mapping[str, Any]) -> None:
        nonlocal lines
        out.write(json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n")
        lines += 1
        if progress is not None:
            progress(lines)

    emit({"type": "header", "format": EXPORT_FORMAT, "tokenizer": repo.tokenizer.name, "commits": len(ordered)})
    blob_hashes = sorted({c.content_hash for c in ordered if c.content_hash})
    for start in range(0, len(blob_hashes), 1000):
        chunk = blob_hashes[start : start + 1000]
        blobs = repo.objects.get_blobs(chunk)
        for digest in chunk:
            emit({"type": "blob", "hash": digest, "data": json.loads(blobs[digest])})
    for commit in ordered:
        emit(
            {
                "type": "commit",
                "hash": commit.hash,
                "fields": commit.hashed_fields(),
                "derived": commit.derived_fields(),
            }
        )
    for name, value in sorted(heads.items()):
        emit({"type": "ref", "name": name, "value": value})
    if branch is None and HEAD in refs and not is_hash(refs[HEAD]):
        emit({"type": "ref", "name": HEAD, "value": refs[HEAD]})
    for commit in ordered:
        if commit.operation is Operation.APPEND:
            for annotation in repo.annotation_store.annotation_history(commit.hash):
                emit({"type": "annotation", **annotation.to_record()})
    return lines


# -- import: reading and checking each record -------------------------------------------------------


class _Records:
    """Every record of a file, each checked for shape as it is read, with the line it came from."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.header: int | None = None  # its line
        self.announced: int | None = None  # the header's commit count
        self.blobs: dict[str, tuple[bytes, Any]] = {}  # hash -> (canonical bytes, parsed data)
        self.commits: dict[str, Commit] = {}
        self.commit_lines: dict[str, int] = {}
        self.commit_records = 0
        self.refs: dict[str, str] = {}
        self.ref_lines: dict[str, int] = {}
        self.annotations: list[tuple[Annotation, int]] = []

    def error(self, number: int | None, message: str, hint: str | None = _HINT) -> ValidationError:
        where = f"{self.source}:{number}" if number is not None else self.source
        return ValidationError(f"{where}: {message}", hint=hint)

    def read(self, lines: Iterable[str | bytes]) -> None:
        for number, raw in enumerate(lines, start=1):
            if isinstance(raw, bytes):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise self.error(number, f"not valid UTF-8 (byte {exc.start + 1} of the line)") from None
            elif isinstance(raw, str):
                text = raw
            else:
                raise self.error(number, f"a line must be text, got {type(raw).__name__}", hint=None)
            if not text.strip():
                continue
            try:
                self._record(number, _parse(text))
            except CairnError as exc:
                # canonical_json refusing a value, say: name the line, keep integrity errors apart
                cls = IntegrityError if isinstance(exc, IntegrityError) else ValidationError
                raise cls(f"{self.source}:{number}: {exc.message}", hint=exc.hint or _HINT) from None
            except RecursionError:
                raise self.error(number, "nested too deeply to be an export record") from None
            except _BadRecord as exc:
                raise self.error(number, str(exc)) from None
        if self.header is None:
            raise self.error(
                None, "no export header: the file is empty or not an export", hint="give a file `cairn export` wrote"
            )
        if self.announced is not None and self.announced != self.commit_records:
            raise self.error(
                self.header,
                f"the header announces {self.announced} commits, the file holds {self.commit_records}",
                hint="the file may be truncated or edited; export it again",
            )

    def _record(self, number: int, record: Any) -> None:
        if not isinstance(record, dict):
            raise _BadRecord(f"expected a JSON object, got {_kind(record)}")
        kind = record.get("type")
        if self.header is None:
            if kind != "header":
                raise _BadRecord('missing export header: the first record must be {"type":"header", ...}')
            self._header(number, record)
            return
        if kind == "blob":
            self._blob(record)
        elif kind == "commit":
            self._commit(number, record)
        elif kind == "ref":
            self._ref(number, record)
        elif kind == "annotation":
            self._annotation(number, record)
        elif kind == "header":
            raise _BadRecord("a second header")
        else:
            raise _BadRecord(f"unknown record type {kind!r:.40}: expected blob, commit, ref or annotation")

    def _header(self, number: int, record: dict[str, Any]) -> None:
        _keys(record, "header", *_HEADER)
        if record["format"] != EXPORT_FORMAT:
            raise _BadRecord(f"unsupported export format {record['format']!r:.60}; this cairn reads {EXPORT_FORMAT}")
        if "tokenizer" in record and not isinstance(record["tokenizer"], str):
            raise _BadRecord("header: tokenizer must be a string")
        if "commits" in record:
            self.announced = _count(record["commits"], "header: commits")
        self.header = number

    def _blob(self, record: dict[str, Any]) -> None:
        _keys(record, "blob", *_BLOB)
        digest = _hash(record["hash"], "blob: hash")
        data = canonical_json(record["data"], check_keys=False)  # parsed JSON: string keys
        if sha256_hex(data) != digest:
            raise IntegrityError(
                f"blob {digest[:12]} does not match its hash", hint="the file was changed; export again"
            )
        self.blobs[digest] = (data, record["data"])

    def _commit(self, number: int, record: dict[str, Any]) -> None:
        _keys(record, "commit", *_COMMIT)
        digest = _hash(record["hash"], "commit: hash")
        fields, derived = record["fields"], record.get("derived", {})
        if not isinstance(fields, dict):
            raise _BadRecord(f"commit {digest[:12]}: fields must be an object, got {_kind(fields)}")
        _keys(fields, f"commit {digest[:12]}: fields", *_FIELDS)
        if not isinstance(derived, dict):
            raise _BadRecord(f"commit {digest[:12]}: derived must be an object, got {_kind(derived)}")
        _keys(derived, f"commit {digest[:12]}: derived", *_DERIVED)
        try:
            # The file's derived values are recomputed later; here they only have to be well formed.
            commit = Commit(hash=digest, **fields, **derived)
            commit.validate()
        except (TypeError, ValueError) as exc:
            raise _BadRecord(f"commit {digest[:12]}: {exc}") from None
        if not _TIME.match(commit.created_at):
            raise _BadRecord(f"commit {digest[:12]}: created_at {commit.created_at!r:.40} is not a cairn time")
        # ``fields`` holds exactly the hashed fields, as validated: hash them as they are.
        if sha256_hex(canonical_json(fields, check_keys=False)) != digest:
            raise IntegrityError(
                f"commit {digest[:12]} does not match its hash", hint="the file was changed; export again"
            )
        self.commit_records += 1
        if digest not in self.commits:
            self.commits[digest] = commit
            self.commit_lines[digest] = number

    def _ref(self, number: int, record: dict[str, Any]) -> None:
        _keys(record, "ref", *_REF)
        name, value = record["name"], record["value"]
        problem = ref_problem(name, value)
        if problem is None:
            # New names follow the rules `cairn branch create` applies, the hash-like rule included.
            branch = name[len(BRANCH_PREFIX) :] if name.startswith(BRANCH_PREFIX) else None
            if name == HEAD and not is_hash(value):
                branch = value[len(SYMBOLIC_PREFIX + BRANCH_PREFIX) :]
            elif name != HEAD and branch is None:
                problem = f"{name!r:.80}: an export holds HEAD and branches (refs/heads/...) only"
            if branch is not None:
                try:
                    validate_branch_name(branch)
                except ValidationError as exc:
                    problem = exc.message
        if problem is not None:
            raise _BadRecord(f"ref {name!r:.80}: {problem}" if isinstance(name, str) else f"ref: {problem}")
        if self.refs.get(name, value) != value:
            raise _BadRecord(f"ref {name} appears twice, with different values")
        self.refs[name] = value
        self.ref_lines[name] = number

    def _annotation(self, number: int, record: dict[str, Any]) -> None:
        _keys(record, "annotation", *_ANNOTATION)
        target = _hash(record["target"], "annotation: target")
        priority, reason, created_at = record["priority"], record["reason"], record["created_at"]
        if not isinstance(priority, str) or priority not in _PRIORITIES:
            raise _BadRecord(f"annotation: priority {priority!r:.40} is not one of {', '.join(sorted(_PRIORITIES))}")
        if not isinstance(reason, str):
            raise _BadRecord(f"annotation: reason must be a string, got {_kind(reason)}")
        if not isinstance(created_at, str) or not _TIME.match(created_at):
            raise _BadRecord(f"annotation: created_at {created_at!r:.40} is not a cairn time")
        annotation = Annotation(target, Priority(priority), reason, created_at)
        annotation.id  # noqa: B018  (canonical JSON refuses text that is not valid Unicode, here)
        self.annotations.append((annotation, number))


class _BadRecord(Exception):
    """A record's shape is wrong; the reader adds the file and line."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_DECODE = json.JSONDecoder(parse_constant=_refuse_constant).decode


def _parse(text: str) -> Any:
    try:
        return _DECODE(text)
    except ValueError as exc:
        raise _BadRecord(f"not JSON: {exc}") from None


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _keys(record: dict[str, Any], what: str, required: frozenset[str], allowed: frozenset[str]) -> None:
    """Refuse missing keys and keys outside ``allowed``."""
    keys = record.keys()
    if required <= keys <= allowed:
        return
    missing = sorted(required - keys)
    if missing:
        raise _BadRecord(f"{what}: missing {', '.join(repr(k) for k in missing)}")
    unknown = sorted(str(k) for k in keys - allowed)
    shown = ", ".join(repr(k[:40]) for k in unknown[:5])
    raise _BadRecord(f"{what}: unknown key {shown}; expected {', '.join(sorted(allowed))}")


def _shape(*required: str, optional: tuple[str, ...] = (), typed: bool = True) -> tuple[frozenset[str], frozenset[str]]:
    """(required keys, allowed keys) of a record; ``typed``: it carries ``type`` too."""
    return frozenset(required), frozenset({*required, *optional, *(("type",) if typed else ())})


_HEADER = _shape("format", optional=("tokenizer", "commits"))
_BLOB = _shape("hash", "data")
_COMMIT = _shape("hash", "fields", optional=("derived",))
_FIELDS = _shape(*HASHED_FIELDS, optional=OPTIONAL_HASHED_FIELDS, typed=False)
_DERIVED = _shape(optional=_DERIVED_FIELDS, typed=False)
_REF = _shape("name", "value")
_ANNOTATION = _shape("target", "priority", "reason", "created_at")


def _hash(value: Any, what: str) -> str:
    if not is_hash(value):
        raise _BadRecord(f"{what} must be a 64-hex-digit SHA-256, got {value!r:.80}")
    return value


def _count(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise _BadRecord(f"{what} must be a whole number from 0, got {_kind(value)}")
    return value


# -- import: checking against the store, then writing ---------------------------------------------------


def import_history(
    repo: RepoReader,
    lines: Iterable[str | bytes],
    *,
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
    source: str = "<import>",
) -> ImportReport:
    """Read an export, check all of it (see the module docstring), then store what is new.

    ``lines`` are the file's lines as text or bytes (bytes must be UTF-8).
    Raises ``ValidationError`` or ``IntegrityError`` saying ``source:line:
    what is wrong`` and stores nothing when any record is wrong. Each
    ``progress(n)`` acknowledges that ``n`` new commits are durable.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError("batch_size must be a whole number from 1", given=batch_size)
    records = _Records(source)
    records.read(lines)
    plan = _Plan(repo, records)
    plan.check()
    return plan.write(batch_size, progress)


class _Plan:
    """The checks that need the store, and the writes they lead to."""

    def __init__(self, repo: RepoReader, records: _Records) -> None:
        self.repo = repo
        self.records = records
        self.stored: dict[str, Commit] = {}  # commits of the file this store already holds
        self.new: list[Commit] = []  # the file's other commits, parents first, derived fields recomputed
        self.ref_updates: list[RefUpdate] = []
        self.new_annotations: list[Annotation] = []

    def _error(self, digest: str, message: str, hint: str | None = _HINT) -> ValidationError:
        return self.records.error(self.records.commit_lines.get(digest), message, hint)

    def check(self) -> None:
        records = self.records
        hashes = list(records.commits)
        for start in range(0, len(hashes), _READ_CHUNK):
            self.stored.update(self.repo.objects.get_commits(hashes[start : start + _READ_CHUNK]))
        fresh = {h: c for h, c in records.commits.items() if h not in self.stored}
        order = self._parents_first(fresh)
        types, tokens = self._contents(order)
        derived: dict[str, Commit] = {}
        changes: dict[str, list[Commit]] = {}
        for commit in fresh.values():
            if commit.target is not None:
                changes.setdefault(commit.target, []).append(commit)
        stored_targets = [t for t in changes if t not in fresh]
        for change in self.repo.objects.commits_targeting(stored_targets) if stored_targets else []:
            if change.hash not in fresh:
                changes[change.target].append(change)  # type: ignore[index]  # it targets one: commits_targeting

        def lookup(digest: str) -> Commit | None:
            return (
                derived.get(digest) or fresh.get(digest) or self.stored.get(digest) or self.repo.lineage.lookup(digest)
            )

        lineage = Lineage(lookup, lambda target: changes.get(target, ()))
        name = self.repo.tokenizer.name
        for commit in order:
            result = lineage.derive(
                commit,
                content_type=types.get(commit.content_hash) if commit.content_hash else None,
                token_count=tokens.get(commit.content_hash, 0) if commit.content_hash else 0,
                tokenizer=name,
                count=self._count_stored,
            )
            if result.problems:
                raise self._error(commit.hash, f"commit {commit.short}: {result.problems[0][1]}")
            derived[commit.hash] = Commit(**commit.hashed_fields(), hash=commit.hash, **result.fields())
        self.new = [derived[c.hash] for c in order]
        self._check_refs(derived)
        self._check_annotations(derived)

    def _count_stored(self, commit: Commit) -> int:
        """Tokens of a stored commit's content by this repository's tokenizer (it was counted by another).

        Counted here rather than through the token-count cache: checking writes nothing.
        """
        content = self.repo.content_of(commit)
        return self.repo.count_content(content) if content is not None else 0

    def _parents_first(self, fresh: Mapping[str, Commit]) -> list[Commit]:
        """The new commits after their parents (both of a merge), else in file order; an unknown parent is an error."""
        import heapq

        def links(commit: Commit) -> list[str]:
            return [p for p in (commit.parent, commit.merge_parent) if p is not None]

        outside = {p for c in fresh.values() for p in links(c) if p not in fresh}
        known = (
            set(self.stored) | set(self.repo.objects.get_commits(list(outside - set(self.stored))))
            if outside
            else set()
        )
        waiting: dict[str, int] = {}
        children: dict[str, list[Commit]] = {}
        for commit in fresh.values():
            for link in links(commit):
                if link in fresh:
                    children.setdefault(link, []).append(commit)
                    waiting[commit.hash] = waiting.get(commit.hash, 0) + 1
                elif link not in known:
                    which = "parent" if link == commit.parent else "merged-in parent"
                    raise self._error(
                        commit.hash,
                        f"commit {commit.short}: its {which} {link[:12]} is neither in the file nor stored here",
                        hint="export the whole branch (`cairn export --branch NAME`) or import its history first",
                    )
        lines = self.records.commit_lines
        ready = [(lines[c.hash], c.hash) for c in fresh.values() if not waiting.get(c.hash)]
        heapq.heapify(ready)
        ordered: list[Commit] = []
        while ready:
            _, digest = heapq.heappop(ready)
            commit = fresh[digest]
            ordered.append(commit)
            for child in children.get(digest, ()):
                waiting[child.hash] -= 1
                if not waiting[child.hash]:
                    heapq.heappush(ready, (lines[child.hash], child.hash))
        return ordered

    def _contents(self, order: list[Commit]) -> tuple[dict[str, str], dict[str, int]]:
        """Content type and token count (this repository's tokenizer) of every content the new commits use."""
        records = self.records
        needed = {c.content_hash: c for c in order if c.content_hash is not None}
        missing = [h for h in needed if h not in records.blobs]
        stored = self.repo.objects.get_blobs(missing) if missing else {}
        name = self.repo.tokenizer.name
        cache = self.repo.token_cache
        cached = cache.get_token_counts(name, list(needed)) if cache is not None else {}
        types: dict[str, str] = {}
        tokens: dict[str, int] = {}
        for digest, commit in needed.items():
            if digest in records.blobs:
                data = records.blobs[digest][1]
            elif digest in stored:
                data = json.loads(stored[digest])
            else:
                raise self._error(
                    commit.hash,
                    f"commit {commit.short}: its content {digest[:12]} is neither in the file nor stored here",
                )
            tag = data.get("content_type") if isinstance(data, dict) else None
            if not isinstance(tag, str) or not tag or len(tag) > 200:
                raise self._error(
                    commit.hash,
                    f"commit {commit.short}: its content {digest[:12]} is not a content item "
                    "(a JSON object with a content_type of 1 to 200 characters)",
                )
            types[digest] = tag
            if digest in cached:
                tokens[digest] = cached[digest]
            else:
                tokens[digest] = self.repo.count_content(self.repo.content_types.decode(data))
        return types, tokens

    def _check_refs(self, derived: Mapping[str, Commit]) -> None:
        records = self.records
        current = self.repo.refs.list_refs()
        for name, value in records.refs.items():
            line = records.ref_lines[name]
            target = value[len(SYMBOLIC_PREFIX) :] if value.startswith(SYMBOLIC_PREFIX) else None
            if target is None and value not in derived and value not in self.stored:
                raise records.error(
                    line,
                    f"ref {name} points to commit {value[:12]}, which is neither in the file nor stored here",
                    hint="export the branch with its history, or import that history first",
                )
            if current.get(name) == value or (name == HEAD and name in current):
                continue  # already there, or this repository's own HEAD, which an import never moves
            if name in current:
                raise records.error(
                    line,
                    f"ref {name} exists here at {current[name][:12]}; the file has {value[:12]}",
                    hint="import into an empty store, or delete or rename the branch first",
                )
            self.ref_updates.append(RefUpdate(name, value, None))

    def _check_annotations(self, derived: Mapping[str, Commit]) -> None:
        records = self.records
        known_ids: dict[str, set[str]] = {}
        seen: set[str] = set()
        for annotation, line in records.annotations:
            target = derived.get(annotation.target) or self.stored.get(annotation.target)
            if target is None:
                target = self.repo.objects.get_commits([annotation.target]).get(annotation.target)
            if target is None:
                raise records.error(
                    line, f"annotation of {annotation.target[:12]}: no such commit in the file or stored here"
                )
            if target.operation is not Operation.APPEND:
                raise records.error(
                    line,
                    f"annotation of {target.short}: it is {'a' if target.operation is Operation.DELETE else 'an'} "
                    f"{target.operation.value}; only appended items are annotated",
                )
            if target.hash not in derived and target.hash not in known_ids:
                known_ids[target.hash] = {a.id for a in self.repo.annotation_store.annotation_history(target.hash)}
            if annotation.id in seen or annotation.id in known_ids.get(target.hash, ()):
                continue
            seen.add(annotation.id)
            self.new_annotations.append(annotation)

    def write(self, batch_size: int, progress: Callable[[int], None] | None) -> ImportReport:
        blobs = self.records.blobs
        written = 0
        sent: set[str] = set()
        batches = [self.new[i : i + batch_size] for i in range(0, len(self.new), batch_size)] or [[]]
        for number, batch in enumerate(batches):
            batch_blobs = {}
            for commit in batch:
                digest = commit.content_hash
                if digest is not None and digest in blobs and digest not in sent:
                    batch_blobs[digest] = blobs[digest][0]
                    sent.add(digest)
            last = number == len(batches) - 1
            refs = self.ref_updates if last else []
            if batch or refs:
                self.repo.objects.write(blobs=batch_blobs, commits=batch, refs=refs)
            written += len(batch)
            if progress is not None and batch:
                progress(written)
        if self.new_annotations:
            self.repo.annotation_store.add_annotations(self.new_annotations)
        return ImportReport(
            commits=written, present=len(self.stored), refs=len(self.ref_updates), annotations=len(self.new_annotations)
        )
