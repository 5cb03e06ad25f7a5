"""The context commands end to end on the embedded defaults (cairn-sqlite, approx tokens)."""

from __future__ import annotations

import json
import re

import pytest


def test_commit_log_show(cairn):
    out = cairn("commit", "-t", "instruction", "Be brief.").stdout
    assert out.startswith("[main ") and "append instruction" in out
    cairn("commit", "hello there")
    cairn("commit", "--role", "assistant", "hi!", "-m", "greeting", "--meta", "turn=2")
    log = cairn.json("log")
    assert [e["content_type"] for e in log] == ["dialogue", "dialogue", "instruction"]
    assert log[0]["message"] == "greeting" and log[0]["metadata"] == {"turn": 2}
    assert log[0]["content"] == {"content_type": "dialogue", "role": "assistant", "text": "hi!"}
    shown = cairn.json("show", log[0]["hash"][:10])
    assert shown["hash"] == log[0]["hash"] and shown["annotations"] == []
    assert "hello there" in cairn("log").stdout


def test_commit_from_stdin_and_payload(cairn):
    cairn("commit", "-", input="from stdin\n")
    cairn(
        "commit",
        "-t",
        "tool_io",
        "--payload",
        '{"tool_name": "grep", "direction": "call", "payload": {"q": "x"}, "call_id": "c1"}',
    )
    cairn("commit", "-t", "artifact", "--field", "artifact_type=code", "--field", "language=python", "print(1)")
    types = [e["content"] for e in cairn.json("log")]
    assert types[2]["text"] == "from stdin"  # the one final newline dropped, as git does for messages
    assert types[1]["tool_name"] == "grep"
    assert types[0] == {
        "content_type": "artifact",
        "artifact_type": "code",
        "language": "python",
        "content": "print(1)",
    }


def test_commit_text_from_stdin_and_file_loses_one_final_newline_only(cairn, tmp_path):
    cairn("commit", "-", input="two lines\n\n")
    (tmp_path / "note.txt").write_text("from a file\n", encoding="utf-8")
    cairn("commit", "--file", str(tmp_path / "note.txt"))
    cairn("commit", "-", input="no newline")
    texts = [e["content"]["text"] for e in cairn.json("log")]
    assert texts == ["no newline", "from a file", "two lines\n"]


def test_commit_without_text_says_how_to_give_it(cairn, tmp_path):
    result = cairn.run("commit", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("error: no text to commit: a dialogue item needs its text")
    assert "as an argument" in result.stderr and "- to read standard input" in result.stderr
    assert "--file" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "t.txt").write_text("x", encoding="utf-8")
    both = cairn.run("commit", "x", "--file", str(tmp_path / "t.txt"), check=False)
    assert both.returncode == 2 and "not both" in both.stderr


def test_a_budget_warning_is_one_warning_line(cairn):
    result = cairn.run(
        "--set", "context.max_tokens=5", "--set", "context.budget_action=warn", "commit", "a text over the budget"
    )
    assert result.stdout.startswith("[main ")
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: effective context at ")
    assert "over the budget of 5" in lines[0] and "BudgetWarning" not in result.stderr


@pytest.mark.parametrize("since", ["yesterday", "today", "7d", "12h", "2020-01-01", "2020-01-01T00:00:00Z"])
def test_log_since_takes_the_times_people_type(cairn, since):
    cairn("commit", "hello")
    assert [e["content"]["text"] for e in cairn.json("log", "--since", since)] == ["hello"]


def test_log_since_that_is_not_a_time_names_every_form(cairn):
    result = cairn.run("log", "--since", "last tuesday", check=False)
    assert result.returncode == 1 and result.stderr.startswith("error: --since 'last tuesday' is not a time")
    assert all(form in result.stderr for form in ("7d", "12h", "today", "yesterday", "2026-11-01"))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["commit", "--role", "robot", "x"], "role must be one of user, assistant, system"),
        (["commit", "-t", "nope", "x"], "unknown content type 'nope'"),
        (["commit", "-t", "tool_io", "x"], "type 'tool_io' takes no text"),
        (["commit", "--payload", "{not json"], "--payload is not valid JSON"),
        (["edit", "abcdef12", "x"], "no commit or branch 'abcdef12'"),
        (["switch", "nowhere"], "no branch 'nowhere'"),
        (["branch", "create", "../x"], "not a valid branch name"),
        (["materialize", "--as-of", "2026-13-45"], "not an ISO-8601 time"),
        (["show", "HEAD"], "no commit 'HEAD'"),
    ],
)
def test_user_errors_are_one_line_no_traceback(cairn, args, fragment):
    proc = cairn.run(*args, check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and fragment in proc.stderr


def test_edit_delete_branch_switch_diff(cairn):
    cairn("commit", "first")
    cairn("commit", "second")
    cairn("switch", "-c", "alt")
    cairn("edit", "HEAD~1", "first, revised")
    cairn("delete", "HEAD~1")  # HEAD~1 is now "second"
    text = cairn("materialize", "--format", "text").stdout
    assert "first, revised" in text and "second" not in text
    diff = cairn.json("diff", "main", "alt")
    assert sorted(d["status"] for d in diff) == ["changed", "removed"]
    branches = cairn.json("branch")
    assert {b["name"]: b["current"] for b in branches} == {"alt": True, "main": False}
    cairn("branch", "rename", "alt", "alternative")
    cairn("switch", "main")
    cairn("branch", "delete", "--force", "alternative")
    assert [b["name"] for b in cairn.json("branch")] == ["main"]
    graph = cairn("log", "--graph").stdout
    assert "(HEAD, main)" in graph


def test_edit_keeps_type_and_role_by_default(cairn):
    cairn("commit", "--role", "assistant", "draft answer")
    cairn("edit", "HEAD", "final answer")
    messages = json.loads(cairn("materialize").stdout)
    assert messages == [{"role": "assistant", "content": "final answer"}]


def test_pin_skip_budget_and_status(cairn):
    cairn("commit", "-t", "instruction", "Answer in French.")
    cairn("commit", "the question that matters")
    for i in range(30):
        cairn("commit", f"small talk number {i} with several more words")
    cairn("pin", "HEAD~30", "-r", "core question")
    cairn("skip", "HEAD")
    result = cairn.json("materialize", "--budget", "80")
    texts = [m["content"] for m in result["messages"]]
    assert texts[:2] == ["Answer in French.", "the question that matters"]
    assert "small talk number 29 with several more words" not in texts
    assert result["token_count"] <= 80 and result["token_source"] == "estimated"
    reasons = {d["reason"] for d in result["dropped"]}
    assert reasons == {"budget", "skipped"}
    # Without --show-dropped the list stops where the budget did; with it, every item left out is there.
    assert result["dropped_complete"] is False
    full = cairn.json("materialize", "--budget", "80", "--show-dropped")
    assert full["dropped_complete"] is True and len(full["dropped"]) > len(result["dropped"])
    assert full["messages"] == result["messages"]
    shown = cairn("materialize", "--budget", "80", "--show-dropped").output
    assert shown.count("dropped ") >= len(full["dropped"]) and "--show-dropped lists them" not in shown
    assert "--show-dropped lists them" in cairn("materialize", "--budget", "80").output
    cairn("unpin", "HEAD~30")
    status = cairn.json("status")
    assert status["branch"] == "main" and status["commits"] == 32 and status["effective_tokens"] > 0


def test_budget_rejects_commit_with_current_and_max(cairn):
    (cairn.project / "cairn.toml").write_text("[context]\nmax_tokens = 30\n")
    cairn("commit", "a short line")
    proc = cairn.run("commit", "a much longer line " * 10, check=False)
    assert proc.returncode == 1 and "over the budget of 30" in proc.stderr
    assert len(cairn.json("log")) == 1


def test_anthropic_format_and_as_of(cairn):
    cairn("commit", "-t", "instruction", "Be kind.")
    cairn("commit", "hi")
    cairn("commit", "--role", "assistant", "hello")
    out = json.loads(cairn("materialize", "--format", "anthropic").stdout)
    assert out["system"] == "Be kind."
    assert [m["role"] for m in out["messages"]] == ["user", "assistant"]
    past = json.loads(cairn("materialize", "--as-of", "HEAD~1").stdout)
    assert [m["content"] for m in past] == ["Be kind.", "hi"]


def test_export_import_round_trip_into_empty_store(cairn, tmp_path):
    cairn("commit", "-t", "instruction", "rules")
    cairn("commit", "one")
    cairn("switch", "-c", "b")
    cairn("edit", "HEAD", "one, edited")
    cairn("pin", "HEAD~1")
    dump = tmp_path / "dump.jsonl"
    cairn("export", "-o", str(dump))
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = type(cairn)(other_dir)
    other("init")
    # Three commits; main, b and the exporter's HEAD (the fresh store has none of its own).
    assert "imported 3 new commits, 0 already present; 3 refs, 1 annotation" in other("import", str(dump)).stdout
    assert other("fsck").exit_code == 0
    for branch in ("main", "b"):
        assert [e["hash"] for e in other.json("log", branch)] == [e["hash"] for e in cairn.json("log", branch)]
        assert other("materialize", branch).stdout == cairn("materialize", branch).stdout
    # Importing again changes nothing: objects dedupe, refs already match.
    assert "imported 0 new commits, 3 already present; 0 refs" in other("import", str(dump)).stdout


def test_import_refuses_tampered_export(cairn, tmp_path):
    cairn("commit", "honest text")
    dump = tmp_path / "dump.jsonl"
    cairn("export", "-o", str(dump))
    dump.write_text(dump.read_text().replace("honest text", "forged text"))
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = type(cairn)(other_dir)
    other("init")
    proc = other.run("import", str(dump), check=False)
    assert proc.returncode == 1 and "does not match its hash" in proc.stderr
    assert other.json("log") == []


def test_gc_and_fsck(cairn):
    cairn("commit", "keep")
    cairn("switch", "-c", "tmp")
    cairn("commit", "throwaway")
    cairn("switch", "main")
    cairn("branch", "delete", "--force", "tmp")
    assert cairn.json("gc", "--dry-run") == {
        "commits_removed": 1,
        "blobs_removed": 1,
        "annotations_removed": 0,
        "dry_run": True,
        "artifacts": {
            "removed": [],
            "removed_count": 0,
            "removed_bytes": 0,
            "kept": 0,
            "missing_trees": [],
            "dry_run": True,
        },
    }
    assert "removed 1 commit, " in cairn("gc").stdout
    assert cairn("fsck").stdout.startswith("ok: 1 commit, ")


def test_plugins_and_config_commands(cairn):
    plugins = {p["name"]: p for p in cairn.json("plugins")}
    assert plugins["cairn"]["status"] == "ok" and plugins["cairn"]["builtin"]
    assert plugins["sqlite"]["registers"] == {"storage": ["sqlite"]}
    assert plugins["sqlite"]["distribution"] == "cairn-sqlite"
    shown = cairn.json("config", "show")
    keys = {s["key"]: s for s in shown["settings"]}
    assert keys["cairn.storage"]["value"] == "sqlite"
    assert keys["cairn.storage"]["source"].endswith("cairn.toml")
    assert "configuration is valid" in cairn("config", "validate").stdout


def test_config_validate_lists_every_problem(cairn):
    (cairn.project / "cairn.toml").write_text(
        '[cairn]\nstorage = "nosuch"\nbogus = 1\n[storage.sqlite]\npath = 5\n[storage.other]\n'
    )
    proc = cairn.run("config", "validate", check=False)
    assert proc.returncode == 1
    assert "bogus" in proc.stderr and "[storage.sqlite] path" in proc.stderr
    assert "no storage backend called 'nosuch'" in proc.stderr
    assert re.search(r"known: [a-z_, ]*\bsqlite\b", proc.stderr)
    assert "[storage.other]" in proc.stderr
    assert "4 problems" in proc.stderr


def test_init_refuses_to_overwrite(cairn):
    proc = cairn.run("init", check=False)
    assert proc.returncode == 1 and "already exists" in proc.stderr and "--force" in proc.stderr
    cairn("init", "--force")
    assert (cairn.project / ".cairn" / ".gitignore").read_text() == "*\n"


def test_demo_runs_offline(cairn_env):
    from click.testing import CliRunner

    from cairn.cli import cli

    result = CliRunner().invoke(cli, ["demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "$ cairn materialize --budget 120 --format text" in result.output
    assert "Roughly 71 °C" in result.output
    assert "(ok, exit 0)" in result.output  # a run recorded in the ledger
    assert "🔒: Internal: the second source is behind a paywall." in result.output  # decrypted with the key
    assert "review (fact-check): 2 events" in result.output
    assert "refs/cairn/runs/" in result.output and " tag {" in result.output  # a run in the git ledger


def test_counts_agree_with_their_nouns(cairn):
    assert "HEAD (no commits yet), 0 commits" in cairn("status").stdout
    cairn("commit", "one")
    assert ", 1 commit\n" in cairn("status").stdout
    cairn("commit", "two")
    assert ", 2 commits\n" in cairn("status").stdout
    assert cairn("fsck").stdout.startswith("ok: 2 commits, 2 blobs, 2 refs, 0 annotations")


def test_git_habits_log_oneline_and_branch_verbose(cairn):
    question = cairn.json("commit", "the question")["hash"]
    answer = cairn.json("commit", "--role", "assistant", "the answer")["hash"]
    cairn("switch", "-c", "side")
    cairn("edit", question, "a better question")
    cairn("delete", answer)
    lines = cairn("log", "--oneline").stdout.splitlines()
    assert [line.split(" ", 1) for line in lines] == [
        [lines[0][:8], f"delete {answer[:8]}"],
        [lines[1][:8], f"edit {question[:8]}: a better question"],
        [answer[:8], "dialogue: the answer"],
        [question[:8], "dialogue: the question"],
    ]
    branches = cairn("branch", "-v").stdout.splitlines()
    assert branches[0].split() == ["main", answer[:12], "dialogue:", "the", "answer"]
    assert branches[1].split() == ["*", "side", lines[0][:8] + branches[1].split()[2][8:], "delete", answer[:8]]


def test_show_keeps_labels_and_values_apart(cairn):
    cairn("commit", "hello", "--meta", "turn=2", "-m", "greeting")
    lines = cairn("show", "HEAD").stdout.split("\n\n", 1)[0].splitlines()
    fields = dict(line.split(None, 1) for line in lines)
    assert fields["operation"] == "append" and fields["content_type"] == "dialogue"
    assert fields["cumulative_tokens"].isdigit() and fields["message"] == "greeting"
    assert json.loads(fields["metadata"]) == {"turn": 2}
    assert len({len(line) - len(line.split(None, 1)[1]) for line in lines}) == 1


def test_log_graph_keeps_its_columns_on_diverged_branches(cairn):
    # Three lines of descent fork from "two"; each joins the one to its left where they meet, and
    # every other lane stays in its column (the graph used to shift a column at the fork).
    for args in (
        ("commit", "one"),
        ("commit", "two"),
        ("switch", "-c", "alt"),
        ("commit", "a1"),
        ("switch", "main"),
        ("switch", "-c", "third"),
        ("commit", "t1"),
        ("commit", "t2"),
        ("switch", "main"),
        ("commit", "m3"),
        ("switch", "alt"),
        ("commit", "a2"),
    ):
        cairn(*args)
    lines = cairn("log", "--graph").stdout.splitlines()
    drawn = [(re.match(r"[ |*/_]*", line).group(0).rstrip(), line.rsplit(" ", 1)[-1]) for line in lines]
    drawn = [(lanes, "" if text == lanes.split()[-1] else text) for lanes, text in drawn]
    assert drawn == [
        ("*", "a2"),
        ("| *", "m3"),
        ("| | *", "t2"),
        ("| | *", "t1"),
        ("| |/", ""),
        ("* |", "a1"),
        ("|/", ""),
        ("*", "two"),
        ("*", "one"),
    ]
