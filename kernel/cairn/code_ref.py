"""Which commit the code is at: ``git rev-parse HEAD``, read from git's own files in process.

Every recorded run carries ``code_ref``. Starting ``git rev-parse`` for each
run costs a process (milliseconds, more than recording the run itself), so
``CodeRef`` finds the repository once and then reads ``HEAD``, the branch's
loose ref and, when the branch is packed, ``packed-refs``. The answer is
kept with the identity (inode, size, modification time) of each file it was
read from; a later call stats those files and reads again only when one
changed. git replaces a ref file by renaming a new one over it, so a commit
or a switch made meanwhile is seen at once.

Anything this reader does not know for certain falls back to ``git
rev-parse``: ``GIT_DIR`` and the other variables that move the repository,
the reftable ref format, a symbolic ref chain longer than git allows, or a
file in an unexpected shape.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

__all__ = ["CodeRef", "current_code_ref"]

_OBJECT_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_SYMBOLIC = "ref: "
#: git follows at most this many symbolic refs (refs.c: SYMREF_MAXDEPTH).
_MAX_DEPTH = 5
# These make git look somewhere other than the directory's own repository: leave them to git.
_REDIRECTING_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_CEILING_DIRECTORIES", "GIT_NAMESPACE")

_Identity = tuple[int, int, int] | None


def _identity(path: Path) -> _Identity:
    """(inode, size, mtime) of ``path``, None when it does not exist."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise _Unsure(str(exc)) from None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


class _Unsure(Exception):
    """The files say something this reader does not handle: ask git."""


def rev_parse_head(directory: Path | str | None) -> str | None:
    """``git rev-parse --verify HEAD^{commit}`` in ``directory``; None outside git or before the first commit."""
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "HEAD^{commit}"],
            cwd=directory or None,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    value = proc.stdout.strip()
    return value if proc.returncode == 0 and _OBJECT_ID.fullmatch(value) else None


def _read(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise _Unsure(str(exc)) from None


def _find_git_dir(start: Path) -> Path | None:
    """The git directory of the repository holding ``start`` (a ``.git`` directory or a ``gitdir:`` file)."""
    for directory in (start, *start.parents):
        dot_git = directory / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():
            text = _read(dot_git) or ""
            if not text.startswith("gitdir: "):
                raise _Unsure(f"{dot_git} is not a gitdir file")
            target = Path(text[len("gitdir: ") :].strip())
            return target if target.is_absolute() else (directory / target)
    return None


class CodeRef:
    """``HEAD``'s commit for the repository holding ``directory``, read in process (see the module docstring)."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory else None
        self._located = False
        self._git_dir: Path | None = None
        self._common_dir: Path | None = None
        self._packed_key: _Identity = None
        self._packed: dict[str, str] = {}
        # The last answer and the files it came from, each with its identity when read.
        self._answer: str | None = None
        self._sources: list[tuple[Path, _Identity]] = []

    def __call__(self) -> str | None:
        """The commit HEAD is at, or None outside git or on an unborn branch."""
        if any(name in os.environ for name in _REDIRECTING_ENV):
            return rev_parse_head(self.directory)
        try:
            if self._sources and all(_identity(path) == seen for path, seen in self._sources):
                return self._answer
            sources: list[tuple[Path, _Identity]] = []
            answer = self._read_head(sources)
            self._answer, self._sources = answer, sources
            return answer
        except _Unsure:
            self._sources = []
            return rev_parse_head(self.directory)

    def _locate(self) -> None:
        if self._located:
            return
        start = (self.directory or Path.cwd()).resolve()
        git_dir = _find_git_dir(start)
        common = git_dir
        if git_dir is not None:
            pointer = _read(git_dir / "commondir")
            if pointer is not None:
                common = Path(pointer.strip())
                common = common if common.is_absolute() else git_dir / common
            # common is git_dir (not None here) or the directory its commondir names.
            if (common / "reftable").exists():  # type: ignore[operator]
                raise _Unsure("reftable refs")
        self._git_dir, self._common_dir, self._located = git_dir, common, True

    def _read_head(self, sources: list[tuple[Path, _Identity]]) -> str | None:
        self._locate()
        if self._git_dir is None:
            return None
        value = self._consult(self._git_dir / "HEAD", sources)
        if value is None:
            raise _Unsure("no HEAD file")
        for _ in range(_MAX_DEPTH):
            value = value.strip()
            if not value.startswith(_SYMBOLIC):
                if _OBJECT_ID.fullmatch(value):
                    return value
                raise _Unsure(f"unexpected ref content {value[:20]!r}")
            name = value[len(_SYMBOLIC) :].strip()
            if not name.startswith("refs/heads/") or ".." in name.split("/"):
                raise _Unsure(f"unexpected symbolic ref {name!r}")
            value = self._ref(name, sources)
            if value is None:
                return None  # an unborn branch: no commit yet
        raise _Unsure("symbolic refs nested too deep")

    @staticmethod
    def _consult(path: Path, sources: list[tuple[Path, _Identity]]) -> str | None:
        """``path``'s text, noting its identity first (a file replaced after the stat only costs a read later)."""
        sources.append((path, _identity(path)))
        return _read(path)

    def _ref(self, name: str, sources: list[tuple[Path, _Identity]]) -> str | None:
        # Branches live in the common git dir (a linked worktree shares them).
        assert self._common_dir is not None
        loose = self._consult(self._common_dir / name, sources)
        if loose is not None:
            return loose
        sources.append((self._common_dir / "packed-refs", _identity(self._common_dir / "packed-refs")))
        return self._packed_refs().get(name)

    def _packed_refs(self) -> dict[str, str]:
        assert self._common_dir is not None
        path = self._common_dir / "packed-refs"
        try:
            info = path.stat()
        except FileNotFoundError:
            self._packed_key, self._packed = None, {}
            return self._packed
        except OSError as exc:
            raise _Unsure(str(exc)) from None
        key = (info.st_ino, info.st_size, info.st_mtime_ns)
        if key != self._packed_key:
            packed: dict[str, str] = {}
            for line in (_read(path) or "").splitlines():
                if not line or line[0] in "#^":
                    continue
                oid, _, ref = line.partition(" ")
                packed[ref] = oid
            self._packed_key, self._packed = key, packed
        return self._packed


def current_code_ref(directory: Path | str | None = None) -> str | None:
    """The commit the code is at (``git rev-parse HEAD``), or None outside git or before the first commit."""
    return CodeRef(directory)()
