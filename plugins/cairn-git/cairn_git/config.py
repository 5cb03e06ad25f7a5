"""``[storage.git]``: the settings of the git store (light: imports only attrs)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from cairn.plugins import FactoryContext

__all__ = ["RUN_REF_STYLES", "GitConfig", "check_branch", "check_namespace", "check_remote", "check_settings"]

#: Where run anchors live: ``refs/<namespace>/runs/<id>`` or ``refs/tags/<namespace>/run/<id>``.
RUN_REF_STYLES = ("cairn", "tags")

# One ref component, tight enough to be safe as a path, a ref and an argument.
_COMPONENT = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
# A branch: components of letters, digits, '.', '_', '-' separated by '/'.
_BRANCH = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9._-]*(?:/[A-Za-z0-9_][A-Za-z0-9._-]*)*\Z")
_REMOTE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")


#: Ref namespaces git itself gives a meaning to (``refs/replace/`` even rewrites objects): never ours.
_GIT_NAMESPACES = frozenset(
    {"heads", "tags", "remotes", "notes", "replace", "stash", "bisect", "rewritten", "worktree", "prefetch", "original"}
)


def check_namespace(value: object) -> str:
    """A namespace is one ref component: letters, digits, '_' and '-', not starting with '-' or '_',
    and not one of git's own (``heads``, ``tags``, ``remotes``, ``replace``, ...)."""
    if not isinstance(value, str) or not _COMPONENT.match(value):
        raise ValueError(
            f"namespace must be one ref component (letters, digits, '_' and '-', starting with a letter "
            f"or digit, at most 64 characters); got {value!r:.80}"
        )
    if value.lower() in _GIT_NAMESPACES:
        raise ValueError(f"namespace {value!r} is one git uses itself (refs/{value}/); choose another, e.g. 'cairn'")
    return value


def check_branch(value: object) -> str:
    """A git branch name that is also safe as a path and an argument (git's rules, tightened)."""
    ok = (
        isinstance(value, str)
        and len(value) <= 200
        and bool(_BRANCH.match(value))
        and ".." not in value
        and not value.endswith((".", ".lock"))
        and "/." not in value
        and ".lock/" not in value
        and value != "HEAD"
    )
    if not ok:
        raise ValueError(
            "ledger_branch must be a branch name of letters, digits, '.', '_', '-' and '/' between parts "
            f"(no '..', no leading '-' or '.', not ending in '.lock'); got {value!r:.80}"
        )
    return value  # type: ignore[return-value]  # a str: ok begins with isinstance(value, str)


def check_remote(value: object) -> str:
    """A remote name: letters, digits, '.', '_' and '-', not starting with '-' or '.', no '..'."""
    if not isinstance(value, str) or not _REMOTE.match(value) or ".." in value or value.endswith(".lock"):
        raise ValueError(
            "remote must be the name of a git remote (letters, digits, '.', '_' and '-', "
            f"not starting with '-' or '.'); got {value!r:.80}"
        )
    return value


def _namespace(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    check_namespace(value)


def _branch(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    check_branch(value)


def _remote(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    check_remote(value)


def _repo(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ValueError(f"repo must be the path of a git repository, or unset; got {value!r}")


def _run_refs(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in RUN_REF_STYLES:
        raise ValueError(f"run_refs must be 'cairn' or 'tags'; got {value!r}")


def _flag(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{attribute.name} must be true or false; got {value!r}")


@attrs.frozen
class GitConfig:
    """The ``[storage.git]`` table.

    ``repo``: the git repository to keep everything in; relative to the
    project directory. Unset: the repository that encloses the project
    directory.
    ``namespace``: the ref namespace (``refs/<namespace>/...``) and the tag
    name prefix; one ref component.
    ``ledger_branch``: the orphan branch that holds runs, events and spend.
    ``run_refs``: ``"cairn"`` anchors each run at ``refs/<namespace>/runs/<id>``
    (plain clones and ``git describe`` never see them); ``"tags"`` at
    ``refs/tags/<namespace>/run/<id>`` (every clone copies them).
    ``remote``: the git remote that push and pull use by default.
    ``gc_auto``: run ``git gc --auto`` when writes have left enough loose
    objects for git to want it.
    """

    repo: str | None = attrs.field(default=None, validator=_repo)
    namespace: str = attrs.field(default="cairn", validator=_namespace)
    ledger_branch: str = attrs.field(default="cairn-ledger", validator=_branch)
    run_refs: str = attrs.field(default="cairn", validator=_run_refs)
    remote: str = attrs.field(default="origin", validator=_remote)
    gc_auto: bool = attrs.field(default=True, validator=_flag)


def repository_path(config: GitConfig, project_dir: Path) -> Path:
    """Where the store looks for its repository: ``repo`` (relative to the project directory), else the project."""
    return project_dir if config.repo is None else project_dir / Path(os.path.expanduser(config.repo))


def check_settings(config: GitConfig, context: FactoryContext) -> Iterator[tuple[str, str, str]]:
    """What ``cairn config validate`` reports about ``[storage.git]``: the repository must exist.

    Runs ``git rev-parse`` (reads only), as opening the store does.
    """
    from cairn.errors import CairnError
    from cairn_git._git import discover

    try:
        discover(repository_path(config, context.project_dir or Path.cwd()))
    except CairnError as exc:
        yield "repo", exc.message, exc.hint or "set repo to the directory of a git repository"
