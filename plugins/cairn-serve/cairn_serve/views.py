"""The read layer both interfaces share: each function takes the command's ``State`` and returns JSON.

Every value a page or an MCP client sees comes from here, and every one
passes through ``Views.out``: the redactor of the project (the values of
secret-looking environment variables and of the variables the config names,
key shapes) masks whatever might hold a secret, on top of what recording
already masked. Chat texts sealed with a key are shown as locked unless the
key is set in the server's own environment.

Arguments come from URLs and tool calls: numbers are parsed and bounded
here, revisions and run ids are validated by the kernel before they reach a
store (a bad one is a ``CairnError`` the caller turns into a 400 or 404).
"""

from __future__ import annotations

import re
from typing import Any

from cairn.errors import ValidationError
from cairn.redact import looks_secret_name

__all__ = ["MAX_LIMIT", "Views", "parse_count"]

#: The most rows one request returns.
MAX_LIMIT = 2000
#: How many dropped items a materialize view lists by default (history is walked only that far).
DROPPED_SHOWN = 500

#: Keys whose values cairn computes (hashes, short hashes, times): never a secret, never redacted.
_COMPUTED = frozenset(
    {
        "hash", "short", "parent", "target", "item", "source", "content_hash", "skip", "head", "from", "to",
        "reply_to", "commit", "prompt_commit", "reply_commit", "created_at", "started_at", "ended_at", "ts",
        "updated_at", "time",
    }
)  # fmt: skip
_COMPUTED_VALUE = re.compile(r"[0-9a-f]{7,64}|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")


def parse_count(value: Any, name: str, *, default: int | None, ceiling: int = MAX_LIMIT) -> int | None:
    """A positive whole number from a query string or a tool argument (capped at ``ceiling``)."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ValidationError(f"{name} must be a positive whole number, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be a positive whole number, got {str(value)[:40]!r}") from None
    if number < 1:
        raise ValidationError(f"{name} must be at least 1, got {number}")
    return min(number, ceiling)


def _text(content: Any, width: int = 80) -> str:
    if content is None:
        return ""
    flat = " ".join(content.text_for_search().split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


class Views:
    """Read-only views of one project (its context, ledger, chat, evals and spend)."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self._redactor_cache: Any = None

    # -- plumbing --------------------------------------------------------------

    @property
    def repo(self) -> Any:
        return self.state.repo

    def out(self, value: Any) -> Any:
        """``value`` with every secret masked: the last step of every view.

        As ``Redactor.value`` does (a value under a secret-looking key masked
        whole, every other string masked as text), except that the hashes and
        times cairn computes itself (``hash``, ``parent``, ``created_at`` ...)
        are passed through unread: they cannot hold a secret, and they are
        most of what a graph or a run list holds.
        """
        redactor = self._redactor()
        seen: dict[str, str] = {}
        secret_key: dict[str, bool] = {}

        def secret(key: str) -> bool:
            if key not in secret_key:
                secret_key[key] = looks_secret_name(key)
            return secret_key[key]

        def text(item: str) -> str:
            if item not in seen:
                seen[item] = redactor.text(item)
            return seen[item]

        def walk(item: Any) -> Any:
            if isinstance(item, str):
                return text(item)
            if isinstance(item, dict):
                out: dict[Any, Any] = {}
                for key, inner in item.items():
                    if isinstance(key, str) and secret(key):
                        out[text(key)] = redactor.field(key, inner)
                    elif key in _COMPUTED and isinstance(inner, str) and _COMPUTED_VALUE.fullmatch(inner):
                        out[key] = inner
                    else:
                        out[text(key) if isinstance(key, str) else key] = walk(inner)
                return out
            if isinstance(item, (list, tuple)):
                return [walk(inner) for inner in item]
            return item

        return walk(value)

    def _redactor(self) -> Any:
        if self._redactor_cache is None:
            from cairn.redact import Redactor, configured_env_names

            if self.has("ledger"):
                self._redactor_cache = self.state.ledger.redactor
            else:
                self._redactor_cache = Redactor.from_environment(names=configured_env_names(self.state.config.data))
        return self._redactor_cache

    def facets(self) -> list[str]:
        from cairn.storage import facets_of

        return sorted(facets_of(self.state.store))

    def has(self, facet: str) -> bool:
        return facet in self.facets()

    # -- memory ----------------------------------------------------------------

    def memory(self, subject: Any = None, episodes: Any = None) -> dict[str, Any]:
        from cairn_serve.memory_views import memory_overview

        count = parse_count(episodes, "episodes", default=20, ceiling=MAX_LIMIT)
        assert count is not None
        return self.out(memory_overview(self.state, subject=subject, episodes=count))

    def memory_search(self, q: Any = None, mode: Any = None, kind: Any = None, k: Any = None) -> list[dict[str, Any]]:
        from cairn_serve.memory_views import memory_search

        count = parse_count(k, "k", default=10, ceiling=MAX_LIMIT)
        assert count is not None
        return self.out(memory_search(self.state, q, mode=mode or None, kind=kind or None, k=count))

    # -- sessions and checkpoints ----------------------------------------------

    def sessions(self) -> list[dict[str, Any]]:
        from cairn_serve.session_views import sessions_list

        return self.out(sessions_list(self.state))

    def session(self, session_id: str) -> dict[str, Any]:
        from cairn_serve.session_views import session_detail

        return self.out(session_detail(self.state, session_id, ledger=self.has("ledger")))

    def checkpoints(self) -> list[dict[str, Any]]:
        from cairn_serve.session_views import checkpoints_list

        return self.out(checkpoints_list(self.state))

    # -- context ---------------------------------------------------------------

    def overview(self) -> dict[str, Any]:
        from cairn.storage import backend_name

        repo = self.repo
        _, head = repo.head_state()
        return self.out(
            {
                "project": str(self.state.config.project_dir or self.state.cwd),
                "backend": backend_name(self.state.store),
                "facets": self.facets(),
                "branch": repo.branch,
                "head": head,
                "branches": len(repo.branches()),
            }
        )

    def branches(self) -> list[dict[str, Any]]:
        repo = self.repo
        current = repo.branch
        commits = repo.get_commits(repo.branches().values())
        rows = []
        for name, digest in sorted(repo.branches().items()):
            commit = commits.get(digest)
            rows.append(
                {
                    "name": name,
                    "head": digest,
                    "current": name == current,
                    "commits": commit.depth + 1 if commit else None,
                    "tokens": commit.cumulative_tokens if commit else None,
                    "updated_at": commit.created_at if commit else None,
                    "summary": _text(repo.content_of(commit)) if commit and commit.content_hash else "",
                }
            )
        return self.out(rows)

    def graph(self, limit: Any = None) -> dict[str, Any]:
        from cairn_serve.graph import commit_graph

        repo = self.repo
        count = parse_count(limit, "limit", default=200, ceiling=MAX_LIMIT)
        assert count is not None

        def summary(commit: Any) -> str:
            return _text(repo.content_of(commit), 60) if commit.content_hash else ""

        return self.out(commit_graph(repo, limit=count, summary=summary))

    def commit(self, rev: str) -> dict[str, Any]:
        """A commit with its content, its item's annotations and every change made to the item."""
        repo = self.repo
        commit = repo.resolve(rev)
        content = repo.content_of(commit) if commit.content_hash else None
        item = commit.hash if commit.operation.value == "append" else commit.target
        data: dict[str, Any] = commit.to_record()
        data["content"] = content.to_dict() if content is not None else None
        data["item"] = item
        data["annotations"] = [a.to_record() for a in repo.annotation_store.annotation_history(item)] if item else []
        changes = sorted(repo.objects.commits_targeting([item]), key=lambda c: (c.created_at, c.depth)) if item else []
        data["history"] = [
            {
                "hash": c.hash,
                "operation": c.operation.value,
                "created_at": c.created_at,
                "message": c.message,
                "content": (repo.content_of(c).to_dict() if c.content_hash else None),
            }
            for c in changes
        ]
        data["branches"] = sorted(name for name, digest in repo.branches().items() if digest == commit.hash)
        return self.out(data)

    def materialize(
        self,
        rev: str | None = None,
        *,
        as_of: str | None = None,
        budget: Any = None,
        format: str = "openai",
        dropped_limit: Any = None,
    ) -> dict[str, Any]:
        """The context at ``rev``; the newest ``dropped_limit`` (500) dropped items, so a long history is
        walked only as far as they reach (``dropped_truncated`` says whether there were more)."""
        count = parse_count(budget, "budget", default=None, ceiling=2**31 - 1)
        shown = parse_count(dropped_limit, "dropped_limit", default=DROPPED_SHOWN, ceiling=1_000_000)
        assert shown is not None
        result = self.repo.materialize(rev or None, as_of=as_of or None, budget=count, format=format or "openai")
        data = result.to_dict(include_dropped=False)
        dropped: list[dict[str, Any]] = []
        for entry in result.iter_dropped():
            if len(dropped) == shown:
                data["dropped_truncated"] = True
                break
            dropped.append(entry.to_dict())
        else:
            data["dropped_truncated"] = False
        reasons: dict[str, int] = {}
        for entry in dropped:
            reasons[entry["reason"]] = reasons.get(entry["reason"], 0) + 1
        data["dropped"] = dropped
        data["dropped_by_reason"] = reasons
        data["rev"] = rev or "HEAD"
        return self.out(data)

    def diff(self, a: str | None = None, b: str | None = None) -> dict[str, Any]:
        if not a:
            raise ValidationError("diff needs a revision a", hint="give a=REV (and b=REV, default HEAD)")
        entries = self.repo.diff(a, b or "HEAD")
        return self.out(
            {
                "a": a,
                "b": b or "HEAD",
                "entries": [
                    {
                        "status": e.status,
                        "item": e.item,
                        "before": e.before.to_dict() if e.before else None,
                        "after": e.after.to_dict() if e.after else None,
                    }
                    for e in entries
                ],
            }
        )

    # -- ledger ----------------------------------------------------------------

    def runs(
        self, *, type: str | None = None, status: str | None = None, since: str | None = None, limit: Any = None
    ) -> list[dict[str, Any]]:
        from cairn.model.ledger import RUN_STATUSES

        if status and status not in RUN_STATUSES:
            raise ValidationError(f"unknown run status {status!r}", hint=f"one of: {', '.join(RUN_STATUSES)}")
        count = parse_count(limit, "limit", default=100)
        runs = self.state.ledger.list(type=type or None, status=status or None, since=since or None, limit=count)
        return self.out([r.to_record() for r in runs])

    def run(self, run_id: str) -> dict[str, Any]:
        ledger = self.state.ledger
        run = ledger.get(run_id)
        data: dict[str, Any] = {"run": run.to_record(), "events": [e.to_record() for e in ledger.events(run.run_id)]}
        data["chat"] = (
            [m.to_dict() for m in self._chat().list(run_id=run.run_id, limit=200)] if self.has("chat") else []
        )
        return self.out(data)

    def calls(self, *, model: str | None = None, since: str | None = None, limit: Any = None) -> list[dict[str, Any]]:
        from cairn.calls import list_calls

        count = parse_count(limit, "limit", default=100)
        calls = list_calls(self.state.ledger, limit=count, model=model or None, since=since or None)
        return self.out([c.to_dict() for c in calls])

    def spend(self, since: str | None = None) -> dict[str, Any]:
        """Spend by day, provider and model; a group with an unpriced call has ``cost`` None (never 0)."""
        from cairn.storage import RunStore, require

        records = require(self.state.store, RunStore, doing="spend").spend(since=_since(since))
        groups: dict[tuple[str, str, str], dict[str, Any]] = {}
        for record in records:
            group = groups.setdefault(
                (record.day, record.provider, record.model),
                {
                    "day": record.day,
                    "provider": record.provider,
                    "model": record.model,
                    "calls": 0,
                    "failed": 0,
                    "input_tokens": 0,
                    "output_tokens": 0,
                    "priced_cost": 0.0,
                    "unpriced_calls": 0,
                },
            )
            group["calls"] += record.calls
            group["failed"] += 1 if record.calls and record.outcome not in ("ok", "cancelled") else 0
            group["input_tokens"] += record.input_tokens
            group["output_tokens"] += record.output_tokens
            if record.cost is None:
                group["unpriced_calls"] += record.calls
            else:
                group["priced_cost"] += record.cost
        rows = []
        for key in sorted(groups):
            group = groups[key]
            group["priced_cost"] = round(group["priced_cost"], 10)
            group["cost"] = group["priced_cost"] if group["unpriced_calls"] == 0 else None
            rows.append(group)
        return self.out({"since": since or None, "groups": rows})

    # -- chat ------------------------------------------------------------------

    def _chat(self) -> Any:
        from cairn.chat import Chat
        from cairn.config import ChatSettings

        settings = self.state.config.settings("chat", ChatSettings)
        ledger = self.state.ledger
        return Chat(self.state.store, key_env=settings.key_env, user=ledger.user, redactor=ledger.redactor)

    def threads(self) -> list[dict[str, Any]]:
        return self.out([_record(t) for t in self._chat().threads()])

    def messages(self, *, thread: str | None = None, run: str | None = None, limit: Any = None) -> list[dict[str, Any]]:
        if thread and run:
            raise ValidationError("give a thread or a run, not both")
        if run:
            run = self.state.ledger.get(run).run_id
        count = parse_count(limit, "limit", default=100)
        return self.out(
            [m.to_dict() for m in self._chat().list(run_id=run or None, thread_id=thread or None, limit=count)]
        )

    # -- evals -----------------------------------------------------------------

    def evals(self, limit: Any = None) -> list[dict[str, Any]]:
        from cairn.evaluate import EVAL_RUN_TYPE

        count = parse_count(limit, "limit", default=100)
        rows = []
        for run in self.state.ledger.list(type=EVAL_RUN_TYPE, limit=count):
            meta = run.metadata
            rows.append(
                {
                    "run_id": run.run_id,
                    "name": meta.get("name"),
                    "status": run.status,
                    "started_at": run.started_at,
                    "dataset": (meta.get("dataset") or {}).get("reference"),
                    "samples": (meta.get("dataset") or {}).get("samples"),
                    "evaluators": [e.get("label") for e in meta.get("evaluators", [])],
                    "aggregates": meta.get("aggregates", {}),
                }
            )
        return self.out(rows)

    def compare(
        self, base: str | None = None, run: str | None = None, *, resamples: Any = None, seed: Any = None
    ) -> dict[str, Any]:
        from cairn.evaluate import compare_runs, load_eval_run

        if not base or not run:
            raise ValidationError("a comparison needs two eval runs", hint="give base=RUN and run=RUN (@last, @prev)")
        count = parse_count(resamples, "resamples", default=2000, ceiling=100_000)
        assert count is not None  # a default was given
        try:
            chosen_seed = int(seed) if seed not in (None, "") else 0
        except ValueError:
            raise ValidationError(f"seed must be a whole number, got {str(seed)[:40]!r}") from None
        ledger = self.state.ledger
        base_run, other = load_eval_run(ledger, base), load_eval_run(ledger, run)
        comparison = compare_runs(base_run, other, resamples=count, seed=chosen_seed)
        data = comparison.to_dict()
        data["base_name"], data["run_name"] = base_run.name, other.name
        return self.out(data)


def _record(value: Any) -> dict[str, Any]:
    import attrs

    return attrs.asdict(value) if attrs.has(type(value)) else dict(value)


def _since(value: str | None) -> str | None:
    """An ISO time or an age (``7d``) as a stored time; None for no bound."""
    if not value:
        return None
    from cairn.ledger import parse_age, time_ago
    from cairn.model import format_time, parse_time

    try:
        return time_ago(parse_age(value))
    except ValidationError:
        return format_time(parse_time(value))
