"""Execution modules end to end: shell, http and python through `cairn exec`, the gate, directives and keys."""

from __future__ import annotations

import http.server
import json
import sys
import threading
from pathlib import Path

import attrs
import pytest
from test_directives import fails

from cairn.executor import ExecResult, Executor, check_input
from cairn.hookspecs import hookimpl


def exec_json(cairn, module: str, data: dict, *extra: str, code: int = 0) -> dict:
    result = cairn("exec", module, "--input", json.dumps(data), "--json", *extra, ok=False)
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def add_config(cairn, text: str) -> None:
    path = cairn.project / "cairn.toml"
    path.write_text(path.read_text() + "\n" + text)


def test_shell_runs_an_argument_list_and_records_a_run(cairn, monkeypatch) -> None:
    monkeypatch.setenv("DEPLOY_API_KEY", "sk-very-secret-value-123")
    out = exec_json(
        cairn, "shell", {"argv": [sys.executable, "-c", "import os; print(os.environ['DEPLOY_API_KEY'], 'ok')"]}
    )
    assert out["status"] == "ok" and out["output"]["exit_code"] == 0
    assert "sk-very-secret-value-123" not in json.dumps(out) and "ok" in out["output"]["stdout"]
    (run,) = cairn.json("runs", "list")
    assert (run["run_id"], run["type"], run["subtype"], run["status"]) == (out["run_id"], "exec", "shell", "ok")
    from cairn.ledger import open_ledger

    with open_ledger(cairn.project) as ledger:
        events = [(e.type, json.dumps(e.fields)) for e in ledger.events(out["run_id"])]
    assert [t for t, _ in events] == ["policy:decision", "exec.start", "exec.result"]
    assert not any("sk-very-secret-value-123" in fields for _, fields in events)


def test_a_shell_string_is_refused_and_nothing_is_recorded(cairn, capsys) -> None:
    assert "input.argv must be array" in fails(cairn, capsys, "exec", "shell", "--input", '{"argv": "rm -rf /"}')
    assert "unknown key 'shell'" in fails(cairn, capsys, "exec", "shell", "--input", '{"argv": ["ls"], "shell": true}')
    assert "--input is not JSON" in fails(cairn, capsys, "exec", "shell", "--input", "{argv")
    assert "no execution module 'nope'" in fails(cairn, capsys, "exec", "nope")
    add_config(cairn, '[exec.shell]\nprograms = ["echo"]\n')
    assert "is not in [exec.shell] programs" in fails(cairn, capsys, "exec", "shell", "--input", '{"argv": ["ls"]}')
    assert cairn.json("runs", "list") == []


def test_timeouts_and_failures_map_onto_run_statuses(cairn) -> None:
    slow = exec_json(
        cairn, "shell", {"argv": [sys.executable, "-c", "import time; time.sleep(30)"], "timeout_s": 0.5}, code=1
    )
    assert slow["status"] == "timed_out" and "killed" in slow["error"]
    failed = exec_json(cairn, "shell", {"argv": [sys.executable, "-c", "raise SystemExit(3)"]}, code=1)
    assert failed["status"] == "failed" and failed["output"]["exit_code"] == 3
    statuses = {r["run_id"]: r["status"] for r in cairn.json("runs", "list")}
    assert statuses == {slow["run_id"]: "failed", failed["run_id"]: "failed"}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/big":
            body = b"x" * 5000
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "http://example.invalid/")
            self.end_headers()
            return
        else:
            body = b'{"hello": "world"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_reaches_only_allowed_urls_within_its_size_limit(cairn, web, capsys) -> None:
    assert "is not in [exec.http] allow" in fails(
        cairn, capsys, "exec", "http", "--input", json.dumps({"url": web + "/"})
    )
    add_config(cairn, f'[exec.http]\nallow = ["{web}/*"]\nmax_bytes = 1000\n')
    ok = exec_json(cairn, "http", {"url": web + "/hello"})
    assert ok["output"]["status"] == 200 and json.loads(ok["output"]["body"]) == {"hello": "world"}
    big = exec_json(cairn, "http", {"url": web + "/big"}, code=1)
    assert big["status"] == "failed" and "max_bytes = 1000" in big["error"]
    moved = exec_json(cairn, "http", {"url": web + "/moved"})
    assert moved["output"]["status"] == 302  # not followed: a redirect never leaves the allowlist
    assert "is not in [exec.http] allow" in fails(
        cairn, capsys, "exec", "http", "--input", json.dumps({"url": "http://example.invalid/"})
    )


def test_python_calls_an_allowed_entry_point_in_a_subprocess(cairn, capsys) -> None:
    (cairn.project / "tasks_mod.py").write_text("def add(a, b):\n    print('adding')\n    return {'sum': a + b}\n")
    entry = {"entry": "tasks_mod:add", "args": {"a": 2, "b": 3}}
    assert "is not in [exec.python] entries" in fails(cairn, capsys, "exec", "python", "--input", json.dumps(entry))
    add_config(cairn, '[exec.python]\nentries = ["tasks_mod:*"]\n')
    out = exec_json(cairn, "python", entry)
    assert out["output"]["result"] == {"sum": 5} and out["output"]["stdout"].strip() == "adding"
    broken = exec_json(cairn, "python", {"entry": "tasks_mod:add", "args": {"a": 1}}, code=1)
    assert broken["status"] == "failed" and "TypeError" in broken["output"]["stderr"]


GATED = """
[policy]
version = 3

[policy.rules.shell-needs-a-person]
action = "exec"
executors = ["shell"]
decision = "needs-approval"
reason = "programs run only when a person says so"
"""


def test_an_exec_waits_for_approval_then_runs_once_under_its_key(cairn, capsys) -> None:
    add_config(cairn, GATED)
    marker = cairn.project / "ran.txt"
    data = json.dumps({"argv": [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x')"]})
    err = fails(cairn, capsys, "exec", "shell", "--input", data, "--idempotency-key", "job-1")
    assert "waiting for approval apr_" in err and not marker.exists()
    (waiting,) = cairn.json("approvals", "list")
    (stopped,) = cairn.json("runs", "list")
    assert stopped["status"] == "failed" and "policy gate" in stopped["summary"]
    explained = cairn.json("policy", "explain", stopped["run_id"])
    assert [(d["outcome"], d["rule"], d["policy_version"]) for d in explained["decisions"]] == [
        ("needs-approval", "shell-needs-a-person", 3)
    ]
    cairn("approve", waiting["id"])
    first = exec_json(cairn, "shell", json.loads(data), "--idempotency-key", "job-1")
    again = exec_json(cairn, "shell", json.loads(data), "--idempotency-key", "job-1")
    assert marker.read_text() == "x"  # acted once
    assert (first["replayed"], again["replayed"], again["original_run_id"]) == (False, True, first["run_id"])
    reason = [d["reason"] for d in cairn.json("policy", "explain", first["run_id"])["decisions"]]
    assert reason and reason[0].startswith("approved by")
    # the same key for another action is refused and runs nothing
    other = json.dumps({"argv": [sys.executable, "-c", "pass"]})
    assert "was used for a different action" in fails(
        cairn, capsys, "exec", "shell", "--input", other, "--idempotency-key", "job-1"
    )


def test_a_directive_bounds_what_runs_under_it(cairn, capsys) -> None:
    did = cairn.json("directive", "new", "tidy up", "--executor", "shell")["id"]
    data = json.dumps({"argv": [sys.executable, "-c", "print(1)"]})
    assert "is draft, not running" in fails(cairn, capsys, "exec", "shell", "--input", data, "--directive", did)
    cairn("directive", "approve", did)
    ran = exec_json(cairn, "shell", json.loads(data), "--directive", did)
    state = cairn.json("directive", "show", did)
    assert state["status"] == "running" and state["runs"] == [ran["run_id"]]
    shown = json.loads(cairn("runs", "show", ran["run_id"], "--json").stdout)
    assert did in json.dumps(shown)  # the run names its directive: they link both ways
    add_config(cairn, '[exec.http]\nallow = ["http://127.0.0.1:9/*"]\n')
    err = fails(cairn, capsys, "exec", "http", "--input", '{"url": "http://127.0.0.1:9/x"}', "--directive", did)
    assert "outside the directive's executors" in err and "directive-scope" in err


# -- a third-party module through the hook ---------------------------------------------------------


@attrs.frozen
class GreetConfig:
    greeting: str = "hello"


class Greet(Executor):
    input_schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}

    def __init__(self, config: GreetConfig) -> None:
        self.config = config

    def execute(self, input, *, timeout_s):  # type: ignore[no-untyped-def]
        return ExecResult("ok", {"text": f"{self.config.greeting}, {input['name']}"})


class GreetPlugin:
    @hookimpl
    def cairn_register_executors(self, register):  # type: ignore[no-untyped-def]
        register("greet", lambda config, context: Greet(config), GreetConfig, description="say hello")


def test_a_plugin_registers_an_executor_through_cairn_register_executors(cairn_env: Path) -> None:
    from cairn.config import load_config
    from cairn.execution import execute
    from cairn.plugins import load_plugins

    (cairn_env / "cairn.toml").write_text('[cairn]\nstorage = "sqlite"\n\n[exec.greet]\ngreeting = "hi"\n')
    config = load_config(cairn_env, environ={})
    plugins = load_plugins()
    plugins.register(GreetPlugin(), "greet-plugin")
    assert "greet" in plugins.executors
    store = plugins.create("storage", "sqlite", config)
    try:
        outcome = execute("greet", {"name": "Ann"}, config=config, plugins=plugins, store=store)
    finally:
        store.close()
    assert outcome.result.output == {"text": "hi, Ann"}


@pytest.mark.parametrize(
    ("schema", "value", "message"),
    [
        ({"type": "integer"}, True, "must be integer"),
        ({"type": "object", "required": ["a"]}, {}, "needs 'a'"),
        ({"type": "array", "items": {"type": "string"}, "maxItems": 2}, ["a", 1], r"input\[1\] must be string"),
        ({"type": "number", "minimum": 1}, 0, "at least 1"),
        ({"enum": ["GET"]}, "POST", "must be one of"),
    ],
)
def test_input_schemas_refuse_what_does_not_fit(schema, value, message) -> None:
    from cairn.errors import ValidationError

    with pytest.raises(ValidationError, match=message):
        check_input(schema, value)
