"""Canaries planted in the environment, the arguments and the output of `cairn run` never reach storage.

On SQLite the database files are read byte by byte; on git every object of the
repository (`git cat-file --batch-all-objects --batch`) and of the bare remote
it was pushed to, and every loose file of both (refs, reflogs, config).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cairn.chat import generate_key

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ann",
    "GIT_AUTHOR_EMAIL": "ann@example.org",
    "GIT_COMMITTER_NAME": "Ann",
    "GIT_COMMITTER_EMAIL": "ann@example.org",
}

# Each canary carries a marker that occurs nowhere else, so any piece of it is easy to find.
OPENAI_KEY = "sk-proj-CANARYq1Wd9Rk2Xv7Lm3Zp5Tn8Bc4Hs6"
GITHUB_TOKEN = "ghp_CANARYa8K2m4N6p8R0t2V4x6Z8b0D2f4H6j8"
AWS_ID = "AKIACANARY2Q4W6E8R0T"
PLAIN_PASSWORD = "CANARY-plain-31415926"  # no known shape: only its variable's name gives it away
TEAM_SECRET = "CANARY-team-27182818"  # a variable only configuration names
PEM_LINE = "MIIEpCANARYAIBAAKCAQEA7c3Qx9w1bR5tY8uI2oP4aS6dF0gH3jK5lZ7xC9vB1nM"
MARKER = "CANARY"


def git(cwd: Path, *args: str) -> bytes:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, env={**os.environ, **GIT_ENV})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def every_git_byte(repo: Path) -> bytes:
    """Every object, decompressed, and every loose file of a repository (refs, logs, packed-refs, config)."""
    objects = git(repo, "cat-file", "--batch-all-objects", "--batch")
    files = b"".join(p.read_bytes() for p in repo.rglob("*") if p.is_file() and "objects" not in p.parts)
    return objects + files


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> str:
    chat_key = generate_key()
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("GITHUB_TOKEN", GITHUB_TOKEN)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_ID)
    monkeypatch.setenv("MY_SERVICE_PASSWORD", PLAIN_PASSWORD)
    monkeypatch.setenv("TEAM_LLM", TEAM_SECRET)
    monkeypatch.setenv("CAIRN_CHAT_KEY", chat_key)
    monkeypatch.setenv("DEPLOY_PRIVATE_KEY", PEM_LINE)
    return chat_key


CHILD = """
import os, sys
for name in sorted(os.environ):
    print(f"{name}={os.environ[name]}")
print("args:", sys.argv[1:])
print("Authorization: Bearer " + os.environ["OPENAI_API_KEY"])
print("cloning https://ann:" + os.environ["MY_SERVICE_PASSWORD"] + "@git.example.org/x.git", file=sys.stderr)
print("-----BEGIN RSA PRIVATE KEY-----")
print(os.environ["DEPLOY_PRIVATE_KEY"])
print("-----END RSA PRIVATE KEY-----")
print("the team secret is", os.environ["TEAM_LLM"])
"""


def record(cairn, storage: str) -> str:
    (cairn.project / "cairn.toml").write_text(
        f'[cairn]\nstorage = "{storage}"\n\n[llm.openai]\napi_key_env = "TEAM_LLM"\n', encoding="utf-8"
    )
    cairn.run("run", "--tail", "500", "--", "env")
    cairn.run(
        "run",
        "--tail",
        "500",
        "--",
        sys.executable,
        "-c",
        CHILD,
        "--api-key",
        OPENAI_KEY,
        f"--password={PLAIN_PASSWORD}",
        GITHUB_TOKEN,
        f"https://ann:{PLAIN_PASSWORD}@example.org/",
    )
    cairn.run("chat", "send", "--run", "@last", f"deploying with {OPENAI_KEY} and {TEAM_SECRET}")
    return cairn.run("runs", "events", "@last", "--json").stdout


def assert_masked_not_dropped(events: str) -> None:
    assert "Authorization: Bearer ***" in events and "https://ann:***@git.example.org/x.git" in events
    assert "PATH=" in events  # ordinary variables are kept


def assert_no_canary(data: bytes, where: str) -> None:
    secrets = [OPENAI_KEY, GITHUB_TOKEN, AWS_ID, PLAIN_PASSWORD, TEAM_SECRET, PEM_LINE, os.environ["CAIRN_CHAT_KEY"]]
    found = [s for s in secrets if s.encode() in data]
    assert not found, f"{where} holds {found}"
    assert data.count(MARKER.encode()) == 0, f"{where} holds a piece of a canary"


def test_no_canary_reaches_the_sqlite_store(cairn, planted):
    events = record(cairn, "sqlite")
    data_dir = cairn.project / ".cairn"
    stored = b"".join(p.read_bytes() for p in data_dir.rglob("*") if p.is_file())
    assert b"SQLite format 3" in stored
    assert_no_canary(stored, "the SQLite store")
    assert_masked_not_dropped(events)


def test_no_canary_reaches_git_objects_or_a_pushed_remote(tmp_path, cairn, planted):
    git(cairn.project, "init", "-q", "-b", "work")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(cairn.project, "remote", "add", "origin", str(remote))
    events = record(cairn, "git")
    cairn.run("ledger", "push")
    assert git(remote, "for-each-ref", "--format=%(refname)").strip(), "nothing was pushed"
    assert_no_canary(every_git_byte(cairn.project / ".git"), "the git repository")
    assert_no_canary(every_git_byte(remote), "the pushed remote")
    assert b"Authorization: Bearer ***" in every_git_byte(remote)  # the masked run itself was pushed
    data_dir = cairn.project / ".cairn"
    assert_no_canary(b"".join(p.read_bytes() for p in data_dir.rglob("*") if p.is_file()), "the data directory")
    assert_masked_not_dropped(events)


def test_config_show_masks_url_passwords_in_the_table_and_in_json(cairn):
    (cairn.project / "cairn.toml").write_text(
        "[llm.openai]\n"
        'base_url = "http://ann:hunter2@localhost:8000/v1"\n'
        'api_key_env = "OPENAI_API_KEY"\n'
        'organization = "sk-proj-Zq1Wd9Rk2Xv7Lm3Zp5Tn8Bc4"\n',
        encoding="utf-8",
    )
    table = cairn.run("config", "show").stdout
    shown = {s["key"]: s["value"] for s in cairn.json("config", "show")["settings"]}
    for text in (table, str(shown)):
        assert "hunter2" not in text and "Zq1Wd9Rk2" not in text
        assert "http://ann:***@localhost:8000/v1" in text and "OPENAI_API_KEY" in text
    assert shown["llm.openai.organization"] == "***"
    # The same URL is refused where it would be used: config validate names file, table and key.
    proc = cairn.run("config", "validate", check=False)
    assert proc.returncode == 1 and "base_url" in proc.stderr and "llm.openai" in proc.stderr
    assert "hunter2" not in proc.stderr and "user name or password" in proc.stderr
