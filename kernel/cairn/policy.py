"""The policy: named rules from ``[policy]``, and ``evaluate``, a pure function from an action to a decision.

An ``Action`` is what is about to happen, as metadata only: its kind
(``provider`` call, ``tool`` use, ``exec`` of an execution module, ``push``
of the ledger), its name (provider, tool, module, remote), the model, the
scopes it touches, estimated tokens and cost, the directive it runs under,
and digests of anything bigger. Its ``hash`` identifies it exactly, so an
approval given for one action never approves another.

``evaluate(policy, action, context)`` returns a ``Decision``: ``allow``,
``deny`` or ``needs-approval``, the rule that decided and why. It reads
nothing but its arguments, so the same inputs always give the same
decision (``cairn policy check`` runs it offline). In order:

1. the directive the action runs under: not running, outside its scope, or
   over its budget (tokens, cost, wall time, counting what the action is
   estimated to add) -> ``deny`` (rules ``directive``, ``directive-scope``,
   ``directive-budget``);
2. the rules that match: the most restrictive decides (deny, then
   needs-approval, then allow); between equals, the first written;
3. no rule matches -> ``[policy] default``.

A rule matches when every condition it sets holds; see docs/governance.md.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from cairn.config_tables import PolicySettings
from cairn.errors import ConfigError, ValidationError
from cairn.model import canonical_json, parse_time, sha256_hex
from cairn.model.governance import Directive

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config

__all__ = [
    "ACTION_KINDS",
    "DECISIONS",
    "Action",
    "Context",
    "Decision",
    "Policy",
    "Rule",
    "check_policy",
    "evaluate",
    "load_policy",
]

ACTION_KINDS = ("provider", "tool", "exec", "push")
DECISIONS = ("allow", "deny", "needs-approval")
_RANK = {"deny": 0, "needs-approval": 1, "allow": 2}
_PATTERN_KEYS = {
    "names": "name",
    "providers": "name",
    "models": "model",
    "tools": "name",
    "executors": "name",
    "remotes": "name",
}
_RULE_KEYS = (
    "action",
    "decision",
    "reason",
    "names",
    "providers",
    "models",
    "tools",
    "executors",
    "remotes",
    "scopes",
    "cost_over",
    "tokens_over",
    "hours",
    "directive",
)


def _tuple(value: Iterable[str]) -> tuple[str, ...]:
    # A typed converter: with converter=tuple, mypy's attrs plugin types the argument Iterable[_T_co] and refuses all.
    return tuple(value)


@attrs.frozen
class Action:
    """An action about to happen, as metadata (never a body or a secret)."""

    kind: str = attrs.field(validator=attrs.validators.in_(ACTION_KINDS))
    name: str
    model: str | None = None
    scopes: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    tokens: int | None = None
    cost: float | None = None
    directive: str | None = None
    #: Digests and counts that tell this action from another of the same name (``input_sha256`` ...).
    details: dict[str, Any] = attrs.field(factory=dict)
    _digest: str | None = attrs.field(default=None, init=False, eq=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "model": self.model,
            "scopes": list(self.scopes),
            "tokens": self.tokens,
            "cost": self.cost,
            "directive": self.directive,
            "details": dict(self.details),
        }

    @property
    def hash(self) -> str:
        """SHA-256 of the action's canonical JSON: what an approval is bound to (computed once)."""
        if self._digest is None:
            object.__setattr__(self, "_digest", sha256_hex(canonical_json(self.to_dict(), check_keys=False)))
        assert self._digest is not None
        return self._digest

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Action:
        """An action from JSON (``cairn policy check``); unknown keys and wrong types are a ``ValidationError``."""
        if not isinstance(data, Mapping):
            raise ValidationError("an action is a JSON object", hint='e.g. {"kind": "provider", "name": "openai"}')
        fields = {f.name for f in attrs.fields(cls) if f.init}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValidationError(
                f"unknown action key(s): {', '.join(unknown)}", hint=f"keys: {', '.join(sorted(fields))}"
            )
        if data.get("kind") not in ACTION_KINDS:
            raise ValidationError(f"action kind must be one of {', '.join(ACTION_KINDS)}, got {data.get('kind')!r}")
        if not isinstance(data.get("name"), str):
            raise ValidationError("an action needs a name (the provider, tool, module or remote)")
        for key, kind in (("tokens", int), ("cost", (int, float))):
            value = data.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
                raise ValidationError(f"action {key} must be a number, got {value!r:.40}")
        return cls(**dict(data))


@attrs.frozen
class Context:
    """What ``evaluate`` knows besides the action: the time, and the directive with what it used so far."""

    time: str
    directive: Directive | None = None
    directive_status: str | None = None
    #: Tokens and cost spent so far under the directive, and when it started running.
    spent_tokens: int = 0
    spent_cost: float = 0.0
    started_at: str | None = None


@attrs.frozen
class Decision:
    """What the gate decided: the outcome, the rule that decided, why, and the policy version."""

    outcome: str
    rule: str
    reason: str
    policy_version: int
    action_hash: str
    approval: str | None = None  # the approval that let it through, or that it waits for

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Rule:
    """One named rule: the conditions it matches on, and its decision."""

    name: str
    decision: str
    reason: str
    actions: tuple[str, ...] = ()
    patterns: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (action field, globs)
    scopes: tuple[str, ...] = ()
    cost_over: float | None = None
    tokens_over: int | None = None
    hours: tuple[int, int] | None = None
    directive: bool | None = None

    def matches(self, action: Action, moment: _dt.datetime) -> bool:
        if self.actions and action.kind not in self.actions and "*" not in self.actions:
            return False
        for field, globs in self.patterns:
            value = getattr(action, field)
            if value is None or not any(fnmatch.fnmatchcase(value, g) for g in globs):
                return False
        if self.scopes and not set(self.scopes) & set(action.scopes):
            return False
        if self.cost_over is not None:
            if action.cost is None:
                if action.kind != "provider":
                    return False
                # a provider call of unknown price counts as over any cost limit
            elif action.cost <= self.cost_over:
                return False
        if self.tokens_over is not None and (action.tokens or 0) <= self.tokens_over:
            return False
        if self.hours is not None:
            start, end = self.hours
            hour = moment.hour
            inside = start <= hour < end if start < end else (hour >= start or hour < end)
            if not inside:
                return False
        return self.directive is None or self.directive == (action.directive is not None)


@attrs.frozen
class Policy:
    """The rules in the order written, the default decision and the version."""

    version: int = 0
    default: str = "allow"
    rules: tuple[Rule, ...] = ()
    approval_ttl: str = "1h"
    idempotency_ttl: str = "7d"
    claim_ttl: str = "1h"


def evaluate(policy: Policy, action: Action, context: Context) -> Decision:
    """The decision on ``action``: a pure function of its arguments (see the module docstring)."""

    def decided(outcome: str, rule: str, reason: str) -> Decision:
        return Decision(outcome, rule, reason, policy.version, action.hash)

    directive = context.directive
    if action.directive is not None:
        if directive is None or directive.id != action.directive:
            return decided("deny", "directive", f"directive {action.directive} is not known here")
        if context.directive_status != "running":
            return decided("deny", "directive", f"directive {directive.id} is {context.directive_status}, not running")
        scope_kind = {"provider": "providers", "tool": "tools", "exec": "executors", "push": "remotes"}[action.kind]
        if not directive.allows(scope_kind, action.name):
            return decided(
                "deny", "directive-scope", f"{action.kind} {action.name!r} is outside the directive's {scope_kind}"
            )
        if action.model is not None and not directive.allows("models", action.model):
            return decided("deny", "directive-scope", f"model {action.model!r} is outside the directive's models")
        for path in action.details.get("paths", ()):
            if not directive.allows("paths", path):
                return decided("deny", "directive-scope", f"path {path!r} is outside the directive's paths")
        budget = directive.budget
        if "tokens" in budget and context.spent_tokens + (action.tokens or 0) > budget["tokens"]:
            return decided(
                "deny",
                "directive-budget",
                f"{context.spent_tokens} tokens spent + {action.tokens or 0} estimated is over the directive's "
                f"{budget['tokens']:g}",
            )
        if "cost" in budget:
            if action.kind == "provider" and action.cost is None:
                return decided("deny", "directive-budget", "the call's cost is unknown, so the cost budget cannot hold")
            if context.spent_cost + (action.cost or 0) > budget["cost"]:
                return decided(
                    "deny",
                    "directive-budget",
                    f"{context.spent_cost:.6f} spent + {action.cost or 0:.6f} estimated is over the directive's "
                    f"{budget['cost']:g}",
                )
        if "wall_time_s" in budget and context.started_at is not None:
            elapsed = (parse_time(context.time) - parse_time(context.started_at)).total_seconds()
            if elapsed > budget["wall_time_s"]:
                return decided(
                    "deny",
                    "directive-budget",
                    f"{elapsed:.0f} s since it started, over its {budget['wall_time_s']:g} s",
                )
    moment = parse_time(context.time)
    best: Rule | None = None
    for rule in policy.rules:
        if rule.matches(action, moment) and (best is None or _RANK[rule.decision] < _RANK[best.decision]):
            best = rule
    if best is None:
        return decided(policy.default, "default", f"no rule matched; [policy] default = {policy.default!r}")
    return decided(best.decision, best.name, best.reason)


# -- loading ----------------------------------------------------------------------------------------


def load_policy(config: Config) -> Policy:
    """The policy of ``[policy]`` in ``config``; a bad rule is a ``ConfigError`` naming file, line, table and key."""
    settings = config.settings("policy", PolicySettings)
    rules = []
    for name, table in settings.rules.items():
        rules.append(_rule(config, name, table))
    return Policy(
        version=settings.version,
        default=settings.default,
        rules=tuple(rules),
        approval_ttl=settings.approval_ttl,
        idempotency_ttl=settings.idempotency_ttl,
        claim_ttl=settings.claim_ttl,
    )


def _rule(config: Config, name: str, table: Any) -> Rule:
    where = ("policy", "rules", name)

    def error(message: str, key: str | None, hint: str) -> ConfigError:
        return config.error(message, where, key, hint=hint)

    if not isinstance(table, Mapping):
        raise error(f"rule {name!r} must be a table", None, f"write it as [policy.rules.{name}]")
    unknown = [k for k in table if k not in _RULE_KEYS]
    if unknown:
        raise error(f"unknown key {unknown[0]!r} in rule {name!r}", unknown[0], f"rule keys: {', '.join(_RULE_KEYS)}")
    decision = table.get("decision")
    if decision not in DECISIONS:
        raise error(
            f"rule {name!r}: decision must be one of {', '.join(DECISIONS)}, got {decision!r}",
            "decision" if "decision" in table else None,
            'e.g. decision = "needs-approval"',
        )
    reason = table.get("reason", f"rule {name}")
    if not isinstance(reason, str):
        raise error(f"rule {name!r}: reason must be text", "reason", 'e.g. reason = "costly calls need a person"')

    def strings(key: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise error(
                f"rule {name!r}: {key} must be a list of names (glob patterns allowed)", key, f'e.g. {key} = ["a*"]'
            )
        return tuple(value)

    actions = strings("action")
    for kind in actions:
        if kind not in (*ACTION_KINDS, "*"):
            raise error(
                f"rule {name!r}: unknown action {kind!r}", "action", f'actions: {", ".join(ACTION_KINDS)} or "*"'
            )
    patterns = tuple((_PATTERN_KEYS[k], strings(k)) for k in _PATTERN_KEYS if k in table)

    def number(key: str) -> float | None:
        value = table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise error(
                f"rule {name!r}: {key} must be a number, 0 or more, got {value!r:.40}", key, f"e.g. {key} = 0.05"
            )
        return value

    tokens_over = number("tokens_over")
    hours = table.get("hours")
    if hours is not None:
        hours = _hours(hours)
        if hours is None:
            raise error(
                f'rule {name!r}: hours must be a UTC window "HH-HH", got {table["hours"]!r:.40}',
                "hours",
                'e.g. hours = "22-06" (from 22:00 to 06:00 UTC)',
            )
    directive = table.get("directive")
    if directive is not None and not isinstance(directive, bool):
        raise error(
            f"rule {name!r}: directive must be true or false", "directive", "true: only actions under a directive"
        )
    return Rule(
        name=name,
        decision=decision,
        reason=reason,
        actions=actions,
        patterns=patterns,
        scopes=strings("scopes"),
        cost_over=number("cost_over"),
        tokens_over=int(tokens_over) if tokens_over is not None else None,
        hours=hours,
        directive=directive,
    )


def _hours(value: Any) -> tuple[int, int] | None:
    if not isinstance(value, str):
        return None
    start, sep, end = value.partition("-")
    if not sep or not start.strip().isdigit() or not end.strip().isdigit():
        return None
    a, b = int(start), int(end)
    return (a, b) if 0 <= a <= 23 and 0 <= b <= 24 and a != b else None


def check_policy(config: Config) -> Sequence[ConfigError]:
    """Every problem ``load_policy`` would raise (the first per rule), for ``cairn config validate``."""
    try:
        load_policy(config)
    except ConfigError as exc:
        return [exc]
    return []
