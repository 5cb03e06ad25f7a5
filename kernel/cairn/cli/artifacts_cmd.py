"""Artifact and snapshot commands: ``cairn artifact put|get|ls|show|verify``, ``cairn snapshot ...``.

Files live inline in the project store (small ones, up to ``[artifacts]
inline_max_bytes``) or in the configured artifact store; their names, media
types and the list of snapshots are records in the project store's
``artifact_meta`` facet (``cairn.project_artifacts``). Hashes may be
abbreviated to a unique prefix of at least 4 hex digits; ``@last`` is the
newest named artifact or snapshot.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cairn.cli._app import State, echo_json, json_option, pass_state, plural, print_table
from cairn.errors import FileError, NotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from cairn.artifact_gc import ArtifactGcReport
    from cairn.images import ImageReader
    from cairn.model.artifacts import ArtifactRef
    from cairn.project_artifacts import ProjectArtifacts

__all__ = [
    "Progress",
    "collect_artifacts",
    "image_reader",
    "open_artifacts",
    "print_collected",
    "print_diff",
    "register",
]


def _size(n: int) -> str:
    # cairn.model (attrs, cattrs) is imported when a command runs, not when `cairn --help` lists this one.
    from cairn.model.artifacts import human_size

    return human_size(n)


def register(cli: click.Group) -> None:
    cli.add_command(artifact_group)
    cli.add_command(snapshot_group)


def _user() -> str | None:
    """Who is putting files, as the ledger names them (``CAIRN_USER``, else the login name)."""
    import getpass

    try:
        return os.environ.get("CAIRN_USER") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in some containers
        return None


@contextlib.contextmanager
def open_artifacts(state: State, doing: str) -> Iterator[ProjectArtifacts]:
    """The project's artifacts over the command's store; the artifact store is closed afterwards."""
    from cairn.project_artifacts import open_project_artifacts

    artifacts = open_project_artifacts(
        state.store, config=state.config, plugins=state.plugins, user=_user(), doing=doing
    )
    try:
        yield artifacts
    finally:
        artifacts.close()


@contextlib.contextmanager
def image_reader(state: State) -> Iterator[ImageReader | None]:
    """What ``materialize(images=...)`` reads referenced images with; None when the store keeps no artifacts.

    An image this machine does not have (its artifact store lacks it, or is not
    installed) stays a placeholder; a damaged one is an error.
    """
    from cairn.storage import ArtifactMetaStore

    if not isinstance(state.store, ArtifactMetaStore):
        yield None
        return
    with open_artifacts(state, "sending images") as artifacts:

        def read(ref: ArtifactRef) -> bytes | None:
            try:
                return artifacts.read_bytes(ref.hash)
            except NotFoundError:
                return None

        yield read


def collect_artifacts(state: State, *, dry_run: bool, grace: str) -> ArtifactGcReport | None:
    """``cairn gc``'s second half: collect the artifacts nothing reaches (None: the store keeps no artifacts)."""
    from cairn.artifact_gc import collect
    from cairn.ledger import parse_age
    from cairn.storage import ArtifactMetaStore

    age = parse_age(grace)
    if not isinstance(state.store, ArtifactMetaStore):
        return None  # a backend without artifact metadata holds no artifacts to collect
    with open_artifacts(state, "cairn gc") as artifacts:
        try:
            artifacts.store  # noqa: B018 - opened here to tell a missing store plugin apart
        except NotFoundError:
            meta = artifacts.meta
            if not meta.artifact_records(limit=1) and not meta.snapshot_records(limit=1) and not meta.inline_sizes():
                return None  # no artifact store installed and no artifacts: nothing to collect
            raise
        return collect(artifacts, state.store, grace=age, dry_run=dry_run)


def print_collected(report: ArtifactGcReport | None) -> None:
    """What artifact gc removed (or would), one line per artifact, and trees a run names that are gone."""
    if report is None:
        return
    verb = "would remove" if report.dry_run else "removed"
    click.echo(f"{verb} {plural(len(report.collected), 'artifact')}, {_size(report.bytes)}; kept {report.kept}")
    for item in report.collected:
        size = _size(item.size) if item.size is not None else "records only"
        names = ", ".join(item.names) if item.names else "(no name)"
        click.echo(f"  {item.hash[:16]}  {size:>10}  {item.where:<7}  {names}")
    for tree in report.missing_trees:
        click.secho(f"warning: tree {tree[:16]} is referenced but not stored", fg="yellow", err=True)


# -- cairn artifact ------------------------------------------------------------------------------


@click.group("artifact")
def artifact_group() -> None:
    """Keep files by hash: put, get, ls, show, verify."""


@artifact_group.command("put")
@click.argument("file", type=click.Path(dir_okay=True, allow_dash=True))
@click.option("--name", help="A name to list it under (default: the file's name).")
@click.option("--mime", help="Its media type, e.g. image/png (default: guessed from the name).")
@click.option(
    "--commit",
    "commit",
    is_flag=True,
    help="Also commit a reference to it on the current branch, so it is part of the context (and kept by gc).",
)
@json_option("Print the record as JSON.")
@pass_state
def artifact_put(state: State, file: str, name: str | None, mime: str | None, commit: bool, as_json: bool) -> None:
    """Store FILE (- reads stdin) and print its hash. The same bytes are stored once."""
    from cairn.model.artifacts import check_name

    name = check_name(name if name is not None else ("stdin" if file == "-" else Path(file).name))
    committed = None
    with open_artifacts(state, "cairn artifact put") as artifacts:
        source = sys.stdin.buffer if file == "-" else Path(file)
        repo = state.repo if commit else None  # a project without context fails before anything is stored
        record = artifacts.put(source, name=name, mime=mime)
        if repo is not None:
            from cairn.model import Artifact

            committed = repo.append(Artifact.reference(record.ref), message=f"artifact {record.name}")
        where = "inline" if record.inline else artifacts.store.location
    if as_json:
        echo_json({**record.to_record(), "store": where, "commit": committed.hash if committed else None})
        return
    click.echo(f"{record.hash}  {_size(record.size)}  {record.name} ({record.mime})")
    if committed is not None:
        click.echo(f"committed {committed.short}: a reference to it on the current branch", err=True)


@artifact_group.command("get")
@click.argument("digest", metavar="HASH")
@click.option(
    "-o", "--output", required=True, type=click.Path(allow_dash=True), help="Write to this file (- for stdout)."
)
@click.option("--force", is_flag=True, help="Replace the file if it exists.")
@json_option("Print what was written as JSON (not with -o -).")
@pass_state
def artifact_get(state: State, digest: str, output: str, force: bool, as_json: bool) -> None:
    """Write the artifact HASH to a file, atomically, verifying its hash as it is read."""
    from cairn.durable import copy_hashing
    from cairn.files import atomic_write

    with open_artifacts(state, "cairn artifact get") as artifacts:
        digest = artifacts.resolve(digest)
        if output == "-":
            with artifacts.open(digest) as stream:
                sys.stdout.flush()
                copy_hashing(stream, sys.stdout.fileno(), hashing=False)  # a corrupt object raises at its end
            return
        target = Path(output)
        if not force and os.path.lexists(target):
            raise FileError(f"{target} already exists", path=str(target), hint="pass --force to replace it")
        with atomic_write(target, binary=True, overwrite=force) as handle:
            size = artifacts.copy_to(digest, handle.fileno())  # verified: a mismatch raises, and nothing lands
    if as_json:
        echo_json({"hash": digest, "size": size, "path": str(target.resolve())})
        return
    click.echo(f"wrote {target} ({_size(size)}, verified {digest[:12]})", err=True)


@artifact_group.command("ls")
@click.option("--all", "everything", is_flag=True, help="Every stored object, snapshot contents included.")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option()
@pass_state
def artifact_ls(state: State, everything: bool, limit: int, as_json: bool) -> None:
    """Named artifacts, newest first (--all: every stored object, by hash, inline and in the artifact store)."""
    with open_artifacts(state, "cairn artifact ls") as artifacts:
        if everything:
            found = []
            for info, where in artifacts.list_all():
                found.append((info, where))
                if len(found) == limit:
                    break
        else:
            records = artifacts.records(limit=limit)
    if everything:
        if as_json:
            echo_json([{**info.to_record(), "where": where} for info, where in found])
        elif not found:
            click.echo("no artifacts stored")
        else:
            print_table(
                ["hash", "size", "where", "created"],
                [[i.hash, _size(i.size), where, (i.created or "")[:19]] for i, where in found],
            )
        return
    if as_json:
        echo_json([r.to_record() for r in records])
        return
    if not records:
        click.echo("no artifacts yet: `cairn artifact put FILE` stores one")
        return
    print_table(
        ["hash", "size", "type", "name", "created", "for"],
        [[r.hash[:16], _size(r.size), r.mime, r.name, r.created[:19], r.referrer or ""] for r in records],
    )


@artifact_group.command("show")
@click.argument("digest", metavar="HASH")
@json_option()
@pass_state
def artifact_show(state: State, digest: str, as_json: bool) -> None:
    """One artifact: size, when it was stored, where, and the names it was put under."""
    with open_artifacts(state, "cairn artifact show") as artifacts:
        digest = artifacts.resolve(digest)
        info, where = artifacts.stat(digest)
        location = "inline (the project store)" if where == "inline" else artifacts.store.location
        names = artifacts.names_of(digest)
    if as_json:
        echo_json({**info.to_record(), "where": where, "store": location, "names": [r.to_record() for r in names]})
        return
    click.echo(f"hash     {info.hash}")
    click.echo(f"size     {info.size} ({_size(info.size)})")
    click.echo(f"created  {info.created or 'unknown'}")
    click.echo(f"store    {location}")
    for record in names:
        extra = f", for {record.referrer}" if record.referrer else ""
        click.echo(f"name     {record.name} ({record.mime}, put {record.created[:19]}{extra})")


@artifact_group.command("verify")
@click.argument("digests", metavar="[HASH]...", nargs=-1)
@json_option()
@pass_state
def artifact_verify(state: State, digests: tuple[str, ...], as_json: bool) -> None:
    """Read artifacts back and check their hashes (all of them when no HASH is given); exit 1 on any problem."""
    from cairn.errors import IntegrityError

    results: list[dict[str, Any]] = []
    with open_artifacts(state, "cairn artifact verify") as artifacts:
        if digests:
            targets = [artifacts.resolve(d) for d in digests]
        else:
            targets = [info.hash for info, _ in artifacts.list_all()]
        for digest in targets:
            try:
                info, _ = artifacts.verify(digest)
                results.append({"hash": digest, "ok": True, "size": info.size})
            except (IntegrityError, NotFoundError) as exc:
                results.append({"hash": digest, "ok": False, "problem": exc.message})
    bad = [r for r in results if not r["ok"]]
    if as_json:
        echo_json({"checked": len(results), "bad": len(bad), "results": results})
    else:
        for result in bad:
            click.secho(f"✗ {result['problem']}", fg="red", err=True)
        click.echo(f"{len(results) - len(bad)} of {plural(len(results), 'artifact')} verified")
    if bad:
        click.get_current_context().exit(1)


# -- cairn snapshot --------------------------------------------------------------------------------


@click.group("snapshot")
def snapshot_group() -> None:
    """Record a directory as a tree of hashes; list, show, diff and restore trees."""


def _load(artifacts: ProjectArtifacts, text: str) -> Any:
    digest = artifacts.resolve(text, what="snapshot tree", newest=artifacts.newest_snapshot)
    return artifacts.load_tree(digest)


class Progress:
    """A counter on stderr while files are read, on a terminal only."""

    def __init__(self, label: str = "reading files") -> None:
        self.enabled = sys.stderr.isatty()
        self.label = label
        self.count = 0
        self.shown = 0.0

    def __call__(self, path: str) -> None:
        self.count += 1
        now = time.monotonic()
        if self.enabled and now - self.shown > 0.2:
            self.shown = now
            click.echo(f"\r{self.label}: {self.count}", err=True, nl=False)

    def done(self) -> None:
        if self.enabled and self.shown:
            click.echo("\r" + " " * 40 + "\r", err=True, nl=False)


@snapshot_group.command("create")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="GLOB",
    help="Leave out paths matching this gitignore-style pattern (repeatable).",
)
@click.option(
    "--respect-gitignore",
    is_flag=True,
    help="Leave out what .gitignore files (and .git/info/exclude) ignore, and .git.",
)
@click.option("--strict", is_flag=True, help="Fail on the first file that cannot be kept, instead of reporting it.")
@click.option("--no-cache", is_flag=True, help="Read every file, trusting no stat cache (the cache is rebuilt).")
@json_option("Print the result as JSON.")
@pass_state
def snapshot_create(
    state: State,
    directory: str,
    excludes: tuple[str, ...],
    respect_gitignore: bool,
    strict: bool,
    no_cache: bool,
    as_json: bool,
) -> None:
    """Record DIRECTORY: every file's bytes into the artifact store, and the tree of hashes that names them."""
    progress = Progress()
    with open_artifacts(state, "cairn snapshot create") as artifacts:
        try:
            result, record = artifacts.snapshot(
                directory,
                exclude=excludes,
                respect_gitignore=respect_gitignore,
                strict=strict,
                no_cache=no_cache,
                progress=progress,
            )
        finally:
            progress.done()
        location = artifacts.store.location
    if as_json:
        echo_json({**result.to_record(), "source": record.root, "store": location})
        return
    for problem in result.problems:
        click.secho(f"note: {problem}", fg="yellow", err=True)
    click.echo(result.hash)
    click.echo(
        f"{len(result.tree)} entries, {_size(result.tree.size)}; read {plural(result.files_read, 'file')}, "
        f"{result.files_cached} unchanged" + (f"; {len(result.problems)} left out" if result.problems else ""),
        err=True,
    )


@snapshot_group.command("list")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option()
@pass_state
def snapshot_list(state: State, limit: int, as_json: bool) -> None:
    """Snapshots taken in this project, newest first."""
    with open_artifacts(state, "cairn snapshot list") as artifacts:
        records = artifacts.snapshots(limit=limit)
    if as_json:
        echo_json([r.to_record() for r in records])
        return
    if not records:
        click.echo("no snapshots yet: `cairn snapshot create DIR` takes one")
        return
    print_table(
        ["tree", "created", "files", "size", "left out", "root", "for"],
        [
            [r.tree[:16], r.created[:19], r.files, _size(r.bytes), r.problems or "", r.root, r.referrer or ""]
            for r in records
        ],
    )


@snapshot_group.command("show")
@click.argument("tree", metavar="TREE")
@json_option()
@pass_state
def snapshot_show(state: State, tree: str, as_json: bool) -> None:
    """The entries of a tree: mode, size, hash and path (links with their target)."""
    with open_artifacts(state, "cairn snapshot show") as artifacts:
        loaded = _load(artifacts, tree)
    if as_json:
        echo_json(
            {
                "tree": loaded.hash,
                "files": len(loaded),
                "bytes": loaded.size,
                "entries": [e.to_record() for e in loaded],
            }
        )
        return
    rows = [[e.mode, e.size, e.hash[:12], e.path + (f" -> {e.target}" if e.target is not None else "")] for e in loaded]
    print_table(["mode", "size", "hash", "path"], rows, title=f"tree {loaded.hash}")


def print_diff(diff: Any) -> None:
    """A tree diff as git prints a name-status: A added, D removed, M changed, T mode changed."""
    if diff.empty:
        click.echo("no differences")
        return
    lines = [("A", c.path, "") for c in diff.added] + [("D", c.path, "") for c in diff.removed]
    lines += [("M", c.path, "") for c in diff.changed]
    lines += [("T", c.path, f"  ({c.old.mode} -> {c.new.mode})") for c in diff.mode_changed if c.old and c.new]
    for letter, path, extra in sorted(lines, key=lambda line: line[1]):
        click.echo(f"{letter} {path}{extra}")


@snapshot_group.command("diff")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@json_option()
@pass_state
def snapshot_diff(state: State, a: str, b: str, as_json: bool) -> None:
    """What changed from tree A to tree B: A added, D removed, M changed, T mode changed."""
    from cairn.trees import diff_trees

    with open_artifacts(state, "cairn snapshot diff") as artifacts:
        diff = diff_trees(_load(artifacts, a), _load(artifacts, b))
    if as_json:
        echo_json(diff.to_record())
        return
    print_diff(diff)


@snapshot_group.command("restore")
@click.argument("tree", metavar="TREE")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Write into a directory that is not empty (the tree's paths are replaced).")
@json_option()
@pass_state
def snapshot_restore(state: State, tree: str, directory: str, force: bool, as_json: bool) -> None:
    """Write the files of TREE into DIRECTORY; nothing is ever written outside it."""
    from cairn.restore import restore

    with open_artifacts(state, "cairn snapshot restore") as artifacts:
        loaded = _load(artifacts, tree)
        result = restore(artifacts.store, loaded, Path(directory), force=force)
    if as_json:
        echo_json({"tree": loaded.hash, **result.to_record()})
        return
    click.echo(
        f"restored {plural(result.files, 'file')} and {plural(result.links, 'link')}, {_size(result.bytes)}, into {directory}"
    )
