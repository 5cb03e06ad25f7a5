"""What the store leaves in git, read back with plain git, and what it never touches."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cairn_git.config import GitConfig
from cairn_git.store import GitStore
from helpers import events, fsck, git, make_repo, run, user_state

from cairn.errors import ConflictError, IntegrityError, StorageError, ValidationError
from cairn.model import canonical_json
from cairn.model.chat import ChatMessage, Thread
from cairn.model.ledger import SpendRecord
from cairn.storage import RefUpdate
from cairn.testing.storage import MAIN, Chain, at


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "project")


def test_runs_are_on_an_orphan_ledger_branch_with_a_tag_each(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD").strip()
    with GitStore(repo) as store:
        first = run("20260101T000000.000000Z_job_0a1b2c3d", 1, summary="first ✓")
        store.put_run(first, events(first.run_id, 3))
        store.put_runs([(run(f"batch-{i}", 10 + i), events(f"batch-{i}", 1)) for i in range(3)])
    files = git(repo, "ls-tree", "-r", "--name-only", "refs/heads/cairn-ledger").split()
    run_files = [f for f in files if first.run_id in f]
    assert len(run_files) == 2
    shard = run_files[0].split("/")[2]
    assert len(shard) == 2 and all(c in "0123456789abcdef" for c in shard)
    assert sorted(run_files) == [
        f"ledger/runs/{shard}/{first.run_id}/events.jsonl",
        f"ledger/runs/{shard}/{first.run_id}/run.json",
    ]
    lines = git(repo, "show", f"cairn-ledger:ledger/runs/{shard}/{first.run_id}/events.jsonl").splitlines()
    assert len(lines) == 3
    for seq, line in enumerate(lines):
        record = json.loads(line)
        assert line.startswith('{"ts":"' + record["ts"] + '"') and record["seq"] == seq
    record = git(repo, "show", f"cairn-ledger:ledger/runs/{shard}/{first.run_id}/run.json")
    assert record.encode() == canonical_json(first.to_record()) + b"\n"
    # An orphan branch: no history shared with the user's.
    assert git(repo, "merge-base", "HEAD", "cairn-ledger", check=False) == ""
    # The tag: annotated, the user's identity, pointing at HEAD, the run as its message.
    ref = f"refs/cairn/runs/{first.run_id}"
    assert git(repo, "cat-file", "-t", ref).strip() == "tag"
    tag = git(repo, "cat-file", "-p", ref)
    assert f"object {head}\ntype commit\ntag cairn/run/{first.run_id}\n" in tag
    assert "tagger Ada Lovelace <ada@example.invalid> " in tag
    assert tag.split("\n\n", 1)[1] == record
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/cairn/runs/").split() == [
        "refs/cairn/runs/20260101T000000.000000Z_job_0a1b2c3d",
        "refs/cairn/runs/batch-0",
        "refs/cairn/runs/batch-1",
        "refs/cairn/runs/batch-2",
    ]
    assert git(repo, "tag", "--list") == ""  # the default keeps runs out of refs/tags (and git describe)
    assert fsck(repo) == ""


def test_one_put_runs_is_one_ledger_commit(repo: Path) -> None:
    with GitStore(repo) as store:
        store.put_runs([(run(f"r-{i}", i), events(f"r-{i}", 2)) for i in range(25)])
        assert len(store.list_runs()) == 25
    assert git(repo, "rev-list", "--count", "cairn-ledger").strip() == "1"


def test_a_repository_without_commits_tags_the_ledger_commit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "empty", commit=False)
    before = user_state(repo)
    with GitStore(repo) as store:
        store.put_run(run("r-1", 1), events("r-1", 2))
        assert [e.seq for e in store.run_events("r-1")] == [0, 1]
    target = git(repo, "rev-parse", "refs/cairn/runs/r-1^{}").strip()
    assert target == git(repo, "rev-parse", "cairn-ledger").strip()
    assert git(repo, "rev-parse", "-q", "--verify", "HEAD", check=False) == ""  # still no commits
    assert user_state(repo) == before
    assert fsck(repo) == ""


def test_tags_mode_and_a_tagger_without_git_identity(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "anon", identity=False)
    with GitStore(repo, run_refs="tags", namespace="lab") as store:
        store.put_run(run("r-1", 1))
        assert [r.run_id for r in store.list_runs()] == ["r-1"]
        assert store.delete_runs(["r-1"]) == 1
        store.put_run(run("r-2", 2))
    assert git(repo, "tag", "--list").split() == ["lab/run/r-2"]
    assert "tagger cairn <cairn@localhost> " in git(repo, "cat-file", "-p", "refs/tags/lab/run/r-2")
    assert git(repo, "for-each-ref", "refs/cairn/", "refs/lab/runs/") == ""


def test_context_objects_refs_spend_and_chat_are_plain_git(repo: Path) -> None:
    chain = Chain()
    one, two = chain.line(2)
    with GitStore(repo) as store:
        store.write(
            **chain.batch(one, two),
            refs=[RefUpdate(MAIN, two.hash, None), RefUpdate("HEAD", "ref: refs/heads/main", None)],
            token_counts={"hf:org/model.v1": {one.content_hash: 7}},
        )  # type: ignore[dict-item]
        store.add_spend([SpendRecord(at(5), "openai", "gpt-x", "ok", cost=0.5, run_id="r-1")])
        store.put_thread(Thread("t-1", "Talk", at(6)))
        store.add_chat_message(ChatMessage(id="m-1", ts=at(7), text="hi", thread_id="t-1"))
    assert git(repo, "cat-file", "-p", "refs/cairn/context/refs/heads/main.ref") == two.hash
    assert git(repo, "cat-file", "-p", "refs/cairn/context/HEAD.ref") == "ref: refs/heads/main"
    record = json.loads(git(repo, "show", f"refs/cairn/objects:commits/{two.hash[:2]}/{two.hash}"))
    assert record == two.to_record()
    blob = git(repo, "show", f"refs/cairn/objects:blobs/{one.content_hash[:2]}/{one.content_hash}")  # type: ignore[index]
    assert blob.encode() == chain.blobs[one.content_hash]  # type: ignore[index]
    tokens = git(repo, "ls-tree", "-r", "--name-only", "refs/cairn/objects", "tokens").split()
    assert tokens == [f"tokens/hf:org%2Fmodel%2Ev1/{one.content_hash[:2]}/{one.content_hash}"]  # type: ignore[index]
    ledger = git(repo, "ls-tree", "-r", "--name-only", "cairn-ledger").split()
    assert [f for f in ledger if f.startswith("ledger/spend/2026-01-01/")] and "ledger/chat/threads/t-1.json" in ledger
    assert any(f.startswith("ledger/chat/messages/") and f.endswith("/m-1.json") for f in ledger)
    assert fsck(repo) == ""


@pytest.mark.parametrize("trap", ["gpg", "hooks"])
def test_signing_settings_and_user_hooks_change_nothing(tmp_path: Path, trap: str) -> None:
    repo = make_repo(tmp_path / trap)
    if trap == "gpg":
        for key, value in (
            ("commit.gpgSign", "true"),
            ("tag.gpgSign", "true"),
            ("gpg.program", str(tmp_path / "no-such-gpg")),
        ):
            git(repo, "config", key, value)
    else:
        hooks = repo / ".git" / "hooks"
        for name in ("pre-commit", "reference-transaction", "post-commit", "pre-auto-gc"):
            (hooks / name).write_text("#!/bin/sh\necho refused >&2\nexit 1\n")
            (hooks / name).chmod(0o755)
    (repo / "README").write_text("edited, not staged\n")
    (repo / "new.txt").write_text("untracked\n")
    before = user_state(repo)
    chain = Chain()
    one, two = chain.line(2)
    with GitStore(repo, gc_auto=True) as store:
        store.put_run(run("r-open", 1, status="open"), events("r-open", 1))
        store.append_events("r-open", events("r-open", 2, start=1))
        store.put_run(run("r-open", 1, status="failed"), expected_status="open")
        store.put_runs([(run(f"b-{i}", i), events(f"b-{i}", 1)) for i in range(5)])
        store.write(**chain.batch(one, two), refs=[RefUpdate(MAIN, two.hash, None)])
        store.add_spend([SpendRecord(at(1), "local", "m", "ok")])
        assert store.delete_runs(["b-0"]) == 1
        assert len(store.list_runs()) == 5 and store.get_run("r-open").status == "failed"  # type: ignore[union-attr]
        assert [e.seq for e in store.run_events("r-open")] == [0, 1, 2]
    assert user_state(repo) == before
    assert fsck(repo) == ""


@pytest.mark.parametrize("bad", ["../x", "-rf", "a/b", "x..y", "", "a b", "x.lock"])
def test_invalid_ids_are_refused_before_reaching_git(repo: Path, bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with GitStore(repo) as store:

        def no_git(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"git was called with {args!r}")

        for target, name in ((store._cat, "read"), (store._cat, "info"), (store._git, "run"), (store._tx, "apply")):
            monkeypatch.setattr(target, name, no_git)
        calls = [
            lambda: store.get_run(bad),
            lambda: store.run_events(bad),
            lambda: store.append_events(bad, []),
            lambda: store.delete_runs(["fine", bad]),
            lambda: store.get_thread(bad),
        ]
        for call in calls:
            with pytest.raises(ValidationError):
                call()
        with pytest.raises(ValidationError):
            store.pull(remote=bad or "-")


def test_settings_are_validated(repo: Path) -> None:
    for key, value in (
        ("namespace", "a/b"),
        ("namespace", "-x"),
        ("namespace", "a.b"),
        ("namespace", "replace"),
        ("namespace", "heads"),
        ("ledger_branch", "-x"),
        ("ledger_branch", "a..b"),
        ("ledger_branch", "x.lock"),
        ("remote", "-origin"),
        ("run_refs", "notes"),
        ("gc_auto", "yes"),
    ):
        with pytest.raises(ValueError):
            GitConfig(**{key: value})
        with pytest.raises(ValidationError):
            GitStore(repo, **{k: v for k, v in {key: value}.items() if k != "repo"})


def test_outside_a_repository_says_to_run_git_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(StorageError) as info:
        GitStore(plain)
    assert "not inside a git repository" in info.value.message and "git init" in str(info.value.hint)


def test_a_failed_batch_leaves_every_ref_where_it_was(repo: Path) -> None:
    with GitStore(repo) as store:
        store.put_run(run("taken", 1))
        before = git(repo, "for-each-ref")
        with pytest.raises(ConflictError):
            store.put_runs([(run("new-1", 2), events("new-1", 2)), (run("taken", 3), [])])
        with pytest.raises(ConflictError):
            store.put_runs([(run("twice", 2), []), (run("twice", 3), [])])
        assert git(repo, "for-each-ref") == before


def _objects(repo: Path) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split(": ") for line in git(repo, "count-objects", "-v").splitlines())}


def test_maintenance_keeps_packs_few_and_runs_gc_auto_when_git_would(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "gc")
    git(repo, "config", "gc.auto", "50")  # git wants gc once objects/17 holds more than one loose object
    git(repo, "config", "gc.autoDetach", "false")
    with GitStore(repo) as store:
        for i in range(300):  # each run: one small pack; 32 of them are merged into one
            store.put_run(run(f"r-{i:03d}", i), events(f"r-{i:03d}", 2))
        assert store.gc_runs == 0 and store.last_gc_error is None
        counts = _objects(repo)
        assert counts["count"] <= 3 and 1 <= counts["packs"] <= 33, counts  # 3: the first commit
        # Loose objects of the user's own: once there are more than gc.auto allows, the next write runs gc.
        for i in range(600):
            git(repo, "hash-object", "-w", "--stdin", input=f"loose {i}\n".encode())
        for j in range(4):  # the store looks at loose objects every 4th write
            store.put_run(run(f"after-{j}", 999))
        assert store.gc_runs == 1 and store.last_gc_error is None
        # gc ran: it packed the refs (the unreachable loose objects wait for prune's two weeks).
        assert (repo / ".git" / "packed-refs").exists() and not list((repo / ".git" / "refs" / "cairn").rglob("r-*"))
        assert len(store.list_runs()) == 304 and len(store.run_events("r-299")) == 2
        assert store.check() == []
    assert fsck(repo) == ""
    other = make_repo(tmp_path / "no-gc")
    with GitStore(other, gc_auto=False) as store:
        for i in range(50):
            store.put_run(run(f"r-{i:03d}", i))
        assert store.gc_runs == 0
    counts = _objects(other)
    assert counts["packs"] == 0 and counts["count"] >= 50 * 8  # without maintenance, small writes stay loose


def test_check_reports_a_run_whose_tag_and_record_disagree(repo: Path) -> None:
    with GitStore(repo) as store:
        store.put_runs([(run("a", 1), []), (run("b", 2), [])])
        assert store.check() == []
        git(repo, "update-ref", "refs/cairn/runs/a", git(repo, "rev-parse", "refs/cairn/runs/b").strip())
        git(repo, "update-ref", "refs/cairn/runs/stray", git(repo, "rev-parse", "HEAD").strip())
        problems = {(p.kind, p.object) for p in store.check()}
        assert ("other", "run a") in problems and ("other", "refs/cairn/runs/stray") in problems
    with GitStore(repo) as fresh:  # listing skips what is not a run's tag
        listed = [r.run_id for r in fresh.list_runs()]
        assert sorted(listed) == ["b"]
        with pytest.raises(IntegrityError, match="holds run b"):  # a's ref now holds b's tag
            fresh.get_run("a")


def test_a_fresh_store_lists_many_runs_read_in_chunks(repo: Path) -> None:
    made = [(run(f"run-{i:04d}", i, summary="x" * 200), []) for i in range(700)]  # ~450 kB of messages
    with GitStore(repo) as store:
        store.put_runs(made)
    with GitStore(repo) as fresh:
        listed = fresh.list_runs()
        assert [r.run_id for r in listed] == [f"run-{i:04d}" for i in reversed(range(700))]
        assert listed[-1] == made[0][0]
        assert fresh.list_runs(limit=3, since=at(10), until=at(20)) == [made[20][0], made[19][0], made[18][0]]


def test_the_plugin_registers_git_and_imports_nothing_heavy(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = "import sys, cairn_git.plugin; print(sorted(m for m in sys.modules if m.startswith('cairn_git')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['cairn_git', 'cairn_git.config', 'cairn_git.plugin']"
    from cairn.plugins import load_plugins

    plugins = load_plugins(strict=True)
    registration = plugins.registries["storage"].get("git")
    assert registration.config_cls is GitConfig
    from cairn.plugins import FactoryContext

    sub = repo / "sub" / "dir"
    sub.mkdir(parents=True)
    store = registration.factory(GitConfig(), FactoryContext("git", None, sub, sub / ".cairn"))
    try:
        assert store.git_dir == (repo / ".git").resolve() and "sync" in store.capabilities
    finally:
        store.close()


@pytest.mark.parametrize(
    ("repo_line", "problem"),
    [
        ('repo = "nowhere"', "nowhere does not exist"),
        ('repo = "cairn.toml"', "git rev-parse failed"),
        ("", "is not inside a git repository"),
    ],
)
def test_config_validate_reports_a_repository_that_is_not_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo_line: str, problem: str
) -> None:
    from cairn.config import load_config
    from cairn.plugins import load_plugins

    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    project = tmp_path / "project"
    project.mkdir()
    (project / "cairn.toml").write_text(f'[cairn]\nstorage = "git"\n\n[storage.git]\n{repo_line}\n')
    config = load_config(project, environ={"CAIRN_USER_CONFIG": ""})
    found = [p for p in load_plugins(strict=True).check_config(config) if p.table == "storage.git"]
    assert [(p.key, problem in p.problem) for p in found] == [("repo", True)]
    assert found[0].line == (5 if repo_line else None) and found[0].hint
    make_repo(project)
    if not repo_line:
        assert [p for p in load_plugins(strict=True).check_config(config) if p.table == "storage.git"] == []
