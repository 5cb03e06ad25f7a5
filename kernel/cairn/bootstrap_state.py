"""The bootstrap state: everything a UI needs to render a project as empty, blocked or ready, with no network.

``bootstrap(path)`` (``cairn.bootstrap()``, ``cairn status --json``) reads
the configuration, the plugins, the store and the ledger, and returns one
JSON-ready dict in the shape ``docs/bootstrap.schema.json`` describes:

- ``config``: the files read and every problem, located (file, line, table, key);
- ``plugins``: each plugin's status (ok, failing, broken, blocked) and why;
- ``storage``: the backend, whether it opened, its stats, branch and HEAD;
- ``providers``: the chosen LLM and embedding providers, ready or blocked
  with the reason (a missing environment variable's name, a package to install);
- ``tools``, ``skills``, ``mcp_servers``: the configured ones and whether each is usable;
- ``sessions``: ``cairn.sessions.summary(repo)`` when that module is installed, else null;
- ``memory``: facts, episodes and vectors when any are stored, else null;
- ``spend``: tokens and cost today (UTC), over 7 days, by provider and model;
- ``budget`` and ``compaction``: the settings in force;
- ``state``: ``blocked`` (something must be fixed before an agent can run;
  ``reasons`` says what), ``empty`` (runnable, nothing committed yet) or ``ready``.

Nothing here calls a provider or opens a connection: a provider's readiness
is the check it makes before any call (``readiness()``). A section that
cannot be read becomes a reason, never an exception.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.plugins import Plugins
    from cairn.repo import Repo

__all__ = ["SCHEMA_VERSION", "bootstrap", "bootstrap_state"]

#: Bumped when a field is removed or changes meaning (adding one does not).
SCHEMA_VERSION = 1


def bootstrap(path: str | Path | None = None, **load_options: Any) -> dict[str, Any]:
    """The bootstrap state of the project at ``path`` (found from the working directory by default)."""
    import os

    from cairn.config import load_config
    from cairn.errors import ConfigError
    from cairn.plugins import load_plugins

    try:
        config = load_config(path, **load_options)
    except ConfigError as exc:  # the files cannot even be read: nothing else can be said
        return _unreadable(exc)
    disabled: list[str] = []
    strict = False
    try:
        disabled, strict = list(config.cairn.disabled_plugins), config.cairn.strict_plugins
    except ConfigError:
        pass  # reported with the config's problems
    plugins = load_plugins(disabled=disabled, strict=strict, environ=os.environ)
    return bootstrap_state(config, plugins)


def _unreadable(exc: Any) -> dict[str, Any]:
    from cairn._version import kernel_version

    problem = _problem(exc)
    return {
        "schema_version": SCHEMA_VERSION,
        "cairn_version": kernel_version(),
        "state": "blocked",
        "reasons": [f"configuration: {exc.message}"],
        "project": {"directory": None, "data_dir": None},
        "config": {"files": [], "problems": [problem]},
        "plugins": [],
        "storage": None,
        "providers": {"llm": None, "embeddings": None},
        "tools": [],
        "skills": [],
        "mcp_servers": [],
        "sessions": None,
        "memory": None,
        "spend": None,
        "budget": None,
        "compaction": None,
    }


def _problem(exc: Any) -> dict[str, Any]:
    return {
        "message": getattr(exc, "problem", None) or exc.message,
        "file": getattr(exc, "file", None),
        "line": getattr(exc, "line", None),
        "table": getattr(exc, "table", None),
        "key": getattr(exc, "key", None),
        "hint": exc.hint,
    }


def bootstrap_state(config: Config, plugins: Plugins, repo: Repo | None = None) -> dict[str, Any]:
    """The bootstrap state from an already loaded configuration and plugin set (the CLI's).

    ``repo``: the project's repository when the caller has it open (its store
    is left open); otherwise one is opened here, and closed.
    """
    from cairn._version import kernel_version

    reasons: list[str] = []
    problems = plugins.check_config(config)
    for problem in problems:
        reasons.append(f"configuration: {problem.message}")
    data_dir = None
    if not any(p.table == "cairn" for p in problems):
        try:
            data_dir = config.data_dir
        except Exception:  # reported with the config's problems
            data_dir = None
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "cairn_version": kernel_version(),
        "state": "ready",
        "reasons": reasons,
        "project": {
            "directory": str(config.project_dir) if config.project_dir else None,
            "data_dir": str(data_dir) if data_dir else None,
        },
        "config": {
            "files": [str(f) for f in (config.user_file, config.project_file) if f is not None],
            "problems": [_problem(p) for p in problems],
        },
        "plugins": _plugins(plugins, data_dir),
    }
    out.update(_agents(config))
    owned = repo is None
    repo = _open_repo(config, plugins, out, reasons) if repo is None else _describe_repo(repo, config, out)
    try:
        out["providers"] = _providers(config, plugins, repo, reasons)
        out["sessions"] = _sessions(repo)
        out["memory"] = _memory(repo)
        out["spend"] = _spend(repo)
        out["budget"] = _budget(config, repo)
        out["compaction"] = _compaction(config)
    finally:
        if repo is not None and owned:
            repo.store.close()
    commits = (out["storage"] or {}).get("commits") or 0
    if reasons:
        out["state"] = "blocked"
    elif commits == 0 and not (out["sessions"] or {}).get("count"):
        out["state"] = "empty"
        reasons.append("nothing committed yet on the current branch")
    return out


def _plugins(plugins: Plugins, data_dir: Path | None) -> list[dict[str, Any]]:
    from cairn.plugin_failures import load_failures

    if data_dir is not None:
        plugins.remember_failures(load_failures(data_dir).values())
    return [
        {
            "name": info.name,
            "status": info.status,
            "reason": info.reason,
            "distribution": info.distribution,
            "version": info.version,
            "builtin": info.builtin,
        }
        for info in plugins.describe()
    ]


def _agents(config: Config) -> dict[str, Any]:
    from cairn.agent_tools import readiness_of
    from cairn.config_agents import load_agent_config

    agents, _problems = load_agent_config(config)  # their problems are among check_config's
    found = readiness_of(agents, config.project_dir or config.cwd)
    return {kind: [item.to_dict() for item in items] for kind, items in found.items()}


def _open_repo(config: Config, plugins: Plugins, out: dict[str, Any], reasons: list[str]) -> Repo | None:
    from cairn.errors import CairnError
    from cairn.repo import open_repo

    backend = None
    try:
        backend = config.cairn.storage
        repo = open_repo(config=config, plugins=plugins)
    except CairnError as exc:
        out["storage"] = {"backend": backend, "ok": False, "error": exc.message, "stats": None}
        out["storage"].update(branch=None, head=None, commits=0)
        reasons.append(f"storage: {exc.message}")
        return None
    return _describe_repo(repo, config, out)


def _describe_repo(repo: Repo, config: Config, out: dict[str, Any]) -> Repo:
    from cairn.errors import CairnError
    from cairn.storage import Maintenance, facets_of

    head = repo.head()
    storage: dict[str, Any] = {"backend": config.cairn.storage, "ok": True, "error": None, "stats": None}
    storage["facets"] = sorted(facets_of(repo.store))
    if isinstance(repo.store, Maintenance):
        try:
            stats = repo.store.stats()
            storage["stats"] = {
                "blobs": stats.blobs,
                "commits": stats.commits,
                "refs": stats.refs,
                "annotations": stats.annotations,
                "bytes": stats.bytes,
            }
        except CairnError as exc:
            storage["error"] = exc.message
    storage.update(branch=repo.branch, head=head.hash if head else None, commits=head.depth + 1 if head else 0)
    out["storage"] = storage
    return repo


def _providers(config: Config, plugins: Plugins, repo: Repo | None, reasons: list[str]) -> dict[str, Any]:
    from cairn.errors import CairnError

    chosen: dict[str, Any] = {"llm": None, "embeddings": None}
    if repo is None:
        return chosen
    from cairn.providers import Providers

    try:
        with Providers(config, plugins, store=repo.store, tokenizer=repo.tokenizer) as providers:
            infos = providers.describe(chosen_only=True)
    except CairnError as exc:
        reasons.append(f"providers: {exc.message}")
        return chosen
    for info in infos:
        if info.selected:
            chosen[info.kind] = {
                "name": info.name,
                "plugin": info.plugin,
                "model": info.model,
                "ready": info.ready,
                "problem": info.problem,
            }
    llm = chosen["llm"]
    if llm is None:
        reasons.append(f"llm: no provider called {config.cairn.llm!r} is installed")
    elif not llm["ready"]:
        reasons.append(f"llm {llm['name']}: {llm['problem']}")
    return chosen


def _sessions(repo: Repo | None) -> dict[str, Any] | None:
    """``cairn.sessions.summary(repo)`` when the sessions module is installed, else None."""
    if repo is None:
        return None
    import importlib

    try:
        sessions = importlib.import_module("cairn.sessions")
    except ImportError:
        return None
    summary = getattr(sessions, "summary", None)
    return dict(summary(repo)) if callable(summary) else None


def _memory(repo: Repo | None) -> dict[str, Any] | None:
    if repo is None:
        return None
    from cairn.memory.sources import MEMORY_BRANCH
    from cairn.storage import VectorStore, branch_ref

    vectors = sum(repo.store.vector_counts().values()) if isinstance(repo.store, VectorStore) else 0
    if repo.refs.get_ref(branch_ref(MEMORY_BRANCH)) is None and not vectors:
        return None
    from cairn.memory.tiers import MemoryBranch
    from cairn.model.memory import Episode, Fact

    items = MemoryBranch.of(repo).items()
    return {
        "facts": sum(isinstance(m.content, Fact) for m in items),
        "episodes": sum(isinstance(m.content, Episode) for m in items),
        "vectors": vectors,
    }


def _spend(repo: Repo | None) -> dict[str, Any] | None:
    from cairn.storage import RunStore

    if repo is None or not isinstance(repo.store, RunStore):
        return None
    today = dt.datetime.now(dt.timezone.utc).date()
    week_start = (today - dt.timedelta(days=6)).isoformat()
    records = repo.store.spend(since=week_start + "T00:00:00")
    by: dict[tuple[str, str], list[Any]] = {}
    for record in records:
        by.setdefault((record.provider, record.model), []).append(record)
    return {
        "today": _totals(r for r in records if r.day == today.isoformat()),
        "last_7_days": _totals(records),
        "by_model": [
            {"provider": provider, "model": model, **_totals(group)} for (provider, model), group in sorted(by.items())
        ],
    }


def _totals(records: Iterable[Any]) -> dict[str, Any]:
    """Calls, tokens and cost; ``cost`` is None when any call's price is unknown (``priced_cost`` sums the rest)."""
    calls = input_tokens = output_tokens = unpriced = 0
    priced = 0.0
    for record in records:
        calls += record.calls
        input_tokens += record.input_tokens
        output_tokens += record.output_tokens
        if record.cost is None:
            unpriced += record.calls
        else:
            priced += record.cost
    priced = round(priced, 10)
    return {
        "calls": calls,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost": priced if unpriced == 0 else None,
        "priced_cost": priced,
        "unpriced_calls": unpriced,
    }


def _budget(config: Config, repo: Repo | None) -> dict[str, Any] | None:
    from cairn.config_tables import ProvidersSettings
    from cairn.errors import ConfigError

    try:
        context, providers = config.context, config.settings("providers", ProvidersSettings)
    except ConfigError:
        return None
    return {
        "max_tokens": context.max_tokens,
        "budget_action": context.budget_action,
        "effective_tokens": repo.effective_tokens(repo.head()) if repo is not None else None,
        "max_spend_per_day": providers.max_spend_per_day,
        "max_spend_per_run": providers.max_spend_per_run,
    }


def _compaction(config: Config) -> dict[str, Any]:
    """``[context] compact_at`` and ``compact_keep_last`` as the config object has them (None when it has not)."""
    from cairn.errors import ConfigError

    try:
        context = config.context
    except ConfigError:
        return {"compact_at": None, "compact_keep_last": None}
    return {
        "compact_at": getattr(context, "compact_at", None),
        "compact_keep_last": getattr(context, "compact_keep_last", None),
    }
