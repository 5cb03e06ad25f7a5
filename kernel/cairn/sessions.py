"""Sessions: named, resumable conversations, each a context branch plus a session record.

- The branch is ``sessions/<id>`` (``refs/heads/sessions/<id>``): asks append
  to it like any branch, so materialize, log, diff, merge and sync just work.
- The record (``cairn.model.session.SessionRecord``: title, provider, model,
  tools, status, created, the commit the branch started from) is a chain of
  commits under ``refs/sessions/<id>``, each change a new commit whose parent
  is the previous version, moved by compare-and-swap. Record and branch are
  ordinary commits and refs, so every backend with the objects and refs
  facets keeps sessions (SQLite, git with push and pull, PostgreSQL,
  contrib's cairn-files) with no backend code.
- Totals (turns, tokens, spend, runs) are running sums in each reply's
  commit metadata (``metadata["session"]``), written in the very transaction
  that commits the reply, so they always match the turns, whatever crashes.
  A session's totals are those of the newest reply on its branch; the runs it
  made are the ``run_id`` of each reply.

``cairn ask`` on a session's branch is the session's ask; ``Session.ask`` is
the same from Python. See docs/sessions.md.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

import attrs

from cairn.errors import ConflictError, NotFoundError, ValidationError
from cairn.model import Commit, Content, Operation, now, sha256_hex, skip_depth
from cairn.model.session import SessionRecord, new_session_id, validate_checkpoint_name, validate_session_id
from cairn.repo_branches import RepoBranches
from cairn.repo_reader import RepoReader
from cairn.storage import HEAD, SYMBOLIC_PREFIX, RefUpdate, branch_ref

if TYPE_CHECKING:  # pragma: no cover
    from cairn.asking import AskResult
    from cairn.asking import Repo as AskRepo

# This module (and cairn.asking, cairn.checkpoints) never imports cairn.repo: ``Repo.session``
# imports it. A repository is typed by the layer that has what is used (``RepoBranches``);
# ``view`` is a ``cairn.repo.Repo`` at run time (``on_branch`` keeps the class).

__all__ = [
    "BRANCH_NAMESPACE",
    "CHECKPOINT_PREFIX",
    "SESSION_PREFIX",
    "Session",
    "SessionTotals",
    "Sessions",
    "summary",
    "write_record",
]

SESSION_PREFIX = "refs/sessions/"
CHECKPOINT_PREFIX = "refs/checkpoints/"
#: A session's branch is ``sessions/<id>``.
BRANCH_NAMESPACE = "sessions/"
_ATTEMPTS = 20


def write_record(
    repo: RepoReader,
    ref: str,
    content: Content,
    *,
    parent: Commit | None,
    expected: str | None,
    message: str,
    also: tuple[RefUpdate, ...] = (),
) -> Commit:
    """Commit ``content`` on top of ``parent`` and move ``ref`` from ``expected`` to it, in one transaction.

    ``also``: more ref updates made in that same transaction.

    ``ConflictError`` when ``ref`` no longer holds ``expected``. The commit's
    derived fields (tokens, depth, skip pointer) are what the context engine
    would write, so fsck and gc treat it like any other.
    """
    blob = content.canonical()
    digest = sha256_hex(blob)
    tokens = repo.count_content(content)
    created = now()
    if parent is not None and parent.created_at > created:
        created = parent.created_at
    depth = parent.depth + 1 if parent is not None else 0
    skip = None
    if parent is not None and depth >= 2:
        found = repo.ancestor_at_depth(parent, skip_depth(depth))
        skip = found.hash if found else None
    merged: dict[str, Any] = (
        {"last_merge": parent.last_merge} if parent is not None and parent.last_merge is not None else {}
    )
    commit = Commit.new(
        parent=parent.hash if parent is not None else None,
        operation=Operation.APPEND,
        content_hash=digest,
        message=message,
        created_at=created,
        content_type=content.content_type,
        token_count=tokens,
        cumulative_tokens=(parent.cumulative_tokens if parent is not None else 0) + tokens,
        depth=depth,
        skip=skip,
        tokenizer=repo.tokenizer.name,
        **merged,
    )
    repo.objects.write(blobs={digest: blob}, commits=[commit], refs=[RefUpdate(ref, commit.hash, expected), *also])
    return commit


@attrs.frozen
class SessionTotals:
    """What a session's replies add up to: turns (partial ones among them), tokens, known spend, runs."""

    turns: int = 0
    partial: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    #: Replies whose cost is unknown (an unpriced model, a partial reply): ``cost`` leaves them out.
    unpriced: int = 0
    runs: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionTotals:
        fields = attrs.fields_dict(cls)
        return cls(**{k: data[k] for k in fields if k in data})

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def plus(self, reply: Mapping[str, Any]) -> SessionTotals:
        """These totals with one more reply, given its commit metadata."""
        usage = reply.get("usage") or {}
        cost = reply.get("cost")
        return SessionTotals(
            turns=self.turns + 1,
            partial=self.partial + (1 if reply.get("partial") else 0),
            input_tokens=self.input_tokens + int(usage.get("input_tokens") or 0),
            output_tokens=self.output_tokens + int(usage.get("output_tokens") or 0),
            cost=round(self.cost + (cost or 0.0), 12),
            unpriced=self.unpriced + (1 if cost is None else 0),
            runs=self.runs + (1 if reply.get("run_id") else 0),
        )


class Session:
    """One session: its record (a version of it), its branch, totals, and ``ask``."""

    def __init__(self, repo: RepoBranches, record: SessionRecord, version: Commit) -> None:
        self.repo = repo
        self.record = record
        #: The record commit this object was read from (the compare-and-swap's expected value).
        self.version = version
        #: The repository on the session's branch (HEAD never moves): what asks append to.
        self.view: RepoBranches = repo.on_branch(record.branch)
        self._own_providers: Any = None

    def close(self) -> None:
        """Close the providers ``ask`` built (a session asked many times reuses their connections)."""
        if self._own_providers is not None:
            self._own_providers[0].close()
            self._own_providers = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def branch(self) -> str:
        return self.record.branch

    @property
    def is_open(self) -> bool:
        return self.record.status == "open"

    def check_open(self) -> None:
        if not self.is_open:
            raise ValidationError(
                f"session {self.id} is closed", hint=f"reopen it with `cairn session resume {self.id}`"
            )

    # -- totals -----------------------------------------------------------------------

    def _replies(self, head: Commit | None) -> Iterator[Commit]:
        """Commits of this session's branch from ``head`` back to where the session started."""
        commit = head
        while commit is not None and commit.hash != self.record.start:
            yield commit
            commit = self.view.commit(commit.parent) if commit.parent else None

    def _totals_at(self, head: Commit | None) -> SessionTotals:
        for commit in self._replies(head):
            mark = commit.metadata.get("session")
            if isinstance(mark, dict) and mark.get("id") == self.id:
                return SessionTotals.from_dict(mark)
        return SessionTotals()

    def totals(self) -> SessionTotals:
        return self._totals_at(self.view.head())

    def totals_after(self, head: Commit | None, reply: Mapping[str, Any]) -> dict[str, Any]:
        """The ``session`` metadata of a reply committed on ``head``: the running totals with it counted."""
        return {"session": {"id": self.id, **self._totals_at(head).plus(reply).to_dict()}}

    def run_ids(self) -> list[str]:
        """The runs this session's replies made, oldest first."""
        out = [c.metadata["run_id"] for c in self._replies(self.view.head()) if c.metadata.get("run_id")]
        return out[::-1]

    def last_active(self) -> str:
        head = self.view.head()
        times = [self.version.created_at] + ([head.created_at] if head is not None else [])
        return max(times)

    def to_dict(self, *, runs: bool = False) -> dict[str, Any]:
        head = self.view.head()
        data = {
            "id": self.id,
            "title": self.record.title,
            "status": self.record.status,
            "branch": self.branch,
            "provider": self.record.provider,
            "model": self.record.model,
            "tools": list(self.record.tools),
            "created": self.record.created,
            "last_active": self.last_active(),
            "head": head.hash if head is not None else None,
            "start": self.record.start,
            "totals": self.totals().to_dict(),
        }
        if runs:
            data["runs"] = self.run_ids()
        return data

    # -- asking -----------------------------------------------------------------------

    def ask(
        self,
        text: str,
        *,
        model: str | None = None,
        budget: int | None = None,
        stream: bool = False,
        on_text: Callable[[str], None] | None = None,
        providers: Any = None,
    ) -> AskResult:
        """Ask the session's provider (and model) about its branch; the reply carries the new totals.

        ``providers``: a ``cairn.providers.Providers`` to use (default: built
        from the config the repository was opened with on the first ask, kept
        until ``close()``). Each ask is an ``llm`` run in the ledger when the
        store keeps one.
        """
        import contextlib

        from cairn.asking import ask

        self.check_open()
        with contextlib.ExitStack() as stack:
            if providers is None:
                if self._own_providers is None:
                    built = self._providers()
                    self._own_providers = (built, built.llm(self.record.provider))
                providers, llm = self._own_providers
            else:
                llm = providers.llm(self.record.provider)
            recorder = None
            if llm.provider.readiness() is None:
                recorder = self._recorder(stack, providers)
            return ask(
                cast("AskRepo", self.view),  # a Repo's view is a Repo (on_branch keeps the class)
                llm,
                text,
                model=model or self.record.model,
                budget=budget,
                stream=stream,
                on_text=on_text,
                recorder=recorder,
                derive_metadata=self.totals_after,
            )
        raise AssertionError("unreachable")  # pragma: no cover  (the with block returns or raises)

    def _providers(self) -> Any:
        from cairn.providers import Providers

        repo = self.repo
        if repo.config is None or repo.plugins is None:
            raise ValidationError(
                "this repository was not opened with a config, so the session cannot build its providers",
                hint="open it with cairn.open(), or pass providers=",
            )
        return Providers(repo.config, repo.plugins, store=repo.store, tokenizer=repo.tokenizer)

    def _recorder(self, stack: Any, providers: Any) -> Any:
        from cairn.storage import RunStore

        repo = self.repo
        if not isinstance(repo.store, RunStore) or repo.config is None:
            return None
        from cairn.calls import CallRecorder
        from cairn.ledger import open_ledger

        ledger = open_ledger(config=repo.config, plugins=repo.plugins, store=repo.store)
        return stack.enter_context(CallRecorder(ledger, operation="ask", branch=self.branch, meter=providers.meter))


class Sessions:
    """Every session of a repository: create, find, list, resume, close, delete."""

    def __init__(self, repo: RepoBranches) -> None:
        self.repo = repo

    # -- reading ----------------------------------------------------------------------

    def _load(self, session_id: str, value: str | None = None) -> Session | None:
        value = value if value is not None else self.repo.refs.get_ref(SESSION_PREFIX + session_id)
        if value is None:
            return None
        version = self.repo.commit(value)
        record = self.repo.content_of(version)
        if not isinstance(record, SessionRecord) or record.id != session_id:
            raise ValidationError(
                f"{SESSION_PREFIX}{session_id} does not hold a session record",
                hint="run `cairn fsck`; delete the ref if it was made by hand",
            )
        return Session(self.repo, record, version)

    def get(self, session_id: str) -> Session:
        validate_session_id(session_id)
        found = self._load(session_id)
        if found is None:
            raise NotFoundError("session", session_id, hint="`cairn session list` lists sessions")
        return found

    def list(self) -> list[Session]:
        """Every session, the most recently active first."""
        out = []
        for ref, value in self.repo.refs.list_refs(SESSION_PREFIX).items():
            session_id = ref[len(SESSION_PREFIX) :]
            try:
                validate_session_id(session_id)
            except ValidationError:
                continue  # not made by cairn; fsck reports refs that hold no record
            found = self._load(session_id, value)
            if found is not None:
                out.append(found)
        out.sort(key=lambda s: s.last_active(), reverse=True)
        return out

    def on_branch(self, branch: str | None) -> Session | None:
        """The session whose branch is ``branch``, or None."""
        if branch is None or not branch.startswith(BRANCH_NAMESPACE):
            return None
        session_id = branch[len(BRANCH_NAMESPACE) :]
        try:
            validate_session_id(session_id)
        except ValidationError:
            return None
        return self._load(session_id)

    def current(self) -> Session | None:
        return self.on_branch(self.repo.branch)

    def _named(self, session_id: str | None) -> Session:
        if session_id is not None:
            return self.get(session_id)
        found = self.current()
        if found is None:
            raise ValidationError(
                "HEAD is not on a session's branch, so there is no current session",
                hint="give a session id (`cairn session list` lists them)",
            )
        return found

    # -- writing ----------------------------------------------------------------------

    def new(
        self,
        title: str | None = None,
        *,
        start: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        tools: tuple[str, ...] | builtins.list[str] = (),
        switch: bool = False,
    ) -> Session:
        """A new open session whose branch starts at ``start`` (a revision or checkpoint; default HEAD, if any).

        ``provider`` defaults to the configured ``[cairn] llm``. The record
        and the branch are created in one transaction; ``switch`` then points
        HEAD at the branch.
        """
        repo = self.repo
        if title is not None and (not isinstance(title, str) or not title.strip()):
            raise ValidationError("a session title must not be empty", hint="leave --title out for a default one")
        start_commit = self._start(start)
        if provider is None and repo.config is not None:
            provider = repo.config.cairn.llm
        session_id = new_session_id()
        branch = BRANCH_NAMESPACE + session_id
        record = SessionRecord(
            id=session_id,
            title=title.strip() if title else f"Session {now()[:16].replace('T', ' ')}",
            branch=branch,
            created=now(),
            provider=provider or None,
            model=model or None,
            tools=sorted(set(tools)),
            start=start_commit.hash if start_commit is not None else None,
        )
        also = (RefUpdate(branch_ref(branch), start_commit.hash, None),) if start_commit is not None else ()
        version = write_record(
            repo, SESSION_PREFIX + session_id, record, parent=None, expected=None, message="session new", also=also
        )
        session = Session(repo, record, version)
        if switch:
            self._switch(session)
        return session

    def _start(self, start: str | None) -> Commit | None:
        repo = self.repo
        if start is None:
            return repo.head()
        try:
            validate_checkpoint_name(start)
            point = repo.refs.get_ref(CHECKPOINT_PREFIX + start)
        except ValidationError:
            point = None
        if point is not None:  # a checkpoint's record commit sits on top of the commit it names
            parent = repo.commit(point).parent
            if parent is not None:
                return repo.commit(parent)
        return repo.resolve(start)

    def _switch(self, session: Session) -> None:
        repo = self.repo
        if repo.refs.get_ref(branch_ref(session.branch)) is not None:
            repo.switch(session.branch)
            return
        current = repo._ensure_head()  # an empty session: HEAD names its branch before its first commit
        repo.refs.set_ref(HEAD, SYMBOLIC_PREFIX + branch_ref(session.branch), expected=current)

    def _update(self, session: Session, message: str, **changes: Any) -> Session:
        """A new version of the record, by compare-and-swap (re-read and retried while other writers win)."""
        for _ in range(_ATTEMPTS):
            record = attrs.evolve(session.record, **changes)
            if record == session.record:
                return session
            ref = SESSION_PREFIX + session.id
            try:
                version = write_record(
                    self.repo, ref, record, parent=session.version, expected=session.version.hash, message=message
                )
            except ConflictError:
                session = self.get(session.id)
                continue
            return Session(self.repo, record, version)
        raise ConflictError(SESSION_PREFIX + session.id, None, None, hint="others keep changing it; try again")

    def resume(self, session_id: str) -> Session:
        """Point HEAD at the session's branch, reopening it if it was closed."""
        session = self._update(self.get(session_id), "session resume", status="open")
        self._switch(session)
        return session

    def close(self, session_id: str | None = None) -> Session:
        """Close a session (default: the current one); HEAD stays where it is."""
        return self._update(self._named(session_id), "session close", status="closed")

    def rename(self, session_id: str | None, title: str) -> Session:
        if not isinstance(title, str) or not title.strip():
            raise ValidationError("a session title must not be empty")
        return self._update(self._named(session_id), "session rename", title=title.strip())

    def delete(self, session_id: str, *, force: bool = False) -> Session:
        """Delete the record and the branch; an open session only with ``force``. Checkpoints keep what they name."""
        session = self.get(session_id)
        if session.is_open and not force:
            raise ValidationError(
                f"session {session.id} is open",
                hint=f"close it first (`cairn session close {session.id}`), or delete it anyway with --force",
            )
        repo = self.repo
        if repo.branch == session.branch:
            raise ValidationError(f"session {session.id} is the current session", hint="switch to another branch first")
        updates = [RefUpdate(SESSION_PREFIX + session.id, None, session.version.hash)]
        tip = repo.refs.get_ref(branch_ref(session.branch))
        if tip is not None:
            updates.append(RefUpdate(branch_ref(session.branch), None, tip))
        repo.refs.update_refs(updates)
        return session


def summary(repo: RepoBranches) -> dict[str, Any]:
    """What a status page shows of sessions: ``count``, ``open``, ``last_active`` (ISO time or None), ``checkpoints``."""
    sessions = Sessions(repo).list()
    checkpoints = repo.refs.list_refs(CHECKPOINT_PREFIX)
    return {
        "count": len(sessions),
        "open": sum(1 for s in sessions if s.is_open),
        "last_active": sessions[0].last_active() if sessions else None,
        "checkpoints": len(checkpoints),
    }
