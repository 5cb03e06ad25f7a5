"""The storage contract every backend implements.

The kernel never writes SQL or runs git: it talks to a ``Store``. Methods
come in groups:

- objects: content blobs (canonical JSON bytes keyed by SHA-256) and commits,
  written atomically together with ref updates by ``write``; batch reads;
  ancestry, children, and look-ups by content type, time and target;
- refs: ``HEAD`` and ``refs/heads/<branch>``; every change is a
  compare-and-swap against the value the writer last saw;
- annotations: append-only priority records; latest as of a time, history,
  and the latest for many targets in one call;
- token counts: a cache per (tokenizer, content hash);
- the run ledger: runs (created, appended to while open, closed by
  compare-and-swap on their status), their events, and spend records;
- chat: messages on runs and threads, and the threads;
- maintenance: stats, garbage collection of objects no ref reaches, and an
  integrity check.

A backend that can share its data between machines also implements
``Syncable`` and lists ``"sync"`` in ``capabilities``.

Every batch read is one round trip to the backend: the context engine's
speed depends on it. ``cairn.testing`` holds the conformance suite that every
backend, first-party or third-party, runs unchanged.

Times are the strings ``cairn.model.format_time`` makes (UTC, fixed width),
so comparing them as strings compares them as times.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from cairn.errors import ConflictError, IntegrityError, NotFoundError, StorageError, ValidationError
from cairn.model import MAX_COUNT, Annotation, Commit, Priority, is_hash, validate_branch_name
from cairn.model.chat import ChatMessage, Thread
from cairn.model.ledger import Run, RunEvent, SpendRecord

__all__ = [
    "SyncReport",
    "SyncStatus",
    "Syncable",
    "BRANCH_PREFIX",
    "check_objects",
    "ref_problem",
    "unreachable",
    "ConflictError",
    "GcReport",
    "HEAD",
    "IntegrityError",
    "NotFoundError",
    "Problem",
    "RefUpdate",
    "Store",
    "StorageError",
    "StoreStats",
    "branch_ref",
    "SYMBOLIC_PREFIX",
]

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


@attrs.frozen
class StoreStats:
    blobs: int
    commits: int
    refs: int
    annotations: int
    bytes: int  # stored size of blobs and commits as the backend reports it
    details: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class GcReport:
    commits_removed: int
    blobs_removed: int
    annotations_removed: int
    dry_run: bool


@attrs.frozen
class Problem:
    """One integrity problem: what kind, which object, and what is wrong."""

    #: blob_hash | commit_hash | missing_parent | missing_blob | missing_target | derived
    #: | dangling_ref | bad_ref | other
    kind: str
    object: str
    message: str

    def __str__(self) -> str:
        shown = self.object[:12] if is_hash(self.object) else self.object  # a ref's name is kept whole
        return f"{self.kind} {shown}: {self.message}"


class Store(abc.ABC):
    """What a storage backend implements. See the module docstring for the groups."""

    #: Optional capabilities a backend declares, e.g. ``"sync"`` (push/pull).
    capabilities: frozenset[str] = frozenset()

    # -- objects ---------------------------------------------------------------

    @abc.abstractmethod
    def write(
        self,
        *,
        blobs: Mapping[str, bytes] | None = None,
        commits: Sequence[Commit] = (),
        refs: Sequence[RefUpdate] = (),
        token_counts: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        """Store blobs and commits, apply ref updates and cache token counts, all or nothing.

        ``token_counts`` maps a tokenizer name to {content hash: tokens}; it
        rides in the same transaction so a commit costs one durable write.
        Objects already stored are skipped (content addressing deduplicates).
        A commit whose parent, target or content blob is neither stored nor in
        this batch raises ``IntegrityError``. A ref whose current value is not
        ``expected`` raises ``ConflictError``. In both cases nothing is written.
        Returns only once the write is durable. Blob bytes must match their
        hash; commit hashes may be trusted (``check`` verifies them).
        """

    @abc.abstractmethod
    def get_blobs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """The stored bytes of each known hash; unknown hashes are left out."""

    @abc.abstractmethod
    def get_commits(self, hashes: Iterable[str]) -> dict[str, Commit]:
        """Each known commit by hash; unknown hashes are left out."""

    @abc.abstractmethod
    def ancestors(self, start: str, *, limit: int | None = None) -> list[Commit]:
        """``start`` and its ancestors, newest first, following ``parent``; at most ``limit``."""

    @abc.abstractmethod
    def children(self, commit: str) -> list[Commit]:
        """Commits whose parent is ``commit``, oldest first."""

    @abc.abstractmethod
    def commits_by_type(
        self,
        content_type: str,
        *,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[Commit]:
        """Commits (on any branch) whose content type is ``content_type``, newest first, ``since <= created_at <= until``."""

    @abc.abstractmethod
    def commits_by_time(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[Commit]:
        """Commits (on any branch) with ``since <= created_at <= until``, newest first."""

    @abc.abstractmethod
    def commits_targeting(self, targets: Iterable[str]) -> list[Commit]:
        """Edits and deletes (on any branch) whose target is one of ``targets``, oldest first."""

    @abc.abstractmethod
    def find_commits(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Hashes of commits starting with ``prefix`` (a lowercase hex string), for short hashes."""

    # -- refs ------------------------------------------------------------------

    @abc.abstractmethod
    def get_ref(self, name: str) -> str | None:
        """The value of ``name``, or None."""

    @abc.abstractmethod
    def list_refs(self, prefix: str = "") -> dict[str, str]:
        """Every ref whose name starts with ``prefix``, sorted by name."""

    def set_ref(self, name: str, new: str, *, expected: str | None) -> None:
        """Compare-and-swap one ref; ``ConflictError`` if it does not hold ``expected``."""
        self.write(refs=[RefUpdate(name, new, expected)])

    def delete_ref(self, name: str, *, expected: str) -> None:
        """Delete ``name`` if it holds ``expected``; ``ConflictError`` otherwise."""
        self.write(refs=[RefUpdate(name, None, expected)])

    # -- annotations -----------------------------------------------------------

    @abc.abstractmethod
    def add_annotations(self, annotations: Sequence[Annotation]) -> None:
        """Append annotations (idempotent by ``Annotation.id``). Targets must be stored commits."""

    @abc.abstractmethod
    def latest_annotations(self, targets: Iterable[str], *, as_of: str | None = None) -> dict[str, Annotation]:
        """For each target, its latest annotation with ``created_at <= as_of`` (all, if None); one round trip."""

    @abc.abstractmethod
    def annotation_history(self, target: str) -> list[Annotation]:
        """Every annotation of ``target``, oldest first."""

    @abc.abstractmethod
    def annotated(self, priority: Priority, *, as_of: str | None = None) -> dict[str, Annotation]:
        """Every target whose latest annotation (as of ``as_of``) has ``priority``."""

    # -- token counts ----------------------------------------------------------

    @abc.abstractmethod
    def get_token_counts(self, tokenizer: str, hashes: Iterable[str]) -> dict[str, int]:
        """Cached counts for ``tokenizer`` of the given content hashes; misses left out."""

    @abc.abstractmethod
    def put_token_counts(self, tokenizer: str, counts: Mapping[str, int]) -> None:
        """Cache counts (content hash -> tokens) for ``tokenizer``."""

    # -- the run ledger --------------------------------------------------------

    @abc.abstractmethod
    def put_run(self, run: Run, events: Sequence[RunEvent] = (), *, expected_status: str | None = None) -> None:
        """Write a run and, in the same transaction, append ``events`` to it.

        ``expected_status=None`` creates the run: ``ConflictError`` if its id
        exists. Otherwise the stored run must have that status (``"open"``,
        to close it): ``ConflictError`` carrying the actual status if not.
        An event whose (run, seq) is already stored raises ``ConflictError``.
        """

    @abc.abstractmethod
    def put_runs(self, runs: Sequence[tuple[Run, Sequence[RunEvent]]]) -> None:
        """Create many runs with their events in one write, all or nothing.

        Each run is created as by ``put_run(run, events)``: an existing id
        raises ``ConflictError`` and then none of the batch is written.
        """

    @abc.abstractmethod
    def append_events(self, run_id: str, events: Sequence[RunEvent]) -> None:
        """Append events to an open run: ``NotFoundError`` if there is no such run,
        ``ConflictError`` if it is closed or a (run, seq) is already stored."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> Run | None:
        """The run, or None."""

    @abc.abstractmethod
    def list_runs(
        self,
        *,
        type: str | None = None,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        """Runs with ``since <= started_at <= until``, newest first (ties: run id descending)."""

    @abc.abstractmethod
    def run_events(self, run_id: str, *, after_seq: int | None = None) -> list[RunEvent]:
        """A run's events in ``seq`` order (those after ``after_seq`` when given); one round trip."""

    @abc.abstractmethod
    def delete_runs(self, run_ids: Iterable[str]) -> int:
        """Delete runs and their events; returns how many runs were deleted."""

    @abc.abstractmethod
    def add_spend(self, records: Sequence[SpendRecord]) -> None:
        """Append spend records (provider call metadata and cost)."""

    @abc.abstractmethod
    def spend(
        self, *, since: str | None = None, until: str | None = None, run_id: str | None = None
    ) -> list[SpendRecord]:
        """Spend records with ``since <= ts <= until`` (and of ``run_id``), oldest first."""

    # -- chat ------------------------------------------------------------------

    @abc.abstractmethod
    def add_chat_message(self, message: ChatMessage) -> None:
        """Store a message (its text already sealed when encrypted); an id stored before raises ``ConflictError``."""

    @abc.abstractmethod
    def chat_messages(
        self,
        *,
        run_id: str | None = None,
        thread_id: str | None = None,
        limit: int | None = None,
        published: bool | None = None,
    ) -> list[ChatMessage]:
        """Messages newest first (ties: id descending), on a run and/or in a thread, each exactly once."""

    @abc.abstractmethod
    def put_thread(self, thread: Thread) -> None:
        """Create a thread; an existing id raises ``ConflictError``."""

    @abc.abstractmethod
    def get_thread(self, thread_id: str) -> Thread | None:
        """The thread, or None."""

    @abc.abstractmethod
    def list_threads(self) -> list[Thread]:
        """Every thread, newest first."""

    # -- maintenance -----------------------------------------------------------

    @abc.abstractmethod
    def stats(self) -> StoreStats:
        """Object counts and stored size."""

    @abc.abstractmethod
    def gc(self, *, dry_run: bool = False) -> GcReport:
        """Remove commits no ref reaches (through parents), the blobs only they used and their annotations."""

    @abc.abstractmethod
    def check(self) -> list[Problem]:
        """Every integrity problem found: hashes that do not match, missing objects, dangling refs."""

    def close(self) -> None:  # optional: an in-process store keeps this no-op
        """Release connections and locks. The store is unusable afterwards."""
        return None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@attrs.frozen
class SyncReport:
    """What a push or pull did."""

    remote: str | None
    pushed: int = 0  # refs published
    fetched: int = 0  # refs brought in
    merged: int = 0  # diverged refs merged
    message: str = ""


@attrs.frozen
class SyncStatus:
    remote: str | None
    ahead: int
    behind: int
    details: dict[str, Any] = attrs.field(factory=dict)


class Syncable(abc.ABC):
    """The optional sync capability (``"sync"`` in ``Store.capabilities``): share a store between machines.

    With no remote configured, push and pull succeed as no-ops and say so
    in ``SyncReport.message``.
    """

    @abc.abstractmethod
    def push(self, remote: str | None = None, *, progress: Any = None) -> SyncReport:
        """Publish local history; merges first when the remote moved on."""

    @abc.abstractmethod
    def pull(self, remote: str | None = None, *, progress: Any = None) -> SyncReport:
        """Bring in the remote's history, merging diverged histories without losing anything."""

    @abc.abstractmethod
    def sync_status(self, remote: str | None = None) -> SyncStatus:
        """How far local and remote history have diverged."""


def check_objects(
    store: Store,
    commits: Iterable[Commit],
    blobs: Mapping[str, bytes],
    refs: Mapping[str, str] | None = None,
) -> list[Problem]:
    """The backend-independent part of ``Store.check``: hashes, links, derived fields and refs.

    Backends call it with everything they hold (``refs``: every ref's name
    and value) and add checks of their own. Each commit's derived fields are
    worked out again by ``cairn.model.lineage`` from its parent and target
    and compared with what is stored: depth, skip pointer, content type (the
    content blob's), and token counts as far as they can be told without a
    tokenizer (a delete costs 0; cumulative counts follow from the parent's
    whenever the tokens an edit or delete takes away were counted by the
    commit's tokenizer). Depth and skip pointer are compared with what the
    parent's should be, so a wrong depth is one problem; counts with the
    parent's stored counts, as the engine derived them, so a wrong cumulative
    count shows on its commit and on the children counted from it.
    """
    from cairn.model import sha256_hex
    from cairn.model.lineage import Lineage

    problems: list[Problem] = []
    by_hash = {c.hash: c for c in commits}
    used = {c.content_hash for c in by_hash.values() if c.content_hash is not None}
    content_types: dict[str, str | None] = {}  # of the blobs commits use: None when not a content item
    for digest, data in blobs.items():
        if sha256_hex(data) != digest:
            problems.append(Problem("blob_hash", digest, "content does not match its hash"))
        if digest in used:
            content_types[digest] = _content_type_of(data)
    changes: dict[str, list[Commit]] = {}
    for commit in by_hash.values():
        if commit.target is not None:
            changes.setdefault(commit.target, []).append(commit)
    right: dict[str, Commit] = {}  # commits with their derived fields as they should be
    lineage = Lineage(lambda h: right.get(h) or by_hash.get(h), lambda t: changes.get(t, ()))
    for commit in _parents_first(by_hash):
        if commit.computed_hash() != commit.hash:
            problems.append(Problem("commit_hash", commit.hash, "fields do not match the hash"))
        content_type = commit.content_type
        if commit.content_hash is not None:
            if commit.content_hash not in content_types:
                problems.append(Problem("missing_blob", commit.hash, f"content {commit.content_hash[:12]} is missing"))
            elif content_types[commit.content_hash] is None:
                problems.append(
                    Problem("other", commit.hash, f"content {commit.content_hash[:12]} is not a content item")
                )
            else:
                content_type = content_types[commit.content_hash]
        derived = lineage.derive(commit, content_type=content_type)
        # Links only: an edit of another branch's item, or a clock that went back, is the
        # context engine's business (import refuses both); a store may hold them.
        problems.extend(Problem(k, commit.hash, m) for k, m in derived.problems if k.startswith("missing_"))
        problems.extend(_derived_problems(commit, derived))
        if not any(kind == "missing_parent" for kind, _ in derived.problems):
            # Ancestry follows the right depth and skip pointer; counts stay as stored, since
            # the engine counted each commit's children from its parent's stored counts.
            right[commit.hash] = attrs.evolve(commit, depth=derived.depth, skip=derived.skip)
    if refs is not None:
        for name, value in refs.items():
            problem = ref_problem(name, value)
            if problem is not None:
                problems.append(Problem("bad_ref", name, problem))
            elif is_hash(value) and value not in by_hash:
                problems.append(Problem("dangling_ref", name, f"points to commit {value[:12]}, which is not stored"))
    return problems


def _content_type_of(data: bytes) -> str | None:
    """The ``content_type`` of a stored content item, or None when the bytes are not one."""
    import json

    try:
        item = json.loads(data)
    except (ValueError, RecursionError):
        return None
    tag = item.get("content_type") if isinstance(item, dict) else None
    return tag if isinstance(tag, str) and tag else None


def _parents_first(commits: Mapping[str, Commit]) -> list[Commit]:
    """Every commit, each after its parent (a commit whose parent is missing starts a line of its own)."""
    children: dict[str, list[Commit]] = {}
    roots = []
    for commit in commits.values():
        if commit.parent is not None and commit.parent in commits and commit.parent != commit.hash:
            children.setdefault(commit.parent, []).append(commit)
        else:
            roots.append(commit)
    ordered: list[Commit] = []
    stack = roots
    while stack:
        commit = stack.pop()
        ordered.append(commit)
        stack.extend(children.get(commit.hash, ()))
    return ordered


def _derived_problems(commit: Commit, derived: Any) -> list[Problem]:
    problems = []

    def wrong(message: str) -> None:
        problems.append(Problem("derived", commit.hash, message))

    for name in ("token_count", "cumulative_tokens", "depth"):
        value = getattr(commit, name)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
            wrong(f"{name} {value!r:.40} is not a count (0 to {MAX_COUNT})")
            return problems
    if commit.depth != derived.depth:
        wrong(f"depth {commit.depth}, expected {derived.depth}")
    # Below depth 2 a skip pointer could only name the parent: writers may leave it empty.
    if commit.skip != derived.skip and not (derived.depth == 1 and commit.skip == commit.parent):
        wrong(f"skip pointer {_short(commit.skip)}, expected {_short(derived.skip)}")
    if commit.content_type != derived.content_type:
        wrong(f"content type {commit.content_type!r}, but its content says {derived.content_type!r}")
    if commit.token_count != derived.token_count:
        wrong(f"token count {commit.token_count}, expected {derived.token_count} (a delete costs nothing)")
    if derived.cumulative_tokens is not None and commit.cumulative_tokens != derived.cumulative_tokens:
        wrong(
            f"cumulative tokens {commit.cumulative_tokens}, expected {derived.cumulative_tokens} "
            f"from its parent's and its own {commit.operation.value}"
        )
    return problems


def _short(value: str | None) -> str:
    return "none" if value is None else value[:12]


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


def unreachable(
    refs: Mapping[str, str], commits: Mapping[str, Commit], blobs: Iterable[str]
) -> tuple[set[str], set[str]]:
    """The commits and blobs no ref reaches, given everything stored; for simple ``Store.gc`` implementations."""
    reachable: set[str] = set()
    stack = [v for v in refs.values() if v in commits]
    while stack:
        digest = stack.pop()
        if digest in reachable:
            continue
        reachable.add(digest)
        commit = commits[digest]
        # Follow targets too: an edit that survives keeps the item it changes.
        for link in (commit.parent, commit.target):
            if link and link in commits:
                stack.append(link)
    dead = set(commits) - reachable
    live_blobs = {commits[h].content_hash for h in reachable if commits[h].content_hash}
    return dead, set(blobs) - live_blobs  # type: ignore[operator]
