"""`cairn compact` end to end on SQLite and git: extractive with noop, a real provider against the fake server."""

from __future__ import annotations

import subprocess

import pytest

from cairn.testing.fake_openai import FakeOpenAI, Reply

KEY = "sk-canary-compact-1234abcd"
KEY_ENV = "CAIRN_IT_COMPACT_KEY"


def talk(cairn, turns: int = 8) -> None:
    cairn("commit", "-t", "instruction", "You are careful.")
    for n in range(turns):
        role = ["--role", "assistant"] if n % 2 else []
        cairn("commit", *role, f"turn {n} " + "about the boiling point of water at altitude " * 4)


@pytest.mark.parametrize("storage", ["sqlite", "git"])
def test_compact_from_the_cli_keeps_originals_in_history(cairn, storage: str) -> None:
    if storage == "git":
        subprocess.run(["git", "init", "-q"], cwd=cairn.project, check=True, capture_output=True)
    opts = ["--set", f"cairn.storage={storage}"]
    talk(lambda *a: cairn(*opts, *a))
    log = cairn.json(*opts, "log")
    pinned = log[3]["hash"]  # turn 4
    cairn(*opts, "pin", pinned)
    dry = cairn.json(*opts, "compact", "--keep-last", "2", "--dry-run")
    assert dry["commit"] is None and dry["summarizer"] == "extractive" and len(dry["runs"]) == 2
    assert cairn.json(*opts, "log") == log  # a dry run wrote nothing
    done = cairn.json(*opts, "compact", "--keep-last", "2")
    assert done["commit"] and done["provenance"]["replaced"] == 5 and done["tokens_after"] < done["tokens_before"]
    text = cairn(*opts, "materialize", "--format", "text").stdout
    assert "extractive" in text and "You are careful." in text and "turn 4" in text and "turn 1 " not in text
    original = cairn(*opts, "materialize", "--no-compaction", "--format", "text").stdout
    assert "turn 1 " in original and "extractive" not in original
    assert cairn(*opts, "materialize", "--as-of", log[0]["hash"], "--format", "text").stdout == original
    newest = cairn.json(*opts, "log", "-n", "1")[0]
    assert newest["operation"] == "compact" and newest["hash"] == done["commit"]
    first = done["runs"][0][0]
    history = cairn.json(*opts, "history", first)
    assert history[-1]["hash"] == done["commit"] and history[-1]["version"] is None
    assert cairn(*opts, "history", first).stdout.splitlines()[-1].split()[3] == "compact"
    edit = cairn.run(*opts, "edit", done["runs"][0][1], "late", check=False)
    assert edit.returncode == 1 and "compacted by" in edit.stderr and "Traceback" not in edit.stderr
    runs = cairn.json(*opts, "runs", "list", "--type", "compaction")
    assert [r["metadata"]["commit"] for r in runs] == [done["commit"]]


def test_bad_compact_options_are_usage_errors(cairn) -> None:
    bad = cairn.run("compact", "--keep-last", "-1", check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    nowhere = cairn.run("compact", "--branch", "nowhere", check=False)
    assert nowhere.returncode == 1 and "no commits" in nowhere.stderr and "Traceback" not in nowhere.stderr


def test_compact_at_must_be_a_fraction_with_its_file_and_line(cairn) -> None:
    path = cairn.project / "cairn.toml"
    lines = path.read_text().replace(
        'default_branch = "main"', 'default_branch = "main"\nmax_tokens = 100\ncompact_at = 2'
    )
    path.write_text(lines)
    number = lines.splitlines().index("compact_at = 2") + 1
    result = cairn.run("status", check=False)
    assert result.returncode != 0 and "compact_at" in result.stderr and f"cairn.toml:{number}" in result.stderr


def test_a_real_provider_writes_the_summary_and_its_usage_is_recorded(cairn, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeOpenAI(api_key=KEY, model="gpt-4o-mini") as server:
        server.script(Reply("They discussed how water boils at altitude."))
        path = cairn.project / "cairn.toml"
        path.write_text(
            path.read_text().replace('llm = "noop"', 'llm = "openai"')
            + f'\n[llm.openai]\nbase_url = "{server.url}"\napi_key_env = "{KEY_ENV}"\nmodel = "gpt-4o-mini"\n'
        )
        talk(cairn, 6)
        dry = cairn.json("compact", "--keep-last", "1", "--dry-run")
        assert dry["prompt_version"] == "cairn.compact/1" and "compact the context" in dry["prompt"]
        assert "prompt cairn.compact/1:" in cairn("compact", "--keep-last", "1", "--dry-run").stdout
        done = cairn.json("compact", "--keep-last", "1")
    meta = done["provenance"]
    assert (meta["provider"], meta["model"], meta["prompt_version"]) == ("openai", "gpt-4o-mini", "cairn.compact/1")
    assert meta["usage"]["input_tokens"] > 0 and meta["usage"]["output_tokens"] > 0
    text = cairn("materialize", "--format", "text").stdout
    assert "by openai/gpt-4o-mini" in text and "water boils at altitude" in text
    calls = cairn.json("logs")
    assert calls[0]["operation"] == "compact" and calls[0]["usage"]["input_tokens"] > 0
    assert KEY not in cairn("log").stdout


def test_the_automatic_trigger_compacts_once_when_the_threshold_is_passed(cairn) -> None:
    path = cairn.project / "cairn.toml"
    path.write_text(
        path.read_text().replace(
            'default_branch = "main"',
            'default_branch = "main"\nmax_tokens = 600\ncompact_at = 0.5\ncompact_keep_last = 2',
        )
    )
    n = 0
    while cairn.json("status")["effective_tokens"] + 60 < 300:
        cairn("commit", f"turn {n} " + "about the boiling point of water at altitude " * 4)
        n += 1
    assert not cairn.json("runs", "list", "--type", "compaction")
    for m in range(n, n + 3):
        cairn("commit", f"turn {m} " + "about the boiling point of water at altitude " * 4)
    runs = cairn.json("runs", "list", "--type", "compaction")
    assert len(runs) == 1 and cairn.json("status")["effective_tokens"] <= 300
