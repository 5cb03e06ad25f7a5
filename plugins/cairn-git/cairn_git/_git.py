"""Talking to git: one-shot commands, two long-lived processes, and reading git's object formats.

- ``Git.run`` runs one plumbing command (never ``shell=True``; every
  argument is validated by the caller) and turns a failure into a
  ``StorageError`` carrying git's own message.
- ``CatFile`` keeps one ``git cat-file --batch-command`` process: object and
  ref reads are a pipe round trip (tens of microseconds), and many reads are
  pipelined into one.
- ``RefTransaction`` keeps one ``git update-ref --stdin`` process: every ref
  change is a ``start`` / ``update <ref> <new> <old>`` ... / ``prepare`` /
  ``commit`` transaction, so git itself checks every old value under its
  ref locks (compare-and-swap) and applies all refs or none.
- ``parse_tree``, ``parse_commit`` and ``parse_tag`` read the objects
  ``CatFile`` returns. Objects are written in process by
  ``cairn_git._writer.ObjectWriter``.

Every command runs with ``core.hooksPath=/dev/null``: the
``reference-transaction``, ``pre-push`` and ``pre-auto-gc`` hooks of the
user's repository are not ours to run.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO

from cairn.errors import StorageError

__all__ = [
    "CatFile",
    "Git",
    "GitCommandError",
    "RefTransaction",
    "TransactionFailed",
    "TREE_MODE",
    "BLOB_MODE",
    "discover",
    "parse_commit",
    "parse_tag",
    "parse_tree",
]

TREE_MODE = "40000"
BLOB_MODE = "100644"

# Variables that would point git somewhere other than the repository we were given.
_REDIRECTING_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
    "GIT_QUARANTINE_PATH",
)
# The user's hooks are not ours to run. And every name we pass is a full ref name or a full object id:
# git's check that an object id is not also a ref name costs six stat calls per id, for nothing.
_OPTIONS = ("-c", "core.hooksPath=/dev/null", "-c", "core.warnAmbiguousRefs=false")
_READ_CHUNK = 256  # requests written before their answers are read: never fills a pipe both ways


def git_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _REDIRECTING_ENV}


class GitCommandError(StorageError):
    """A git command failed: ``command`` (without the repository path), ``returncode`` and git's ``stderr``."""

    def __init__(self, command: Sequence[str], returncode: int, stderr: str, *, hint: str | None = None) -> None:
        from cairn.redact import redact_text

        self.command = list(command)
        self.returncode = returncode
        # git quotes remote URLs, which may carry user:password@: never show those.
        self.stderr = redact_text(stderr.strip())
        shown = " ".join(self.command)
        detail = self.stderr.splitlines()[-1] if self.stderr else f"exit status {returncode}"
        super().__init__(
            f"git {shown} failed: {detail}",
            hint=hint or "run the same git command in the repository to see the whole message, fix what it says, retry",
        )


class TransactionFailed(Exception):
    """An ``update-ref`` transaction was refused; ``stderr`` is git's reason. Nothing was changed."""

    def __init__(self, stderr: str) -> None:
        super().__init__(stderr)
        self.stderr = stderr


def discover(path: Path) -> tuple[Path, Path, str]:
    """(git dir, objects dir, object format) of the repository that holds ``path``.

    ``StorageError`` when ``path`` is in no repository, saying to run
    ``git init`` or to set ``repo``.
    """
    if not path.exists():
        raise StorageError(
            f"{path} does not exist",
            hint="create the directory and run `git init` there, or set repo in [storage.git]",
        )
    try:
        done = subprocess.run(
            [
                "git",
                "-C",
                str(path),
                "rev-parse",
                "--absolute-git-dir",
                "--git-path",
                "objects",
                "--show-object-format",
            ],
            capture_output=True,
            env=git_environment(),
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise StorageError(
            "the git command is not installed (or not on PATH)", hint="install git 2.38 or newer"
        ) from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        if "not a git repository" in message.lower():
            raise StorageError(
                f"{path} is not inside a git repository",
                hint=f"run `git init` in {path}, or set repo in [storage.git] to the repository to use",
            )
        raise GitCommandError(["rev-parse"], done.returncode, message)
    git_dir, objects, object_format = done.stdout.decode().splitlines()[:3]
    objects_path = Path(objects)
    if not objects_path.is_absolute():
        objects_path = path / objects_path
    return Path(git_dir), objects_path.resolve(), object_format.strip()


class Git:
    """One repository: runs commands against its git directory, never its working tree."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir
        self.env = git_environment()
        self._prefix = ["git", f"--git-dir={git_dir}", *_OPTIONS]

    def command(self, *args: str) -> list[str]:
        return [*self._prefix, *args]

    def run(
        self,
        *args: str,
        input: bytes | None = None,
        ok: Iterable[int] = (0,),
        hint: str | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``git <args>``; a return code outside ``ok`` raises ``GitCommandError``."""
        done = subprocess.run(
            self.command(*args),
            input=input,
            capture_output=True,
            env=self.env,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if done.returncode not in tuple(ok):
            raise GitCommandError(args, done.returncode, done.stderr.decode(errors="replace"), hint=hint)
        return done

    def output(self, *args: str, ok: Iterable[int] = (0,)) -> str:
        return self.run(*args, ok=ok).stdout.decode("utf-8", errors="surrogateescape")

    def config(self) -> dict[str, str]:
        """Every config value as git resolves it (includes followed); the last value of a key wins."""
        done = self.run("config", "--list", "-z", ok=(0, 1))
        values: dict[str, str] = {}
        for item in done.stdout.split(b"\0"):
            if not item:
                continue
            key, _, value = item.partition(b"\n")
            values[key.decode(errors="replace").lower()] = value.decode("utf-8", errors="replace")
        return values


class _Process:
    """A long-lived git process with its stderr in a temporary file (a pipe could fill and block it)."""

    def __init__(self, git: Git, args: Sequence[str]) -> None:
        self._git = git
        self._args = list(args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self.lock = threading.RLock()

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._reap()
            self._stderr = tempfile.TemporaryFile()
            self._proc = subprocess.Popen(
                self._git.command(*self._args),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=self._git.env,
            )
        return self._proc

    def _error_text(self) -> str:
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", errors="replace").strip()

    def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def close(self) -> None:
        with self.lock:
            self._reap()


class CatFile(_Process):
    """``git cat-file --batch-command``: read objects and refs by name, many per round trip."""

    def __init__(self, git: Git) -> None:
        super().__init__(git, ["cat-file", "--batch-command"])
        self._waiting: tuple[subprocess.Popen[bytes], list[tuple[str, str, int] | None]] | None = None

    def _request(self, verb: str, names: Sequence[str]) -> list[tuple[str, str, bytes | int] | None]:
        for name in names:
            _checked_name(name)
        with self.lock:
            self._collect()
            for attempt in (1, 2):
                proc = self._start()
                try:
                    return self._exchange(proc, verb, names)
                except (BrokenPipeError, ConnectionError, _ProcessDied):
                    text = self._error_text()
                    self._reap()
                    if attempt == 2:
                        raise StorageError(
                            f"git cat-file stopped unexpectedly: {text or 'no message'}",
                            hint="check that the repository is readable (`git fsck`), then retry",
                        ) from None
        raise AssertionError("unreachable")

    def _exchange(
        self, proc: subprocess.Popen[bytes], verb: str, names: Sequence[str]
    ) -> list[tuple[str, str, bytes | int] | None]:
        assert proc.stdin is not None
        out: list[tuple[str, str, bytes | int] | None] = []
        for start in range(0, len(names), _READ_CHUNK):
            chunk = names[start : start + _READ_CHUNK]
            proc.stdin.write("".join(f"{verb} {n}\n" for n in chunk).encode("utf-8", errors="surrogateescape"))
            proc.stdin.flush()
            out.extend(self._exchange_read(proc, verb, len(chunk)))
        return out

    @staticmethod
    def _exchange_read(
        proc: subprocess.Popen[bytes], verb: str, count: int
    ) -> list[tuple[str, str, bytes | int] | None]:
        assert proc.stdout is not None
        read_line = proc.stdout.readline
        read = proc.stdout.read
        out: list[tuple[str, str, bytes | int] | None] = []
        for _ in range(count):
            header = read_line()
            if not header:
                raise _ProcessDied()
            parts = header.split()
            if len(parts) != 3:
                out.append(None)  # "<name> missing" / "<name> ambiguous"
                continue
            oid, kind, size = parts[0].decode(), parts[1].decode(), int(parts[2])
            if verb == "info":
                out.append((oid, kind, size))
            else:
                data = read(size + 1)
                if len(data) != size + 1:
                    raise _ProcessDied()
                out.append((oid, kind, data[:-1]))
        return out

    def info_later(self, name: str) -> Callable[[], tuple[str, str, int] | None]:
        """Ask for one object's info now and read the answer when the returned function is called.

        Git looks it up while the caller works; any other request first
        collects the answer, so answers never cross.
        """
        with self.lock:
            self._collect()
            proc = self._start()
            assert proc.stdin is not None
            try:
                proc.stdin.write(f"info {_checked_name(name)}\n".encode("utf-8", errors="surrogateescape"))
                proc.stdin.flush()
            except (BrokenPipeError, ConnectionError):
                self._reap()
                return lambda: self.info([name])[0]
            slot: list[tuple[str, str, int] | None] = []
            self._waiting = (proc, slot)

        def answer() -> tuple[str, str, int] | None:
            with self.lock:
                self._collect()
            return slot[0] if slot else self.info([name])[0]

        return answer

    def _collect(self) -> None:
        """Read the answer of an ``info_later`` still in the pipe (or drop it if git died meanwhile)."""
        waiting, self._waiting = self._waiting, None
        if waiting is None:
            return
        proc, slot = waiting
        if proc is not self._proc:
            return
        try:
            slot.extend(self._exchange_read(proc, "info", 1))  # type: ignore[arg-type]  # "info" answers sizes
        except (_ProcessDied, OSError):
            self._reap()

    def read(self, names: Sequence[str]) -> list[tuple[str, str, bytes] | None]:
        """(oid, type, content) for each name (an oid, a ref, ``<rev>:<path>``), None when missing."""
        if not names:
            return []
        return self._request("contents", names)  # type: ignore[return-value]  # "contents" answers bytes

    def read_one(self, name: str) -> tuple[str, str, bytes] | None:
        return self.read([name])[0]

    def info(self, names: Sequence[str]) -> list[tuple[str, str, int] | None]:
        """(oid, type, size) for each name, None when missing."""
        if not names:
            return []
        return self._request("info", names)  # type: ignore[return-value]  # "info" answers sizes


class _ProcessDied(Exception):
    pass


def _checked_name(name: str) -> str:
    if not name or "\n" in name or name.startswith("-"):
        raise StorageError(f"refusing to ask git for object {name!r:.80}", hint="this is a bug in cairn-git")
    return name


class RefTransaction(_Process):
    """``git update-ref --stdin``: apply ref commands atomically, each checked against its old value.

    A refused transaction makes git exit; the next one starts a new process.
    """

    def __init__(self, git: Git) -> None:
        super().__init__(git, ["update-ref", "--stdin"])

    def apply(self, commands: Sequence[str]) -> None:
        """Apply ``update``/``create``/``delete``/``verify`` commands all or none; ``TransactionFailed`` if refused."""
        if not commands:
            return
        for command in commands:
            if "\n" in command:
                raise StorageError(
                    f"refusing a ref command with a line break: {command!r:.80}", hint="this is a bug in cairn-git"
                )
        script = "start\n" + "\n".join(commands) + "\nprepare\ncommit\n"
        with self.lock:
            proc = self._start()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(script.encode("utf-8", errors="surrogateescape"))
                proc.stdin.flush()
            except (BrokenPipeError, ConnectionError):
                pass  # it died on a command; the answer below says why
            while True:
                line = proc.stdout.readline()
                if not line:
                    text = self._error_text()
                    self._reap()
                    raise TransactionFailed(text)
                if line.startswith(b"commit:"):
                    if line.strip() != b"commit: ok":
                        text = line.decode(errors="replace")
                        self._reap()
                        raise TransactionFailed(text)
                    return


def parse_tree(data: bytes, oid_size: int) -> dict[str, tuple[str, str]]:
    """A tree object's entries: name -> (mode, hex oid)."""
    entries: dict[str, tuple[str, str]] = {}
    pos = 0
    end = len(data)
    find = data.find
    while pos < end:
        space = find(b" ", pos)
        nul = find(b"\0", space)
        mode = data[pos:space].decode()
        name = data[space + 1 : nul].decode("utf-8", errors="surrogateescape")
        entries[name] = (mode, data[nul + 1 : nul + 1 + oid_size].hex())
        pos = nul + 1 + oid_size
    return entries


def parse_commit(data: bytes) -> tuple[str, list[str]]:
    """A commit object's (tree, parents)."""
    tree = ""
    parents: list[str] = []
    for line in data.split(b"\n"):
        if not line:
            break
        if line.startswith(b"tree "):
            tree = line[5:].decode()
        elif line.startswith(b"parent "):
            parents.append(line[7:].decode())
    return tree, parents


def parse_tag(data: bytes) -> tuple[str, bytes]:
    """A tag object's (target oid, message)."""
    head, _, message = data.partition(b"\n\n")
    target = ""
    for line in head.split(b"\n"):
        if line.startswith(b"object "):
            target = line[7:].decode()
    return target, message
