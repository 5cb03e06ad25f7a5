"""Chat, threads and traces end to end on the embedded defaults."""

from __future__ import annotations

from cairn.chat import generate_key

CANARY = "canary-9b1e-never-stored"


def test_send_and_list_on_runs_threads_and_general(cairn):
    run_id = _a_run(cairn)
    cairn("chat", "send", "hello")
    cairn("chat", "send", "--run", run_id, "--publish", "about that run")
    thread = cairn.json("thread", "new", "Design review", "--tag", "arch", "--run", run_id)
    cairn("chat", "send", "--thread", thread["thread_id"], "first point")
    assert [m["text"] for m in cairn.json("chat", "list", "--run", run_id)] == ["about that run"]
    assert [m["text"] for m in cairn.json("chat", "list", "--thread", thread["thread_id"])] == ["first point"]
    assert [m["text"] for m in cairn.json("chat", "list", "--published")] == ["about that run"]
    assert [m["text"] for m in cairn.json("chat", "list", "-n", "2")] == ["first point", "about that run"]
    threads = {t["thread_id"]: t for t in cairn.json("thread", "list")}
    assert threads[thread["thread_id"]]["tags"] == ["arch"] and "general" in threads
    assert "hello" in cairn("chat", "list").stdout


def test_encrypted_messages(cairn, monkeypatch):
    key = generate_key()
    monkeypatch.setenv("CAIRN_CHAT_KEY", key)
    cairn("chat", "send", "--encrypt", f"secret {CANARY}")
    data = b"".join(p.read_bytes() for p in (cairn.project / ".cairn").glob("cairn.db*"))
    assert CANARY.encode() not in data
    assert cairn.json("chat", "list")[0]["text"] == f"secret {CANARY}"
    monkeypatch.delenv("CAIRN_CHAT_KEY")
    shown = cairn.json("chat", "list")[0]
    assert (shown["text"], shown["encrypted"]) == ("[encrypted: no key, set CAIRN_CHAT_KEY]", True)
    monkeypatch.setenv("CAIRN_CHAT_KEY", generate_key())
    assert "[undecryptable: wrong key or tampered]" in cairn("chat", "list").stdout
    monkeypatch.setenv("CAIRN_CHAT_KEY", " " * 40)
    proc = cairn.run("chat", "send", "--encrypt", "x", check=False)
    assert proc.returncode == 1 and "whitespace" in proc.stderr and "cairn chat keygen" in proc.stderr
    assert "Traceback" not in proc.stderr
    monkeypatch.delenv("CAIRN_CHAT_KEY")
    proc = cairn.run("chat", "send", "--encrypt", "x", check=False)
    assert proc.returncode == 1 and "CAIRN_CHAT_KEY" in proc.stderr and "cairn chat keygen" in proc.stderr


def test_key_variable_name_comes_from_config(cairn, monkeypatch):
    (cairn.project / "cairn.toml").write_text('[chat]\nkey_env = "TEAM_CHAT_KEY"\n')
    proc = cairn.run("chat", "send", "--encrypt", "x", check=False)
    assert "TEAM_CHAT_KEY" in proc.stderr
    monkeypatch.setenv("TEAM_CHAT_KEY", generate_key())
    cairn("chat", "send", "--encrypt", "works")
    assert cairn.json("chat", "list")[0]["state"] == "decrypted"


def test_trace_spans_separate_invocations(cairn):
    cairn.run("trace", "start", "session", "--classification", "debugging")
    cairn.run("commit", "a traced item")
    cairn.run("chat", "send", "a traced message")
    status = cairn.json("trace", "status")
    assert status[0]["name"] == "session" and status[0]["events"] == 2
    stopped = cairn.run("trace", "stop", "session", "--post").stdout
    assert "session (debugging): 2 events" in stopped and "1 chat:message, 1 context:commit" in stopped
    (trace,) = cairn.json("trace", "list")
    shown = cairn.json("trace", "show", trace["run_id"])
    assert [e["type"] for e in shown["events"]] == ["context:commit", "chat:message"]
    assert cairn.json("chat", "list", "--run", trace["run_id"])[0]["source"] == "trace"
    assert cairn.json("trace", "status") == []
    assert cairn.run("trace", "stop", "session", check=False).returncode == 1


def _a_run(cairn) -> str:
    import sys

    cairn.run("run", "--", sys.executable, "-c", "pass")
    return cairn.json("runs", "list")[0]["run_id"]
