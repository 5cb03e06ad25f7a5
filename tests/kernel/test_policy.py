"""The policy: loading [policy] with located errors, and evaluate as a pure, deterministic function."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.config import load_config
from cairn.errors import ConfigError, ValidationError
from cairn.model.governance import Directive
from cairn.policy import ACTION_KINDS, Action, Context, Policy, Rule, evaluate, load_policy

NOON = "2026-01-01T12:00:00.000000Z"
NIGHT = "2026-01-01T23:30:00.000000Z"


def policy_from(tmp_path: Path, text: str) -> Policy:
    (tmp_path / "cairn.toml").write_text('[cairn]\nstorage = "sqlite"\n\n' + text)
    return load_policy(load_config(tmp_path, environ={}))


RULES = """
[policy]
version = 4
default = "allow"

[policy.rules.night]
action = "provider"
hours = "22-06"
decision = "deny"
reason = "no calls at night"

[policy.rules.costly]
action = ["provider"]
cost_over = 0.01
decision = "needs-approval"
reason = "costly calls need a person"

[policy.rules.shell]
action = "exec"
executors = ["shell"]
decision = "needs-approval"

[policy.rules.no-prod]
scopes = ["prod:*", "prod"]
decision = "deny"
reason = "nothing touches prod"
"""


def test_rules_load_in_order_and_decide(tmp_path: Path, cairn_env: Path) -> None:
    policy = policy_from(tmp_path, RULES)
    assert (policy.version, [r.name for r in policy.rules]) == (4, ["night", "costly", "shell", "no-prod"])
    cheap = Action("provider", "openai", model="gpt-4o-mini", tokens=100, cost=0.001)
    dear = Action("provider", "openai", model="gpt-4o", tokens=100_000, cost=0.5)
    assert evaluate(policy, cheap, Context(NOON)).outcome == "allow"
    decided = evaluate(policy, dear, Context(NOON))
    assert (decided.outcome, decided.rule, decided.reason, decided.policy_version) == (
        "needs-approval",
        "costly",
        "costly calls need a person",
        4,
    )
    # deny beats needs-approval, whichever is written first
    assert evaluate(policy, dear, Context(NIGHT)).rule == "night"
    assert evaluate(policy, Action("exec", "shell", scopes=["prod"]), Context(NOON)).rule == "no-prod"
    assert evaluate(policy, Action("exec", "shell"), Context(NOON)).outcome == "needs-approval"
    unpriced = Action("provider", "local", model="m", tokens=5, cost=None)
    assert evaluate(policy, unpriced, Context(NOON)).rule == "costly"  # an unknown price counts as over


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('[policy.rules.a]\ndecision = "maybe"\n', 5, "decision must be one of allow, deny, needs-approval"),
        ('[policy.rules.a]\ndecision = "deny"\nacton = "exec"\n', 6, "unknown key 'acton'"),
        ('[policy.rules.a]\ndecision = "deny"\naction = "fly"\n', 6, "unknown action 'fly'"),
        ('[policy.rules.a]\ndecision = "deny"\nhours = "25-3"\n', 6, 'hours must be a UTC window "HH-HH"'),
        ('[policy.rules.a]\ndecision = "deny"\ncost_over = -1\n', 6, "cost_over must be a number, 0 or more"),
        ('[policy.rules.a]\ndecision = "deny"\ntools = "x"\ntools2 = 1\n', 7, "unknown key 'tools2'"),
        ('[policy]\ndefault = "perhaps"\n', 5, "default"),
        ('[policy]\napproval_ttl = "soon"\n', 5, "approval_ttl must be an age"),
    ],
)
def test_a_bad_policy_is_an_error_naming_file_and_line(tmp_path: Path, cairn_env: Path, text, line, message) -> None:
    with pytest.raises(ConfigError) as raised:
        policy_from(tmp_path, text)
    assert raised.value.file == str(tmp_path / "cairn.toml")
    assert raised.value.line == line, raised.value
    assert message in str(raised.value)


def test_the_directive_bounds_every_action(tmp_path: Path) -> None:
    directive = Directive(
        intent="tidy logs",
        created_by="ann",
        created_at=NOON,
        scope={"executors": ["shell"], "models": ["gpt-4o-mini"]},
        budget={"tokens": 1000, "cost": 0.1, "wall_time_s": 60},
    )
    running = Context(NOON, directive, "running", spent_tokens=900, spent_cost=0.05, started_at=NOON)
    policy = Policy()

    def outcome(action: Action, context: Context = running) -> tuple[str, str]:
        decided = evaluate(policy, action, context)
        return decided.outcome, decided.rule

    under = {"directive": directive.id}
    assert outcome(Action("exec", "shell", **under)) == ("allow", "default")
    assert outcome(Action("exec", "http", **under)) == ("deny", "directive-scope")
    assert outcome(Action("provider", "openai", model="gpt-4o", tokens=1, cost=0.0, **under)) == (
        "deny",
        "directive-scope",
    )
    assert outcome(Action("provider", "openai", model="gpt-4o-mini", tokens=200, cost=0.0, **under)) == (
        "deny",
        "directive-budget",
    )
    assert outcome(Action("provider", "openai", model="gpt-4o-mini", tokens=10, cost=0.06, **under)) == (
        "deny",
        "directive-budget",
    )
    assert outcome(Action("provider", "openai", model="gpt-4o-mini", tokens=10, cost=0.01, **under)) == (
        "allow",
        "default",
    )
    late = Context("2026-01-01T12:02:00.000000Z", directive, "running", started_at=NOON)
    assert outcome(Action("exec", "shell", **under), late) == ("deny", "directive-budget")
    draft = Context(NOON, directive, "approved")
    assert outcome(Action("exec", "shell", **under), draft) == ("deny", "directive")
    assert outcome(Action("exec", "shell", directive="dir_0000000000000000")) == ("deny", "directive")


def test_actions_from_json_are_checked() -> None:
    for data, message in [
        ({"kind": "provider"}, "needs a name"),
        ({"kind": "nope", "name": "x"}, "action kind must be one of"),
        ({"kind": "exec", "name": "x", "bogus": 1}, "unknown action key(s): bogus"),
        ({"kind": "exec", "name": "x", "cost": "free"}, "cost must be a number"),
        ([], "a JSON object"),
    ]:
        with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
            Action.from_dict(data)  # type: ignore[arg-type]


names = st.sampled_from(["openai", "local", "shell", "http", "origin", "x*y"])
actions = st.builds(
    Action,
    kind=st.sampled_from(ACTION_KINDS),
    name=names,
    model=st.one_of(st.none(), st.sampled_from(["gpt-4o", "gpt-4o-mini"])),
    scopes=st.lists(st.sampled_from(["fs", "net", "prod"]), max_size=2),
    tokens=st.one_of(st.none(), st.integers(0, 10**6)),
    cost=st.one_of(st.none(), st.floats(0, 10, allow_nan=False)),
)
rules = st.builds(
    Rule,
    name=st.text("abcdef", min_size=1, max_size=4),
    decision=st.sampled_from(["allow", "deny", "needs-approval"]),
    reason=st.just("r"),
    actions=st.lists(st.sampled_from([*ACTION_KINDS, "*"]), max_size=2).map(tuple),
    scopes=st.lists(st.sampled_from(["fs", "net", "prod"]), max_size=2).map(tuple),
    cost_over=st.one_of(st.none(), st.floats(0, 5, allow_nan=False)),
    tokens_over=st.one_of(st.none(), st.integers(0, 10**5)),
    hours=st.one_of(st.none(), st.tuples(st.integers(0, 23), st.integers(0, 23)).filter(lambda h: h[0] != h[1])),
)
times = st.sampled_from([NOON, NIGHT, "2026-06-30T03:15:00.000000Z"])


@settings(max_examples=300, deadline=None)
@given(
    policy_rules=st.lists(rules, max_size=6),
    action=actions,
    moment=times,
    default=st.sampled_from(["allow", "deny", "needs-approval"]),
)
def test_evaluation_is_pure_and_the_most_restrictive_match_decides(policy_rules, action, moment, default) -> None:
    policy = Policy(version=1, default=default, rules=tuple(policy_rules))
    first = evaluate(policy, action, Context(moment))
    assert evaluate(policy, action, Context(moment)) == first  # the same inputs, the same decision
    assert first.action_hash == action.hash and first.policy_version == 1
    from cairn.model import parse_time

    matching = [r for r in policy_rules if r.matches(action, parse_time(moment))]
    if not matching:
        assert (first.outcome, first.rule) == (default, "default")
    else:
        worst = min(matching, key=lambda r: ["deny", "needs-approval", "allow"].index(r.decision))
        assert first.outcome == worst.decision
        assert first.rule == next(r.name for r in matching if r.decision == worst.decision)
    # reversing the rules never changes the outcome (only which equal rule is named)
    assert evaluate(Policy(1, default, tuple(reversed(policy_rules))), action, Context(moment)).outcome == first.outcome
