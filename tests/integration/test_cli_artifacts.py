"""The artifact and snapshot commands end to end, on the local store (cairn-artifacts)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_ls_show_get_verify(cairn, tmp_path: Path) -> None:
    chart = tmp_path / "chart.png"
    chart.write_bytes(b"\x89PNG not really")
    record = cairn.json("artifact", "put", str(chart))
    assert record["hash"] == sha(chart.read_bytes())
    assert (record["name"], record["mime"], record["size"]) == ("chart.png", "image/png", 15)
    again = cairn.json("artifact", "put", str(chart), "--name", "figure 1", "--mime", "image/png")
    assert again["hash"] == record["hash"]
    listed = cairn.json("artifact", "ls")
    assert [r["name"] for r in listed] == ["figure 1", "chart.png"]  # newest first
    assert len(cairn.json("artifact", "ls", "--all")) == 1  # stored once
    shown = cairn.json("artifact", "show", record["hash"][:8])
    assert shown["size"] == 15 and [n["name"] for n in shown["names"]] == ["chart.png", "figure 1"]
    out = tmp_path / "copy.png"
    result = cairn("artifact", "get", "@last", "-o", str(out))
    assert out.read_bytes() == chart.read_bytes() and "verified" in result.stderr
    refused = cairn.run("artifact", "get", "@last", "-o", str(out), check=False)
    assert refused.returncode == 1 and "already exists" in refused.stderr and "--force" in refused.stderr
    written = cairn.json("artifact", "get", "@last", "-o", str(out), "--force")
    assert written == {"hash": record["hash"], "size": 15, "path": str(out.resolve())}
    assert cairn.json("artifact", "verify") == {
        "checked": 1,
        "bad": 0,
        "results": [{"hash": record["hash"], "ok": True, "size": 15}],
    }
    piped = cairn("artifact", "put", "-", "--name", "from-stdin.txt", input="piped text")
    assert sha(b"piped text") in piped.stdout


def test_a_damaged_object_is_found_and_never_written_out(cairn, tmp_path: Path) -> None:
    source = tmp_path / "data.csv"
    source.write_text("a,b\n1,2\n")
    digest = cairn.json("--set", "artifacts.inline_max_bytes=0", "artifact", "put", str(source))["hash"]
    stored = cairn.project / ".cairn" / "artifacts" / "objects" / digest[:2] / digest
    stored.chmod(0o644)
    stored.write_text("a,b\n1,3\n")
    verify = cairn("artifact", "verify", ok=False)
    assert verify.exit_code == 1 and f"artifact {digest}" in verify.stderr and "corrupt" in verify.stderr
    target = tmp_path / "out.csv"
    got = cairn.run("artifact", "get", digest, "-o", str(target), check=False)
    assert got.returncode == 1 and "error: artifact" in got.stderr and "corrupt" in got.stderr
    assert "hint:" in got.stderr and "Traceback" not in got.stderr
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_damaged_inline_bytes_are_found_and_never_written_out(cairn, tmp_path: Path) -> None:
    import sqlite3

    source = tmp_path / "small.txt"
    source.write_text("small enough to live inline\n")
    record = cairn.json("artifact", "put", str(source))
    assert record["inline"] is True and record["store"] == "inline"
    with sqlite3.connect(cairn.project / ".cairn" / "cairn.db") as db:
        db.execute("UPDATE artifact_inline SET data = ? WHERE hash = ?", (b"tampered", record["hash"]))
    verify = cairn.run("artifact", "verify", check=False)
    assert verify.returncode == 1 and f"artifact {record['hash']}" in verify.stderr and "corrupt" in verify.stderr
    target = tmp_path / "out.txt"
    got = cairn.run("artifact", "get", record["hash"], "-o", str(target), check=False)
    assert got.returncode == 1 and "corrupt" in got.stderr and "Traceback" not in got.stderr
    assert not target.exists()


def test_bad_input_is_a_clear_error(cairn, tmp_path: Path) -> None:
    cases = [
        (("artifact", "get", "../../etc/passwd", "-o", str(tmp_path / "x")), "is not a hash"),
        (("artifact", "get", "ab", "-o", str(tmp_path / "x")), "at least 4"),
        (("artifact", "show", "a" * 64), "no artifact"),
        (("artifact", "put", str(tmp_path / "missing.bin")), "no file"),
        (("artifact", "put", str(tmp_path), "--name", "dir"), "is a directory"),
        (("artifact", "put", __file__, "--mime", "not a type"), "media type"),
        (("snapshot", "show", "@last"), "none recorded"),
        (("snapshot", "create", str(tmp_path / "nowhere")), "no directory"),
    ]
    for args, message in cases:
        result = cairn.run(*args, check=False)
        assert result.returncode == 1, args
        assert "error: " in result.stderr and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_snapshot_create_list_show_diff_restore(cairn, tmp_path: Path) -> None:
    work = cairn.project / "work"
    (work / "src").mkdir(parents=True)
    (work / "src" / "app.py").write_text("print(1)\n")
    (work / "notes.txt").write_text("todo\n")
    (work / "debug.log").write_text("noise\n")
    (work / "latest").symlink_to("notes.txt")
    os.mkfifo(work / "pipe")
    first = cairn("snapshot", "create", str(work), "--exclude", "*.log")
    before = first.stdout.strip()
    assert "note: pipe: skipped: a named pipe (FIFO)" in first.stderr
    (work / "src" / "app.py").write_text("print(2)\n")
    (work / "src" / "new.py").write_text("")
    (work / "notes.txt").chmod(0o755)
    (work / "notes.txt").unlink()
    second = cairn.json("snapshot", "create", str(work), "--exclude", "*.log")
    assert second["problems"] == [{"path": "pipe", "kind": "special", "detail": "skipped: a named pipe (FIFO)"}]
    listed = cairn.json("snapshot", "list")
    assert [s["tree"] for s in listed] == [second["tree"], before]
    shown = cairn.json("snapshot", "show", before[:10])
    assert [e["path"] for e in shown["entries"]] == ["latest", "notes.txt", "src/app.py"]
    diff = cairn.json("snapshot", "diff", before, "@last")
    assert [c["path"] for c in diff["added"]] == ["src/new.py"]
    assert [c["path"] for c in diff["removed"]] == ["notes.txt"]
    assert [c["path"] for c in diff["changed"]] == ["src/app.py"]
    text = cairn("snapshot", "diff", before, "@last").stdout.splitlines()
    assert text == ["D notes.txt", "M src/app.py", "A src/new.py"]
    target = tmp_path / "then"
    cairn("snapshot", "restore", before, str(target))
    assert (target / "src" / "app.py").read_text() == "print(1)\n"
    assert os.readlink(target / "latest") == "notes.txt"
    refused = cairn.run("snapshot", "restore", before, str(target), check=False)
    assert refused.returncode == 1 and "not empty" in refused.stderr and "--force" in refused.stderr
    assert cairn.json("snapshot", "create", str(target))["tree"] == before


def test_the_data_directory_is_never_snapshotted(cairn) -> None:
    (cairn.project / "file.txt").write_text("x")
    cairn("artifact", "put", str(cairn.project / "file.txt"))
    tree = cairn("snapshot", "create", ".").stdout.strip()
    paths = [e["path"] for e in cairn.json("snapshot", "show", tree)["entries"]]
    assert paths == ["cairn.toml", "file.txt"]


def test_strict_fails_on_the_first_problem(cairn) -> None:
    work = cairn.project / "w"
    work.mkdir()
    os.mkfifo(work / "pipe")
    result = cairn.run("snapshot", "create", str(work), "--strict", check=False)
    assert result.returncode == 1 and "pipe: skipped" in result.stderr and "--exclude" in result.stderr
    assert cairn.json("snapshot", "list") == []


def test_a_second_snapshot_reads_only_what_changed(cairn) -> None:
    work = cairn.project / "big"
    work.mkdir()
    for i in range(50):
        (work / f"f{i}.txt").write_text(f"file {i}\n")
    old = os.stat(work).st_mtime - 3600
    for path in work.iterdir():
        os.utime(path, (old, old))
    cairn("snapshot", "create", str(work), "--json")
    # ctime cannot be set back: the cache trusts these files only once they are two seconds old.
    time.sleep(2.1)
    cairn("snapshot", "create", str(work), "--json")
    (work / "f7.txt").write_text("changed\n")
    third = cairn.json("snapshot", "create", str(work))
    assert (third["files_read"], third["files_cached"]) == (1, 49)
    assert cairn.json("snapshot", "create", str(work), "--no-cache")["files_read"] == 50


def test_an_unknown_store_says_what_to_install(cairn) -> None:
    result = cairn.run("--set", "artifacts.store=nowhere", "artifact", "ls", "--all", check=False)
    assert result.returncode == 1 and "no artifact store 'nowhere'" in result.stderr
    assert "cairn-s3" in result.stderr
