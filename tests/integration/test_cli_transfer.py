"""`cairn export` / `cairn import` and branch names on the command line, on both backends.

Bad input gets one clear line (``error:`` + ``hint:``), a non-zero exit, no
traceback, and leaves the store as it was (``cairn fsck`` clean).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from cairn.cli import main

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ann",
    "GIT_AUTHOR_EMAIL": "ann@example.org",
    "GIT_COMMITTER_NAME": "Ann",
    "GIT_COMMITTER_EMAIL": "ann@example.org",
}
HEADER = '{"commits":0,"format":"cairn-export/1","type":"header"}\n'


class Project:
    """One project on one backend; commands run through ``cairn.cli.main`` in process (exit status and all)."""

    def __init__(self, path: Path, backend: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.path = path
        self.capsys = capsys
        path.mkdir()
        if backend == "git":
            subprocess.run(["git", "init", "-q", "-b", "work"], cwd=path, check=True, env={**os.environ, **GIT_ENV})
        self("init")
        (path / "cairn.toml").write_text(f'[cairn]\nstorage = "{backend}"\n')

    def __call__(self, *args: str, ok: bool = True) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            main(["-C", str(self.path), *args])
            status = 0
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        out, err = self.capsys.readouterr()
        if ok:
            assert status == 0, f"cairn {' '.join(args)} exited {status}:\n{err}"
        assert "Traceback" not in err
        return status, out, err

    def fails(self, *args: str, status: int = 1) -> str:
        code, _, err = self(*args, ok=False)
        assert code == status, err
        assert err.startswith("error: ") or err.startswith("Usage:"), err
        return err

    def log(self, *args: str) -> list[dict]:
        return json.loads(self("log", "--json", *args)[1])

    def fsck_ok(self) -> None:
        assert self("fsck")[0] == 0


@pytest.fixture(params=["sqlite", "git"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def project(cairn_env, backend, capsys) -> Project:
    return Project(cairn_env / backend, backend, capsys)


@pytest.fixture
def other(cairn_env, backend, capsys) -> Project:
    return Project(cairn_env / f"other-{backend}", backend, capsys)


@pytest.fixture
def exported(project, tmp_path) -> Path:
    project("commit", "-t", "instruction", "rules")
    project("commit", "one")
    project("switch", "-c", "b")
    project("edit", "HEAD", "one, edited")
    project("pin", "HEAD~1")
    out = tmp_path / "dump.jsonl"
    project("export", "-o", str(out))
    return out


# -- import --------------------------------------------------------------------------------------


def test_round_trip_then_a_second_import_says_everything_was_there(exported, project, other):
    first = other("import", str(exported))[1]
    assert "imported 3 new commits, 0 already present; 3 refs, 1 annotation" in first
    other.fsck_ok()
    assert [e["hash"] for e in other.log("b")] == [e["hash"] for e in project.log("b")]
    assert "imported 0 new commits, 3 already present; 0 refs, 0 annotations" in other("import", str(exported))[1]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[1,2]\n", "dump.jsonl:2: expected a JSON object"),
        ('{"type":"blob"}\n', "dump.jsonl:2: blob: missing"),
        ('{"type":"ref","value":"x"}\n', "dump.jsonl:2: ref: missing 'name'"),
        (
            '{"type":"annotation","target":"' + "a" * 64 + '","priority":"pinned","reason":"","created_at":'
            '"2026-01-01T00:00:00.000000Z","bogus":1}\n',
            "dump.jsonl:2: annotation: unknown key 'bogus'",
        ),
        (
            '{"type":"annotation","target":"' + "a" * 64 + '","priority":"ultra","reason":"","created_at":'
            '"2026-01-01T00:00:00.000000Z"}\n',
            "dump.jsonl:2: annotation: priority 'ultra'",
        ),
        ("[" * 200_000 + "]" * 200_000 + "\n", "dump.jsonl:2: nested too deeply"),
    ],
)
def test_malformed_records_are_refused_with_file_and_line(other, tmp_path, body, message):
    bad = tmp_path / "dump.jsonl"
    bad.write_text(HEADER.replace('"commits":0,', "") + body)
    err = other.fails("import", str(bad))
    assert message in err and "hint:" in err
    assert other.log() == []
    other.fsck_ok()


def test_invalid_utf8_empty_files_and_missing_files(other, tmp_path):
    bad = tmp_path / "dump.jsonl"
    bad.write_bytes(HEADER.encode() + b'{"type":"blob","x":"\xff\xfe"}\n')
    assert "dump.jsonl:2: not valid UTF-8" in other.fails("import", str(bad))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert "no export header" in other.fails("import", str(empty))
    assert "no export header" in other.fails("import", os.devnull)
    assert "does not exist" in other.fails("import", str(tmp_path / "nonexistent.jsonl"), status=2)
    assert other.log() == []
    other.fsck_ok()


def _edited(source: Path, target: Path, kind: str, change) -> Path:
    lines = []
    for line in source.read_text().splitlines():
        record = json.loads(line)
        if record["type"] == kind:
            change(record)
        lines.append(json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    target.write_text("\n".join(lines) + "\n")
    return target


@pytest.mark.parametrize(
    "change",
    [{"depth": 7}, {"skip": "e" * 64}, {"content_type": "artifact"}, {"token_count": 999}, {"tokenizer": "x"}],
)
def test_edited_derived_fields_are_recomputed_and_fsck_stays_clean(exported, project, other, tmp_path, change):
    edited = _edited(exported, tmp_path / "edited.jsonl", "commit", lambda r: r["derived"].update(change))
    other("import", str(edited))
    other.fsck_ok()
    assert other.log("b") == project.log("b")


def test_a_token_count_beyond_64_bits_is_refused(exported, other, tmp_path):
    edited = _edited(exported, tmp_path / "edited.jsonl", "commit", lambda r: r["derived"].update(token_count=10**30))
    assert "token_count must be an integer" in other.fails("import", str(edited))
    assert other.log() == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("refs/heads/../../etc/passwd", None),
        ("refs/heads/-x", None),
        ("refs/heads/🪨", None),
        ("refs/heads/ffff", None),
        ("refs/heads/main", "zzz"),
        ("HEAD", "ref: ../../etc"),
        ("refs/heads/main", "c" * 64),  # a commit in neither the file nor the store
    ],
)
def test_refs_the_cli_would_refuse_are_refused(exported, other, tmp_path, name, value):
    def change(record):
        if record["name"] == "refs/heads/main":
            record["name"] = name
            if value is not None:
                record["value"] = value

    edited = _edited(exported, tmp_path / "edited.jsonl", "ref", change)
    assert "edited.jsonl:" in other.fails("import", str(edited))
    assert other.log() == [] and other("branch", "--json")[1].strip() == "[]"
    other.fsck_ok()


# -- export ------------------------------------------------------------------------------------------


def test_export_to_an_empty_or_impossible_path_is_a_clear_error(project, tmp_path):
    project("commit", "one")
    assert "give a file name" in project.fails("export", "-o", "", status=2)
    err = project.fails("export", "-o", "/proc/nope/x")
    assert "/proc/nope/x" in err and "hint:" in err
    assert "is a directory" in project.fails("export", "-o", str(tmp_path), status=2)


def test_export_never_follows_a_planted_symlink(project, tmp_path):
    project("commit", "one")
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    victim.write_text("precious\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "out.jsonl.partial").symlink_to(victim)  # where the old export wrote its temporary file
    project("export", "-o", str(work / "out.jsonl"))
    assert victim.read_text() == "precious\n"
    assert json.loads((work / "out.jsonl").read_text().splitlines()[0])["type"] == "header"
    # The target itself a link: the link is replaced, what it pointed at is not written.
    (work / "link.jsonl").symlink_to(victim)
    project("export", "-o", str(work / "link.jsonl"))
    assert victim.read_text() == "precious\n" and not (work / "link.jsonl").is_symlink()
    assert sorted(p.name for p in work.iterdir()) == ["link.jsonl", "out.jsonl", "out.jsonl.partial"]


# -- branch names and revisions ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ffff", "FFFF", "deadbeef", "a" * 64])
def test_branch_names_that_look_like_hashes_are_refused(project, name):
    project("commit", "one")
    assert "looks like a commit hash" in project.fails("branch", "create", name)
    assert "looks like a commit hash" in project.fails("switch", "-c", name)
    project("branch", "create", "ok")
    assert "looks like a commit hash" in project.fails("branch", "rename", "ok", name)
    project.fsck_ok()


def test_a_full_hash_means_the_commit_even_beside_a_branch_of_that_name(project):
    from cairn.cli._app import State
    from cairn.storage import RefUpdate

    project("commit", "first")
    project("commit", "second")
    first, second = (e["hash"] for e in reversed(project.log()))
    # A branch named like the first commit's hash (possible before the rule), pointing at the second.
    state = State(project=str(project.path))
    try:
        state.store.write(refs=[RefUpdate(f"refs/heads/{first}", second, None)])
    finally:
        state.close()
    assert project("pin", first)[1].startswith(first[:12])
    assert json.loads(project("show", "--json", first)[1])["hash"] == first
    # Such a branch can still be renamed or deleted.
    project("branch", "rename", first, "renamed")
    project("branch", "delete", "renamed")
    project.fsck_ok()


@pytest.mark.parametrize(
    "args",
    [
        ("branch", "delete", "\udcff\udcfe"),
        ("branch", "create", "\udcff\udcfe"),
        ("branch", "rename", "\udcff", "x"),
        ("branch", "rename", "main", "\udcff"),
        ("switch", "\udcff\udcfe"),
        ("switch", "-c", "\udcff\udcfe"),
        ("log", "\udcff"),
        ("materialize", "\udcff"),
        ("materialize", "--as-of", "\udcff"),
        ("delete", "\udcff"),
        ("edit", "\udcff", "text"),
        ("diff", "\udcff"),
        ("show", "\udcff"),
        ("pin", "\udcff"),
        ("export", "--branch", "\udcff"),
    ],
)
def test_names_that_are_not_text_are_refused_clearly(project, args):
    # Python hands a command line's bytes that are not UTF-8 over as lone surrogates.
    project("commit", "one")
    err = project.fails(*args)
    assert "not valid UTF-8" in err and "hint:" in err
    project.fsck_ok()


def test_fsck_reports_a_badly_named_branch_and_branch_delete_removes_it(project):
    from cairn.cli._app import State
    from cairn.storage import RefUpdate

    project("commit", "one")
    (head,) = (e["hash"] for e in project.log())
    state = State(project=str(project.path))
    try:  # as an import before these checks could leave it
        state.store.write(refs=[RefUpdate("refs/heads/../../etc/passwd", head, None)])
    finally:
        state.close()
    status, _, err = project("fsck", ok=False)
    assert status == 1
    assert "bad_ref refs/heads/../../etc/passwd" in err and "cairn branch delete" in err
    project("branch", "delete", "../../etc/passwd")
    project.fsck_ok()
