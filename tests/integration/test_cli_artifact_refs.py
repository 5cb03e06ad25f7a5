"""Artifacts referenced from context, runs and chat, and collected by `cairn gc`, on SQLite and on git."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

GIT_ENV = {"GIT_AUTHOR_NAME": "Ann", "GIT_AUTHOR_EMAIL": "a@example.org"}
GIT_ENV |= {"GIT_COMMITTER_NAME": "Ann", "GIT_COMMITTER_EMAIL": "a@example.org"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["sqlite", "git"])
def project(request, cairn, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    if request.param == "git":
        for name, value in GIT_ENV.items():
            monkeypatch.setenv(name, value)
        subprocess.run(["git", "init", "-q", "-b", "work", str(cairn.project)], check=True)
        (cairn.project / "cairn.toml").write_text('[cairn]\nstorage = "git"\n')
    return cairn


PROGRAM = """
import pathlib, sys
work = pathlib.Path(sys.argv[1])
(work / "a.txt").write_text("changed by the run\\n")
(work / "gone.txt").unlink()
(work / "tool.sh").chmod(0o755)
(work / "out").mkdir()
(work / "out" / "report.md").write_text("# what the run found\\n")
"""


def make_work(root: Path) -> Path:
    work = root / "work"
    work.mkdir()
    (work / "a.txt").write_text("before\n")
    (work / "gone.txt").write_text("to be removed\n")
    (work / "tool.sh").write_text("echo tool\n")
    return work


def test_a_run_snapshots_a_directory_and_attaches_an_artifact(project) -> None:
    cairn = project
    work = make_work(cairn.project)
    report = work / "out" / "report.md"
    done = cairn.run(
        "run",
        "--snapshot",
        str(work),
        "--artifact",
        str(report),
        "--artifact",
        str(work / "nowhere.bin"),
        "--",
        sys.executable,
        "-c",
        PROGRAM,
        str(work),
    )
    assert "1 added, 1 removed, 1 changed, 1 mode changed" in done.stderr
    assert "not attached: " in done.stderr and "does not exist" in done.stderr
    events = cairn.json("runs", "events", "@last")
    by_type: dict[str, list[dict]] = {}
    for event in events:
        by_type.setdefault(event["type"], []).append(event["fields"])
    before, after = by_type["snapshot"]
    assert (before["phase"], after["phase"]) == ("before", "after") and before["tree"] != after["tree"]
    (changes,) = by_type["changes"]
    assert (changes["before"], changes["after"]) == (before["tree"], after["tree"])
    assert changes["added"] == ["out/report.md"] and changes["removed"] == ["gone.txt"]
    assert changes["changed"] == ["a.txt"] and changes["mode_changed"] == ["tool.sh"]
    (attached,) = by_type["artifact"]
    assert attached["hash"] == sha(report.read_bytes()) and attached["name"] == "report.md"
    assert by_type["artifact_missing"][0]["reason"] == "it does not exist"
    run_id = cairn.json("runs", "list")[0]["run_id"]
    listed = cairn.json("artifact", "ls")
    assert [(r["name"], r["referrer"]) for r in listed] == [("report.md", f"run:{run_id}")]
    assert [s["referrer"] for s in cairn.json("snapshot", "list")] == [f"run:{run_id}"] * 2
    diff = cairn("snapshot", "diff", before["tree"], after["tree"]).stdout.splitlines()
    assert diff == ["M a.txt", "D gone.txt", "A out/report.md", "T tool.sh  (100644 -> 100755)"]
    out = cairn.project / "copy.md"
    cairn("artifact", "get", attached["hash"], "-o", str(out))
    assert out.read_bytes() == report.read_bytes()


def test_a_snapshot_that_cannot_be_taken_fails_the_run_before_the_command(project) -> None:
    cairn = project
    marker = cairn.project / "ran"
    result = cairn.run(
        "run",
        "--snapshot",
        str(cairn.project / "missing"),
        "--",
        sys.executable,
        "-c",
        f"open({str(marker)!r}, 'w')",
        check=False,
    )
    assert result.returncode == 1 and "no directory" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()
    (run,) = cairn.json("runs", "list")
    assert run["status"] == "failed" and "could not snapshot" in run["summary"]


def test_chat_messages_reference_attachments(project) -> None:
    cairn = project
    chart = cairn.project / "chart.png"
    chart.write_bytes(b"\x89PNG\r\n\x1a\n fake image")
    sent = cairn.json("chat", "send", "the chart", "--attach", str(chart))
    assert sent["attachments"] == [
        {"hash": sha(chart.read_bytes()), "name": "chart.png", "mime": "image/png", "size": 19}
    ]
    (message,) = cairn.json("chat", "list")
    assert message["attachments"] == sent["attachments"]
    assert "[attached chart.png (image/png, 19 B" in cairn("chat", "list").stdout
    assert cairn.json("artifact", "ls")[0]["referrer"] == f"chat:{sent['id']}"
    refused = cairn.run("chat", "send", "x", "--thread", "no-such-thread", "--attach", str(chart), check=False)
    assert refused.returncode == 1 and "no thread" in refused.stderr
    assert len(cairn.json("artifact", "ls")) == 1  # nothing was stored for the refused message


def test_artifact_put_commit_puts_a_reference_in_context(project) -> None:
    cairn = project
    chart = cairn.project / "chart.png"
    chart.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(40)))
    record = cairn.json("artifact", "put", str(chart), "--commit")
    assert record["commit"] is not None
    text = cairn("materialize", "--format", "text").stdout
    assert f"[artifact chart.png (image/png, 48 B, sha256 {record['hash'][:12]})]" in text
    plain = cairn.json("materialize", "--format", "openai")["messages"]
    assert plain[-1] == {"role": "user", "content": text.split(": ", 1)[1].strip()}
    shown = cairn.json("materialize", "--format", "openai", "--images")["messages"][-1]
    assert shown["role"] == "user" and shown["content"][1]["type"] == "image_url"
    assert shown["content"][1]["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")


def test_gc_collects_what_nothing_reaches_and_keeps_the_rest(project) -> None:
    cairn = project
    work = make_work(cairn.project)
    cairn.run("run", "--snapshot", str(work), "--", sys.executable, "-c", "pass")
    kept_in_chat = cairn.project / "chat.txt"
    kept_in_chat.write_text("attached to a message\n")
    cairn("chat", "send", "see attached", "--attach", str(kept_in_chat))
    committed = cairn.project / "committed.bin"
    committed.write_bytes(os.urandom(100_000))  # large: the artifact store
    cairn("artifact", "put", str(committed), "--commit")
    loose_small = cairn.project / "loose.txt"
    loose_small.write_text("nobody refers to me\n")
    loose_large = cairn.project / "loose.bin"
    loose_large.write_bytes(os.urandom(70_000))
    small = cairn.json("artifact", "put", str(loose_small))["hash"]
    large = cairn.json("artifact", "put", str(loose_large))["hash"]
    other = cairn.project / "other"
    other.mkdir()
    (other / "only-here.txt").write_text("in one unreferenced snapshot only\n")
    lonely_tree = cairn.json("snapshot", "create", str(other))["tree"]

    assert cairn.json("gc")["artifacts"]["removed"] == []  # everything is younger than the grace period
    dry = cairn.json("gc", "--dry-run", "--grace", "0s")["artifacts"]
    removed = {r["hash"]: r for r in dry["removed"]}
    assert set(removed) == {small, large, lonely_tree, sha(b"in one unreferenced snapshot only\n")}
    assert removed[small]["where"] == "inline" and removed[large]["where"] == "store"
    assert removed[small]["names"] == ["loose.txt"]
    text = cairn("gc", "--dry-run", "--grace", "0s").stdout
    assert "would remove 4 artifacts" in text and small[:16] in text
    assert cairn.run("artifact", "get", small, "-o", "-").stdout == "nobody refers to me\n"  # dry run: nothing gone

    cairn("gc", "--grace", "0s")
    for gone in (small, large):
        result = cairn.run("artifact", "get", gone, "-o", "-", check=False)
        assert result.returncode == 1 and "no artifact" in result.stderr
    assert [s["tree"] for s in cairn.json("snapshot", "list")].count(lonely_tree) == 0
    assert {r["name"] for r in cairn.json("artifact", "ls")} == {"chat.txt", "committed.bin"}
    assert cairn.json("artifact", "verify")["bad"] == 0
    assert list((cairn.project / ".cairn" / "snapshot-cache").iterdir()) == []  # caches may have named what went
    for tree in {s["tree"] for s in cairn.json("snapshot", "list")}:
        cairn("snapshot", "restore", tree, str(cairn.project / f"restored-{tree[:8]}"))
    assert cairn.json("gc", "--grace", "0s")["artifacts"]["removed"] == []


def test_gc_refuses_a_bad_grace(project) -> None:
    result = project.run("gc", "--grace", "soon", check=False)
    assert result.returncode == 1 and "is not an age" in result.stderr and "Traceback" not in result.stderr


def _limited(limit: int):  # type: ignore[no-untyped-def]
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_while_attaching_is_a_clear_error_and_keeps_the_run(project) -> None:
    cairn = project
    big = cairn.project / "big.bin"
    big.write_bytes(os.urandom(3 << 20))
    cairn.run("run", "--", sys.executable, "-c", "pass")  # the store exists before the limit applies
    env = {**os.environ, "CAIRN_USER_CONFIG": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "cairn", "run", "--artifact", str(big), "--", sys.executable, "-c", "pass"],
        cwd=cairn.project,
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=_limited(1 << 20),  # a file may not grow past 1 MiB: what a full disk looks like to a write
    )
    assert proc.returncode == 1, proc.stderr
    assert "file size limit was reached" in proc.stderr and "nothing was kept" in proc.stderr
    assert "recorded as partial" in proc.stderr and "Traceback" not in proc.stderr
    newest = cairn.json("runs", "list")[0]
    assert newest["status"] == "partial"
    assert [e["type"] for e in cairn.json("runs", "events", newest["run_id"])] == ["exit"]
    objects = cairn.project / ".cairn" / "artifacts"
    assert not [p for p in objects.rglob("*") if p.name.startswith(".tmp-")]  # nothing half-written
    assert cairn.json("artifact", "ls", "--all") == [] and cairn.json("artifact", "verify")["bad"] == 0


def test_a_symlink_loop_in_a_snapshotted_directory_is_just_two_links(project) -> None:
    cairn = project
    work = make_work(cairn.project)
    (work / "loop-a").symlink_to("loop-b")
    (work / "loop-b").symlink_to("loop-a")
    cairn.run("run", "--snapshot", str(work), "--", sys.executable, "-c", "pass")
    before = next(e["fields"] for e in cairn.json("runs", "events", "@last") if e["type"] == "snapshot")
    links = [e for e in cairn.json("snapshot", "show", before["tree"])["entries"] if e["mode"] == "120000"]
    assert [(e["path"], e["target"]) for e in links] == [("loop-a", "loop-b"), ("loop-b", "loop-a")]


def test_names_from_the_first_releases_sidecar_catalog_are_imported(project) -> None:
    cairn = project
    report = cairn.project / "report.pdf"
    report.write_bytes(b"%PDF-1.7 a report" * 5000)  # large: it stays in the artifact store
    digest = cairn.json("artifact", "put", str(report))["hash"]
    sidecar = cairn.project / ".cairn" / "catalog"
    sidecar.mkdir()
    line = {"hash": digest, "name": "old name.pdf", "mime": "application/pdf", "size": 85000}
    (sidecar / "artifacts.jsonl").write_text(json.dumps({**line, "created": "2026-01-02T03:04:05.000000Z"}) + "\n")
    tree = hashlib.sha256(b"an old tree").hexdigest()
    snap = {"tree": tree, "source": "/old/src", "created": "2026-01-02T03:04:06.000000Z", "files": 2}
    (sidecar / "snapshots.jsonl").write_text(json.dumps({**snap, "bytes": 9, "problems": 0}) + "\n")
    names = [r["name"] for r in cairn.json("artifact", "ls")]
    assert names == ["report.pdf", "old name.pdf"]
    assert [(s["tree"], s["root"]) for s in cairn.json("snapshot", "list")] == [(tree, "/old/src")]
    assert not sidecar.exists() and (cairn.project / ".cairn" / "catalog.imported").is_dir()
    assert [n["name"] for n in cairn.json("artifact", "show", digest)["names"]] == ["old name.pdf", "report.pdf"]
