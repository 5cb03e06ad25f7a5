"""merge, cherry-pick, history and restore end to end, on cairn-sqlite and cairn-git."""

from __future__ import annotations

import subprocess

import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


@pytest.fixture(params=["sqlite", "git"])
def project(request, cairn, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    if request.param == "git":
        for name, value in GIT_ENV.items():
            monkeypatch.setenv(name, value)
        subprocess.run(["git", "init", "-q", "-b", "work", str(cairn.project)], check=True)
        (cairn.project / "cairn.toml").write_text('[cairn]\nstorage = "git"\n')
    return cairn


def texts(cairn) -> list[str]:  # type: ignore[no-untyped-def]
    return [m["content"] for m in cairn.json("materialize")["messages"]]


def test_merge_fast_forward_merge_commit_and_conflicts(project):
    cairn = project
    cairn("commit", "base")
    item = cairn.json("log")[0]["hash"]
    cairn("switch", "-c", "side")
    cairn("commit", "theirs")
    cairn("switch", "main")
    assert cairn.json("merge", "side")["kind"] == "fast_forward"
    assert "Already up to date." in cairn("merge", "side").stdout
    cairn("switch", "side")
    cairn("edit", item, "base, their edit")
    cairn("switch", "main")
    cairn("edit", item, "base, our edit")
    cairn("commit", "ours")
    before = cairn.json("log")
    stopped = cairn("merge", "side", ok=False)
    assert stopped.exit_code == 1
    assert f"conflict: {item[:12]} edit/edit" in stopped.output and "nothing was written" in stopped.output
    assert cairn.json("log") == before
    merged = cairn.json("merge", "side", "--strategy", "theirs")
    assert merged["kind"] == "merge" and merged["conflicts"][0]["item"] == item and merged["resolutions"]
    merge_commit = next(e for e in cairn.json("log") if e["hash"] == merged["merge"])
    assert merge_commit["operation"] == "merge" and merge_commit["merge_parent"]
    assert merge_commit["metadata"]["merge"]["conflicts"][0]["took"] == "theirs"
    assert texts(cairn) == ["base, their edit", "theirs", "ours"]
    assert cairn("fsck").exit_code == 0


def test_cherry_pick_history_and_restore(project):
    cairn = project
    cairn("commit", "base")
    cairn("switch", "-c", "side")
    cairn("commit", "wanted")
    picked = cairn.json("log")[0]["hash"]
    cairn("switch", "main")
    assert cairn.json("cherry-pick", picked)["metadata"]["cherry_picked_from"] == picked
    assert texts(cairn) == ["base", "wanted"]
    item = cairn.json("log")[0]["hash"]
    cairn("edit", item, "second")
    edit = cairn.json("log")[0]["hash"]
    cairn("edit", item, "third")
    history = cairn.json("history", edit[:12])  # any of its hashes
    assert [(h["version"], h["content"]["text"]) for h in history] == [(1, "wanted"), (2, "second"), (3, "third")]
    restored = cairn.json("restore", item, "--version", "1")
    assert restored["message"].startswith("Restore version 1 of")
    assert texts(cairn) == ["base", "wanted"]
    out_of_range = cairn.run(
        "restore", item, "--version", "9", check=False
    )  # the real process: exit status and message
    assert out_of_range.returncode == 1 and "versions 1 to 4" in out_of_range.stderr
    assert "Traceback" not in out_of_range.stderr
    cairn("switch", "side")
    cairn("commit", "only here")
    lonely = cairn.json("log")[0]["hash"]
    cairn("edit", lonely, "edited here")
    lonely_edit = cairn.json("log")[0]["hash"]
    cairn("switch", "main")
    refused = cairn("cherry-pick", lonely_edit, ok=False)
    assert refused.exit_code == 1 and f"conflict: {lonely[:12]} edit/absent" in refused.output


def test_named_directives_in_log_and_materialize(project):
    cairn = project
    cairn("commit", "-t", "instruction", "--field", "name=tone", "be brief")
    cairn("commit", "-t", "instruction", "--field", "name=tone", "be playful")
    cairn("commit", "hello")
    log = cairn("log").stdout
    assert "[tone: in force]" in log and "[tone: superseded]" in log
    assert log.index("be playful") < log.index("[tone: in force]") < log.index("be brief")
    assert texts(cairn) == ["be playful", "hello"]


def test_detached_head_switch_back_and_checkout(project):
    cairn = project
    cairn("commit", "one")
    first = cairn.json("log")[0]["hash"]
    cairn("commit", "two")
    assert "no previous branch" in cairn.run("switch", "-", check=False).stderr
    assert "(detached)" in cairn("checkout", first[:12]).stdout
    assert texts(cairn) == ["one"] and [e["hash"] for e in cairn.json("log")] == [first]
    refused = cairn.run("commit", "three", check=False)
    assert refused.returncode == 1 and "detached" in refused.stderr and "switch -c" in refused.stderr
    assert cairn("switch", "-").stdout.strip() == "switched to main"
    assert "(detached)" in cairn("switch", "-").stdout
    cairn("checkout", "main")
    cairn("switch", "-c", "side")
    cairn("switch", "main")
    assert cairn("checkout", "-").stdout.strip() == "switched to side"
    assert not [r for r in cairn.json("branch") if r["name"].startswith("previous")]


def test_log_and_show_say_whether_an_instruction_is_pinned_and_why(project):
    cairn = project
    cairn("commit", "-t", "instruction", "be brief")
    rule = cairn.json("log")[0]["hash"]
    assert "[pinned by default]" in cairn("log").stdout
    shown = cairn.json("show", rule)
    assert (shown["priority"], shown["priority_source"]) == ("pinned", "default")
    cairn("unpin", rule)
    assert "[normal]" in cairn("log").stdout
    shown = {
        line.split(None, 1)[0]: line.split(None, 1)[1]
        for line in cairn("show", rule).stdout.splitlines()
        if " " in line
    }
    assert shown["priority"] == "normal (an annotation)"
