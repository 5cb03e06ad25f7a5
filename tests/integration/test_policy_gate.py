"""The policy gate in the kernel's provider path: approvals, expiry, denial, bad policies; `cairn policy`."""

from __future__ import annotations

import time

import pytest
from test_ask import KEY, KEY_ENV
from test_directives import fails

from cairn.testing.fake_openai import FakeOpenAI

POLICY = """
[llm.openai.prices."gpt-4o-mini"]
input = 150000.0
output = 600000.0

[policy]
version = 7
approval_ttl = "{ttl}"

[policy.rules.costly]
action = "provider"
cost_over = 0.01
decision = "needs-approval"
reason = "costly calls need a person"
"""


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeOpenAI(api_key=KEY, model="gpt-4o-mini") as fake:
        yield fake


def configure(cairn, server: FakeOpenAI, ttl: str = "1h") -> None:
    path = cairn.project / "cairn.toml"
    text = path.read_text().replace('llm = "noop"', 'llm = "openai"')
    path.write_text(
        text
        + f'\n[llm.openai]\nbase_url = "{server.url}"\napi_key_env = "{KEY_ENV}"\nmodel = "gpt-4o-mini"\n'
        + POLICY.format(ttl=ttl)
    )


def complete(cairn, text: str) -> str:
    """One chat call through the kernel's provider path, in process, with the project's configuration."""
    from cairn.config import load_config
    from cairn.plugins import load_plugins
    from cairn.providers import Providers
    from cairn.testing.fakes import WordTokenizer

    config = load_config(cairn.project)
    plugins = load_plugins()
    store = plugins.create("storage", config.cairn.storage, config)
    try:
        with Providers(config, plugins, store=store, tokenizer=WordTokenizer()) as providers:
            return providers.llm().complete([{"role": "user", "content": text}]).content or ""
    finally:
        store.close()


def test_a_costly_call_waits_for_approval_and_an_approval_lets_it_through_once(cairn, server, capsys) -> None:
    from cairn.errors import ApprovalRequiredError

    configure(cairn, server)
    err = fails(cairn, capsys, "ask", "--no-stream", "hello there")
    assert "waiting for approval apr_" in err and "costly calls need a person" in err
    assert "cairn approve apr_" in err
    assert server.calls() == []  # nothing was sent
    (asked,) = cairn.json("approvals", "list")
    assert "hello there" not in str(asked)  # metadata only: never the message
    with pytest.raises(ApprovalRequiredError) as raised:
        complete(cairn, "hello there")
    waiting = cairn.json("approvals", "list")[0]
    assert waiting["id"] == raised.value.approval_id != asked["id"]
    assert waiting["status"] == "pending" and waiting["rule"] == "costly" and waiting["policy_version"] == 7
    assert waiting["action"]["kind"] == "provider" and waiting["action"]["model"] == "gpt-4o-mini"
    # trying the same call again does not park a second approval for it
    with pytest.raises(ApprovalRequiredError):
        complete(cairn, "hello there")
    assert len(cairn.json("approvals", "list")) == 2
    decided = cairn.json("approve", waiting["id"], "--reason", "fine this once")
    assert decided["status"] == "approved" and decided["decision_reason"] == "fine this once"
    assert complete(cairn, "hello there")
    assert len(server.calls()) == 1
    assert {a["id"]: a["status"] for a in cairn.json("approvals", "list", "--all")}[waiting["id"]] == "used"
    # used up: the same call waits again; a different call is a different action
    with pytest.raises(ApprovalRequiredError):
        complete(cairn, "hello there")
    with pytest.raises(ApprovalRequiredError):
        complete(cairn, "something else")
    assert len(server.calls()) == 1


def test_an_expired_approval_cannot_be_approved_and_nothing_changes(cairn, server, capsys) -> None:
    configure(cairn, server, ttl="1s")
    fails(cairn, capsys, "ask", "--no-stream", "hi")
    (waiting,) = cairn.json("approvals", "list")
    time.sleep(1.2)
    assert cairn.json("approvals", "list") == []  # expired: no longer waiting
    err = fails(cairn, capsys, "approve", waiting["id"])
    assert "expired at" in err and "nothing was changed" in err
    (stored,) = cairn.json("approvals", "list", "--all")
    assert stored["status"] == "pending" and stored["expired"] is True
    assert server.calls() == []


def test_a_denied_action_stays_denied(cairn, server, capsys) -> None:
    from cairn.errors import ApprovalRequiredError, PolicyDeniedError

    configure(cairn, server)
    with pytest.raises(ApprovalRequiredError):
        complete(cairn, "hi")
    (waiting,) = cairn.json("approvals", "list")
    cairn("deny", waiting["id"], "--reason", "not today")
    with pytest.raises(PolicyDeniedError) as raised:
        complete(cairn, "hi")
    err = str(raised.value)
    assert "policy denied provider 'openai'" in err and "denied by" in err and "not today" in err
    assert "is denied already" in fails(cairn, capsys, "approve", waiting["id"])
    assert server.calls() == []


def test_a_bad_policy_file_stops_the_call_with_file_and_line(cairn, server, capsys) -> None:
    configure(cairn, server)
    path = cairn.project / "cairn.toml"
    path.write_text(path.read_text().replace('decision = "needs-approval"', 'decision = "ask-mom"'))
    err = fails(cairn, capsys, "ask", "--no-stream", "hi")
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "ask-mom" in text)
    assert f"cairn.toml:{line}:" in err and "decision must be one of" in err
    assert server.calls() == [] and cairn.json("log") == []
    assert "decision must be one of" in fails(cairn, capsys, "config", "validate")


def test_policy_check_evaluates_offline(cairn, server, capsys) -> None:
    configure(cairn, server)
    action = cairn.project / "action.json"
    action.write_text('{"kind": "provider", "name": "openai", "model": "gpt-4o", "cost": 0.5}')
    result = cairn("policy", "check", str(action), "--json", ok=False)
    assert result.exit_code == 3
    assert '"rule": "costly"' in result.stdout
    action.write_text('{"kind": "provider", "name": "openai", "cost": 0.001}')
    assert cairn("policy", "check", str(action), ok=False).exit_code == 0
    action.write_text('{"kind": "provider",\n "name": }')
    assert "action.json:2: not JSON" in fails(cairn, capsys, "policy", "check", str(action))
    assert cairn.json("approvals", "list") == []  # offline: nothing parked


def test_ask_under_a_directive_is_a_gated_run_linked_both_ways(cairn, server, capsys) -> None:
    configure(cairn, server)
    path = cairn.project / "cairn.toml"
    path.write_text(path.read_text().replace("cost_over = 0.01", "cost_over = 100000"))  # cheap enough to go
    allowed = cairn.json("directive", "new", "answer questions", "--provider", "openai", "--max-cost", "50000")["id"]
    elsewhere = cairn.json("directive", "new", "local only", "--provider", "ollama")["id"]
    assert "is draft, not running" in fails(cairn, capsys, "ask", "--no-stream", "--directive", allowed, "hi")
    for did in (allowed, elsewhere):
        cairn("directive", "approve", did)
    cairn("ask", "--no-stream", "--directive", allowed, "hi")
    assert len(server.calls()) == 1
    (run_id,) = cairn.json("directive", "show", allowed)["runs"]
    explained = cairn.json("policy", "explain", run_id)
    assert explained["status"] == "ok"
    assert [(d["outcome"], d["rule"]) for d in explained["decisions"]] == [("allow", "default")]
    assert explained["decisions"][0]["action"]["directive"] == allowed
    err = fails(cairn, capsys, "ask", "--no-stream", "--directive", elsewhere, "hi")
    assert "outside the directive's providers" in err and "directive-scope" in err
    assert len(server.calls()) == 1  # the denied call was never sent
    (denied_run,) = cairn.json("directive", "show", elsewhere)["runs"]
    assert cairn.json("policy", "explain", denied_run)["decisions"][0]["outcome"] == "deny"
