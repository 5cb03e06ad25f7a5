"""The provider call log: every ``cairn ask`` and ``cairn embed`` is a run of type ``llm`` in the ledger.

A call run holds metadata only (provider, model, usage, cost, latency,
outcome, the branch) and the hashes of the two context commits it made: the
question and the reply. Bodies live in context, never in the ledger, so
reading a call's prompt or reply goes back to the repository
(``Call.bodies``). Each attempt the meter records (retries included) is one
``attempt`` event of the run, and each spend record carries the run id.

Provider calls made *inside* another run (an evaluation's generation,
judges and embeddings) are not runs of their own: a
judge over 10k samples must not mean 10k runs. Their spend records carry
the enclosing run's id, so the log shows each such run as one entry of
kind ``within`` (its run type as the operation), with the number of calls,
their summed usage and cost, and the providers and models they used;
``cairn logs show RUN_ID`` shows it.

``cairn logs`` lists these runs; ``cairn serve`` and ``cairn mcp serve`` read
them through the same functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from cairn.errors import NotFoundError, ProviderError

if TYPE_CHECKING:  # pragma: no cover
    from cairn.ledger import Ledger, OpenRun
    from cairn.model.ledger import Run, SpendRecord
    from cairn.repo_reader import RepoReader

__all__ = [
    "CALL_RUN_TYPE",
    "Call",
    "CallRecorder",
    "get_call",
    "get_call_and_spend",
    "list_calls",
    "spend_breakdown",
    "spend_sums",
]

#: The run type of a provider call made by a cairn command.
CALL_RUN_TYPE = "llm"

#: The meter's fields copied into each attempt event (never a body: the meter records none).
_ATTEMPT_FIELDS = ("attempt", "outcome", "sent", "latency_ms", "usage", "cost", "request_id", "finish_reason", "error")


@attrs.frozen
class Call:
    """One provider call as the log shows it."""

    id: str
    time: str
    operation: str
    status: str
    outcome: str
    provider: str | None
    model: str | None
    usage: dict[str, Any] | None
    cost: float | None
    latency_ms: float | None
    branch: str | None
    prompt_commit: str | None
    reply_commit: str | None
    attempts: int
    error: str | None
    #: ``call`` for a provider call run; ``within`` for the calls made inside another run, grouped.
    kind: str = "call"
    #: How many provider calls the entry stands for (1 for a call; the spend records' count for ``within``).
    calls: int = 1

    @classmethod
    def within_run(cls, run: Run, records: list[SpendRecord]) -> Call:
        """The provider calls made inside ``run`` (an evaluation), from its spend records."""
        sums = spend_sums(records)
        return cls(
            id=run.run_id,
            time=run.started_at,
            operation=run.type,
            status=run.status,
            outcome="ok" if not sums["failed"] else f"{sums['failed']} failed",
            provider=", ".join(sorted({r.provider for r in records})) or None,
            model=", ".join(sorted({r.model for r in records})) or None,
            usage={"input_tokens": sums["input_tokens"], "output_tokens": sums["output_tokens"]},
            cost=sums["cost"],
            latency_ms=None if run.duration_ms is None else float(run.duration_ms),
            branch=run.metadata.get("branch"),
            prompt_commit=None,
            reply_commit=None,
            attempts=sums["calls"],
            error=None,
            kind="within",
            calls=sums["calls"],
        )

    @classmethod
    def from_run(cls, run: Run) -> Call:
        meta = run.metadata
        return cls(
            id=run.run_id,
            time=run.started_at,
            operation=run.subtype or "",
            status=run.status,
            outcome=meta.get("outcome") or ("ok" if run.status == "ok" else run.status),
            provider=meta.get("provider"),
            model=meta.get("model"),
            usage=meta.get("usage"),
            cost=meta.get("cost"),
            latency_ms=meta.get("latency_ms"),
            branch=meta.get("branch"),
            prompt_commit=meta.get("prompt_commit"),
            reply_commit=meta.get("reply_commit"),
            attempts=int(meta.get("attempts") or 0),
            error=meta.get("error") or (run.summary if run.status == "failed" else None),
        )

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def bodies(self, repo: RepoReader) -> dict[str, str | None]:
        """The prompt and reply texts, read from context (None where the commit is not in this store)."""
        out: dict[str, str | None] = {}
        for key, digest in (("prompt", self.prompt_commit), ("reply", self.reply_commit)):
            out[key] = None
            if digest:
                try:
                    content = repo.content_of(repo.commit(digest))
                except NotFoundError:
                    continue
                out[key] = content.text_for_search() if content is not None else None
        return out


def spend_sums(records: Iterable[SpendRecord]) -> dict[str, Any]:
    """Calls, failed calls, input and output tokens and cost summed over spend records (cost None if any is)."""
    rows = list(records)
    costs = [r.cost for r in rows]
    return {
        "calls": sum(r.calls for r in rows),
        "failed": sum(r.calls for r in rows if r.outcome != "ok"),
        "input_tokens": sum(r.input_tokens for r in rows),
        "output_tokens": sum(r.output_tokens for r in rows),
        "cost": None if any(c is None for c in costs) else sum(c for c in costs if c is not None),
    }


class CallRecorder:
    """Records one provider call as a run: ``attempt`` events as the meter reports them, then the outcome.

    Given the ``meter`` the call goes through, the meter charges its spend to this run.

    Use as a context manager around the call; ``finish`` gives the result's
    metadata. A failure that escapes closes the run as failed with the
    error's kind (the redactor masks its text, like everything recorded).
    """

    def __init__(
        self, ledger: Ledger, *, operation: str, branch: str | None, meter: Any = None, bus: Any = None
    ) -> None:
        from cairn.events import bus as default_bus

        self._bus = bus or default_bus
        self.run: OpenRun = ledger.open(CALL_RUN_TYPE, subtype=operation, metadata={"branch": branch})
        if meter is not None:  # the meter's spend records (and attempt events) point at this run
            meter.run_id = self.run.run_id
        self._attempts = 0
        #: What was known before a failure (the prompt commit), kept in a failed run's metadata.
        self._partial: dict[str, Any] = {}
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def run_id(self) -> str:
        return self.run.run_id

    def __enter__(self) -> CallRecorder:
        from cairn.providers import CALL_EVENT

        self._unsubscribe = self._bus.subscribe(CALL_EVENT, self._attempt)
        return self

    def _attempt(self, event: Any) -> None:
        payload = event.payload
        if payload.get("run_id") != self.run_id:
            return  # another call of this process
        self._attempts += 1
        self.run.event("attempt", **{k: payload[k] for k in _ATTEMPT_FIELDS if payload.get(k) is not None})

    def finish(self, **metadata: Any) -> None:
        """Close the run as ok with the call's metadata (commits, provider, model, usage, cost, latency)."""
        self._stop()
        self.run.close("ok", metadata={"outcome": "ok", "attempts": self._attempts, **metadata})

    def _stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._stop()
        if not self.run.run.is_open:
            return
        if isinstance(exc, ProviderError):
            outcome = str(getattr(exc, "kind", "provider_error"))
        else:
            outcome = "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"
        text = self.run.ledger.redactor.text(f"{type(exc).__name__}: {exc}")[:500] if exc else "ended without a reply"
        self.run.close(
            "failed",
            summary=text,
            metadata={"outcome": outcome, "attempts": self._attempts, "error": text, **self._partial},
        )

    def note(self, **metadata: Any) -> None:
        """Remember metadata for the record even if the call then fails (the prompt commit)."""
        self._partial = {**self._partial, **metadata}


def list_calls(
    ledger: Ledger,
    *,
    limit: int | None = None,
    model: str | None = None,
    since: str | None = None,
    text: str | None = None,
    conversation: str | None = None,
    repo: RepoReader | None = None,
) -> list[Call]:
    """Calls newest first, filtered; ``text`` searches the prompt and reply bodies in ``repo`` (case-insensitive).

    ``conversation`` is the branch the call was made on (a session is a branch).
    """
    if text is not None and repo is None:
        raise ValueError("searching call bodies needs the repository")
    out: list[Call] = []
    for call in _scan(ledger, since):
        if _keep(call, model, conversation) and (text is None or _mentions(call, text, repo)):
            out.append(call)
            if limit is not None and len(out) >= limit:
                break
    if text is not None:
        return out  # entries for calls inside other runs have no bodies to search
    # Entries for calls made inside other runs, from the spend of the window the calls above cover.
    from cairn.ledger import parse_moment

    window = out[-1].time if limit is not None and len(out) >= limit else None
    bounds = [t for t in (None if since is None else parse_moment(since), window) if t]
    start = max(bounds) if bounds else None
    within = [c for c in _within_runs(ledger, start) if _keep(c, model, conversation)]
    merged = sorted(out + within, key=lambda c: c.time, reverse=True)
    return merged if limit is None else merged[:limit]


def _keep(call: Call, model: str | None, conversation: str | None) -> bool:
    if model is not None and model not in (call.model or "").split(", "):
        return False
    return conversation is None or call.branch == conversation


def _mentions(call: Call, text: str, repo: RepoReader | None) -> bool:
    assert repo is not None
    needle = text.lower()
    return any(needle in (body or "").lower() for body in call.bodies(repo).values())


def _within_runs(ledger: Ledger, since: str | None) -> list[Call]:
    """One entry per non-call run with spend at or after ``since``, newest first."""
    groups: dict[str, list[SpendRecord]] = {}
    marker = f"_{CALL_RUN_TYPE}_"
    for record in ledger.store.spend(since=since):
        # A call run's id (``new_run_id``) names its type: skip those without a look-up.
        if record.run_id is not None and marker not in record.run_id:
            groups.setdefault(record.run_id, []).append(record)
    out: list[Call] = []
    for run_id, records in groups.items():
        try:
            run = ledger.get(run_id)
        except NotFoundError:
            continue  # spend of a run that was never recorded (a process killed before it closed)
        if run.type != CALL_RUN_TYPE:
            out.append(Call.within_run(run, records))
    out.sort(key=lambda c: c.time, reverse=True)
    return out


def _scan(ledger: Ledger, since: str | None, page: int = 500) -> Iterator[Call]:
    """Every call run, newest first, read a page at a time (filters may skip many)."""
    until: str | None = None
    seen: set[str] = set()
    while True:
        runs = ledger.list(type=CALL_RUN_TYPE, since=since, until=until, limit=page)
        fresh = [r for r in runs if r.run_id not in seen]
        for run in fresh:
            seen.add(run.run_id)
            yield Call.from_run(run)
        if len(runs) < page or not fresh:
            return
        until = runs[-1].started_at  # inclusive: ties on the boundary are skipped through ``seen``


def get_call(ledger: Ledger, call_id: str) -> Call:
    """One call by id (``@last``: the newest run, which must be a call), or the calls made inside a run."""
    return get_call_and_spend(ledger, call_id)[0]


def get_call_and_spend(ledger: Ledger, call_id: str) -> tuple[Call, list[SpendRecord]]:
    """``get_call``, with the spend records a ``within`` entry was summed from (none are read for a call)."""
    if call_id == "@last":
        newest = ledger.list(type=CALL_RUN_TYPE, limit=1)
        if not newest:
            raise NotFoundError("call", call_id, hint="no provider calls are recorded yet; `cairn ask` makes one")
        return Call.from_run(newest[0]), []
    run = ledger.get(call_id)
    if run.type == CALL_RUN_TYPE:
        return Call.from_run(run), []
    records = ledger.store.spend(run_id=run.run_id)
    if not records:
        raise NotFoundError(
            "call",
            run.run_id,
            hint=f"run {run.run_id} is a {run.type} run, not a provider call, and made none; `cairn logs` lists calls",
        )
    return Call.within_run(run, records), records


def spend_breakdown(records: Iterable[SpendRecord]) -> list[dict[str, Any]]:
    """Spend records summed by provider, model and outcome (``cairn logs show`` of a ``within`` entry)."""
    groups: dict[tuple[str, str, str], list[SpendRecord]] = {}
    for record in records:
        groups.setdefault((record.provider, record.model, record.outcome), []).append(record)
    out = []
    for (provider, model, outcome), rows in sorted(groups.items()):
        sums = spend_sums(rows)
        del sums["failed"]  # one outcome per group: the outcome says it
        out.append({"provider": provider, "model": model, "outcome": outcome, **sums})
    return out
