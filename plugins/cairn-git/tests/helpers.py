"""Test helpers: throw-away git repositories and plain-git views of them."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from cairn.model.ledger import Run, RunEvent
from cairn.testing.storage import at


def git(cwd: Path, *args: str, input: bytes | None = None, check: bool = True) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True)
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr.decode()}")
    return done.stdout.decode("utf-8", errors="replace")


def make_repo(path: Path, *, commit: bool = True, identity: bool = True, bare: bool = False) -> Path:
    """A repository at ``path``: with one commit on ``main`` unless ``commit`` is False."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", *(["--bare"] if bare else []))
    if identity:
        git(path, "config", "user.name", "Ada Lovelace")
        git(path, "config", "user.email", "ada@example.invalid")
    if commit and not bare:
        (path / "README").write_text("hello\n")
        git(path, "add", "README")
        git(path, "-c", "user.name=Setup", "-c", "user.email=setup@example.invalid", "commit", "-q", "-m", "first")
    return path


def user_state(repo: Path) -> dict[str, Any]:
    """What the user sees of their repository: status, HEAD, the index, hooks, .gitignore, their branches."""
    git_dir = Path(git(repo, "rev-parse", "--absolute-git-dir").strip())
    hooks = git_dir / "hooks"
    return {
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "head": git(repo, "symbolic-ref", "-q", "HEAD", check=False),
        "head_commit": git(repo, "rev-parse", "-q", "--verify", "HEAD", check=False),
        "index": (git_dir / "index").read_bytes() if (git_dir / "index").exists() else None,
        "hooks": sorted(p.name for p in hooks.iterdir()) if hooks.exists() else None,
        "gitignore": (repo / ".gitignore").exists(),
        "fetch_head": (git_dir / "FETCH_HEAD").exists(),
        "branches": [
            line
            for line in git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/").splitlines()
            if "refs/heads/cairn-ledger " not in line
        ],
    }


def fsck(repo: Path) -> str:
    """``git fsck --strict``'s complaints, dangling objects aside (a lost race leaves some; gc prunes them)."""
    done = subprocess.run(["git", "fsck", "--strict", "--no-progress", "--no-dangling"], cwd=repo, capture_output=True)
    text = (done.stdout + done.stderr).decode()
    problems = [line for line in text.splitlines() if line.strip() and not line.startswith(("notice:",))]
    assert done.returncode == 0, text
    return "\n".join(problems)


def run(run_id: str, seconds: float, **fields: Any) -> Run:
    fields.setdefault("status", "ok")
    return Run(run_id=run_id, type="job", started_at=at(seconds), **fields)


def events(run_id: str, count: int, start: int = 0) -> list[RunEvent]:
    return [RunEvent(run_id, seq, at(100 + seq), "step", {"n": seq}) for seq in range(start, start + count)]


def record_runs(directory: str, worker: int, count: int, barrier: Any, results: Any) -> None:
    """A writer process: record ``count`` runs with three events each; report the ids acknowledged."""
    from cairn_git.store import GitStore

    acked: list[str] = []
    try:
        with GitStore(directory) as store:
            barrier.wait(timeout=120)
            for i in range(count):
                run_id = f"w{worker}-r{i:03d}"
                if i % 10 == 9:  # some open runs, appended to, then closed
                    store.put_run(run(run_id, i, status="open"), events(run_id, 1))
                    store.append_events(run_id, events(run_id, 1, start=1))
                    store.put_run(run(run_id, i, status="ok"), events(run_id, 1, start=2), expected_status="open")
                else:
                    store.put_run(run(run_id, i, metadata={"worker": worker}), events(run_id, 3))
                acked.append(run_id)
        results.put((worker, acked, None))
    except BaseException as exc:  # report, never hang the parent
        barrier.abort()
        results.put((worker, acked, f"{type(exc).__name__}: {exc}"))


def add_run_messages(directory: str, worker: int, count: int, run_id: str, barrier: Any, results: Any) -> None:
    """A writer process: add ``count`` messages to run ``run_id``; report the ids acknowledged."""
    from cairn_git.store import GitStore

    from cairn.model.chat import ChatMessage

    acked: list[str] = []
    try:
        with GitStore(directory) as store:
            barrier.wait(timeout=120)
            for i in range(count):
                message = ChatMessage(id=f"w{worker}-{i:03d}", ts=at(1000 + i), text=f"{worker}/{i}", run_id=run_id)
                store.add_chat_message(message)
                acked.append(message.id)
        results.put((worker, acked, None))
    except BaseException as exc:  # report, never hang the parent
        barrier.abort()
        results.put((worker, acked, f"{type(exc).__name__}: {exc}"))


def two_clones(tmp_path: Path) -> tuple[Path, Path]:
    """Two clones (``a`` and ``b``, each with its own identity) of a bare remote holding one commit."""
    seed = make_repo(tmp_path / "seed")
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(remote))
    clones = []
    for name in ("a", "b"):
        git(tmp_path, "clone", "-q", str(remote), name)
        git(tmp_path / name, "config", "user.name", f"Machine {name.upper()}")
        git(tmp_path / name, "config", "user.email", f"{name}@example.invalid")
        clones.append(tmp_path / name)
    return clones[0], clones[1]
