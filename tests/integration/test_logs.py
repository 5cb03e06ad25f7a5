"""`cairn logs` lists what `cairn ask` did: every call a run of type llm, its commits, usage, cost and attempts."""

from __future__ import annotations

import json

import pytest

from cairn.testing.fake_openai import FakeOpenAI, Fault, Reply

KEY = "sk-canary-logs-5c1e9d"
KEY_ENV = "CAIRN_IT_LOGS_KEY"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeOpenAI(api_key=KEY, model="gpt-4o-mini") as fake:
        yield fake


def configure(cairn, server: FakeOpenAI, extra: str = "") -> None:
    path = cairn.project / "cairn.toml"
    text = path.read_text().replace('llm = "noop"', 'llm = "openai"')
    path.write_text(
        text + f'\n[llm.openai]\nbase_url = "{server.url}"\napi_key_env = "{KEY_ENV}"\nmodel = "gpt-4o-mini"\n{extra}'
    )


def log(cairn) -> list[dict]:
    return cairn.json("log")


@pytest.mark.parametrize("backend", ["sqlite", "git"])
def test_logs_lists_each_ask_with_its_commits_usage_cost_and_latency(cairn, server: FakeOpenAI, backend: str):
    if backend == "git":  # the calls are runs on the ledger branch, the commits context objects
        import subprocess

        subprocess.run(["git", "init", "-q"], cwd=cairn.project, check=True)
        toml = cairn.project / "cairn.toml"
        toml.write_text(toml.read_text().replace('storage = "sqlite"', 'storage = "git"'))
    configure(cairn, server, "\n[providers]\nbackoff_initial_s = 0\n")
    assert "no provider calls recorded" in cairn("logs").stdout
    server.script(Reply("Roughly 70 °C."), Fault.openai(503, "overloaded", type="server_error"), Reply("Paris."))
    cairn("ask", "Boiling point on Everest?", "--no-stream")
    cairn("ask", "Capital of France?", "--no-stream", "--model", "gpt-4.1-mini")

    calls = cairn.json("logs")
    assert len(calls) == 2
    newest, oldest = calls
    commits = log(cairn)
    reply_2, question_2, reply_1, question_1 = commits[:4]
    assert (newest["prompt_commit"], newest["reply_commit"]) == (question_2["hash"], reply_2["hash"])
    assert (oldest["prompt_commit"], oldest["reply_commit"]) == (question_1["hash"], reply_1["hash"])
    assert newest["model"] == "gpt-4.1-mini" and oldest["model"] == "gpt-4o-mini"
    assert newest["provider"] == "openai" and newest["outcome"] == "ok" and newest["branch"] == "main"
    assert newest["attempts"] == 2  # the 503 was retried, and both attempts are in the record
    assert oldest["attempts"] == 1 and oldest["usage"]["output_tokens"] == 3
    assert oldest["cost"] == reply_1["metadata"]["cost"] and oldest["latency_ms"] >= 0
    assert "Everest" not in json.dumps(calls)  # bodies only on request
    if backend == "git":
        import subprocess

        refs = subprocess.run(["git", "for-each-ref"], cwd=cairn.project, capture_output=True, text=True).stdout
        assert newest["id"] in refs  # each call is a run on the ledger branch
    spend_runs = {r["run_id"] for r in cairn.json("runs", "list", "--type", "llm")}
    assert spend_runs == {newest["id"], oldest["id"]}
    table = cairn("logs").stdout
    assert newest["id"] in table and question_2["hash"][:12] in table and "gpt-4.1-mini" in table

    only = cairn.json("logs", "--model", "gpt-4o-mini")
    assert [c["id"] for c in only] == [oldest["id"]]
    found = cairn.json("logs", "-q", "everest", "--bodies")
    assert [c["id"] for c in found] == [oldest["id"]]
    assert found[0]["prompt"] == "Boiling point on Everest?" and found[0]["reply"] == "Roughly 70 °C."
    assert cairn.json("logs", "-n", "1") == [newest]
    assert cairn.json("logs", "--conversation", "main") == calls
    assert cairn.json("logs", "--conversation", "elsewhere") == []
    assert cairn.json("logs", "--since", "1d") == calls


def test_logs_show_prints_the_materialized_prompt_and_the_reply(cairn, server: FakeOpenAI):
    configure(cairn, server)
    cairn("commit", "-t", "instruction", "Answer in one word.")
    server.script(Reply("Paris."))
    cairn("ask", "Capital of France?", "--no-stream")
    cairn("commit", "a later note that was never sent")
    shown = cairn.json("logs", "show", "@last")
    assert shown["prompt"] == [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert shown["reply"] == "Paris." and len(shown["attempt_events"]) == 1
    assert shown["attempt_events"][0]["fields"]["outcome"] == "ok"
    text = cairn("logs", "show", shown["id"]).stdout
    assert "[system] Answer in one word." in text and "[user] Capital of France?" in text and "Paris." in text
    assert "never sent" not in text


def test_a_failed_ask_is_logged_with_its_error_kind_and_no_secret(cairn, server: FakeOpenAI):
    configure(cairn, server)
    server.script(Fault.openai(401, f"Incorrect API key provided: {KEY}", code="invalid_api_key"))
    cairn.run("ask", "hello?", check=False)
    [call] = cairn.json("logs")
    assert call["status"] == "failed" and call["outcome"] == "auth_failed"
    # The question is kept, and answered by the partial marker so that roles keep alternating.
    marker, question = log(cairn)[:2]
    assert call["prompt_commit"] == question["hash"] and call["reply_commit"] == marker["hash"]
    assert marker["metadata"]["partial"] is True and marker["metadata"]["finish_reason"] == "auth_failed"
    assert KEY not in json.dumps(call) and KEY not in cairn("logs", "show", call["id"]).stdout


def test_logs_show_refuses_a_run_that_is_not_a_call_and_an_unknown_id(cairn):
    run = cairn.json("runs", "list")
    assert run == []
    cairn("run", "--", "true")
    [other] = cairn.json("runs", "list")
    result = cairn.run("logs", "show", other["run_id"], check=False)
    assert result.returncode == 1 and "not a provider call" in result.stderr and "Traceback" not in result.stderr
    result = cairn.run("logs", "show", "../etc", check=False)
    assert result.returncode != 0 and "not a valid run id" in result.stderr and "Traceback" not in result.stderr
    result = cairn.run("logs", "--bodies", check=False)
    assert result.returncode == 2 and "--bodies goes with --json" in result.stderr


def test_an_embed_call_is_logged_too(cairn):
    path = cairn.project / "cairn.toml"
    path.write_text(path.read_text().replace('embeddings = "noop"', 'embeddings = "hashing"'))
    cairn("embed", "first text", "second text")
    [call] = cairn.json("logs")
    assert call["operation"] == "embed" and call["provider"] == "hashing" and call["outcome"] == "ok"
    assert call["prompt_commit"] is None and call["reply_commit"] is None and call["attempts"] == 1
    shown = cairn.json("logs", "show", call["id"])
    assert shown["prompt"] is None and shown["reply"] is None
