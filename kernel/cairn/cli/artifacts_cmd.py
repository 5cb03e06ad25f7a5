"""Artifact and snapshot commands: ``cairn artifact put|get|ls|show|verify``, ``cairn snapshot ...``.

Objects live in the configured artifact store (``[artifacts] store``);
names, media types and the list of snapshots live in the project's catalog
(``cairn.catalog``). Hashes may be abbreviated to a unique prefix of at
least 4 hex digits; ``@last`` is the newest named artifact or snapshot.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cairn.cli._app import State, echo_json, json_option, pass_state, print_table
from cairn.errors import FileError, NotFoundError, ValidationError

if TYPE_CHECKING:  # pragma: no cover
    from cairn.artifacts import ArtifactStore
    from cairn.catalog import Catalog

__all__ = ["register"]

LAST = "@last"
MIN_PREFIX = 4


def register(cli: click.Group) -> None:
    cli.add_command(artifact_group)
    cli.add_command(snapshot_group)


@contextlib.contextmanager
def _store(state: State) -> Iterator[ArtifactStore]:
    from cairn.artifacts import open_artifact_store

    store = open_artifact_store(config=state.config, plugins=state.plugins)
    try:
        yield store
    finally:
        store.close()


def _catalog(state: State) -> Catalog:
    from cairn.catalog import Catalog

    return Catalog(state.config.data_dir)


_FIRST = {"artifact": "`cairn artifact put FILE` stores one", "snapshot tree": "`cairn snapshot create DIR` takes one"}


def _resolve(store: ArtifactStore, text: str, *, what: str, newest: Callable[[], str | None]) -> str:
    """A full hash from a full hash, a unique prefix, or @last."""
    if text == LAST:
        found = newest()
        if found is None:
            raise NotFoundError(what, LAST, hint=f"none recorded in this project yet; {_FIRST.get(what, '')}")
        return found
    value = text.strip().lower()
    if len(value) == 64:
        from cairn.artifacts import check_digest

        return check_digest(value, what=what)
    if len(value) < MIN_PREFIX or any(c not in "0123456789abcdef" for c in value):
        raise ValidationError(
            f"{text!r:.80} is not a hash or a prefix of one",
            hint=f"give the hash, at least {MIN_PREFIX} of its first hex digits, or {LAST}",
        )
    matches = []
    for info in store.list(prefix=value):
        matches.append(info.hash)
        if len(matches) > 5:
            break
    if not matches:
        raise NotFoundError(what, text, hint=f"nothing in {store.location} starts with {value}")
    if len(matches) > 1:
        shown = ", ".join(m[:16] for m in matches[:5])
        raise ValidationError(
            f"{text!r} is ambiguous: {shown}{' ...' if len(matches) > 5 else ''}", hint="give more digits"
        )
    return matches[0]


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


# -- cairn artifact ------------------------------------------------------------------------------


@click.group("artifact")
def artifact_group() -> None:
    """Keep files by hash in the artifact store: put, get, ls, show, verify."""


@artifact_group.command("put")
@click.argument("file", type=click.Path(dir_okay=True, allow_dash=True))
@click.option("--name", help="A name to list it under (default: the file's name).")
@click.option("--mime", help="Its media type, e.g. image/png (default: guessed from the name).")
@json_option("Print the record as JSON.")
@pass_state
def artifact_put(state: State, file: str, name: str | None, mime: str | None, as_json: bool) -> None:
    """Store FILE (- reads stdin) and print its hash. The same bytes are stored once."""
    from cairn.catalog import check_mime, check_name, guess_mime

    name = check_name(name if name is not None else ("stdin" if file == "-" else Path(file).name))
    mime = check_mime(mime) if mime is not None else guess_mime(name)
    catalog = _catalog(state)
    with _store(state) as store:
        info = store.put(sys.stdin.buffer if file == "-" else Path(file))
        record = catalog.add_artifact(info.hash, name, mime, info.size)
        location = store.location
    if as_json:
        echo_json({**record.to_record(), "store": location})
        return
    click.echo(f"{info.hash}  {_size(info.size)}  {name} ({mime})")


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

    catalog = _catalog(state)
    with _store(state) as store:
        digest = _resolve(store, digest, what="artifact", newest=lambda: _newest_artifact(catalog))
        if output == "-":
            with store.open(digest) as stream:
                sys.stdout.flush()
                copy_hashing(stream, sys.stdout.fileno(), hashing=False)  # a corrupt object raises at its end
            return
        target = Path(output)
        if not force and os.path.lexists(target):
            raise FileError(f"{target} already exists", path=str(target), hint="pass --force to replace it")
        with atomic_write(target, binary=True, overwrite=force) as handle:
            size = store.copy_to(digest, handle.fileno())  # verified: a mismatch raises, and nothing lands
    if as_json:
        echo_json({"hash": digest, "size": size, "path": str(target.resolve())})
        return
    click.echo(f"wrote {target} ({_size(size)}, verified {digest[:12]})", err=True)


def _newest_artifact(catalog: Catalog) -> str | None:
    records = catalog.artifacts()
    return records[-1].hash if records else None


@artifact_group.command("ls")
@click.option("--all", "everything", is_flag=True, help="Every object in the store, snapshot contents included.")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option()
@pass_state
def artifact_ls(state: State, everything: bool, limit: int, as_json: bool) -> None:
    """Named artifacts, newest first (--all: every object in the store, by hash)."""
    if everything:
        with _store(state) as store:
            infos = []
            for info in store.list():
                infos.append(info)
                if len(infos) == limit:
                    break
        if as_json:
            echo_json([i.to_record() for i in infos])
            return
        if not infos:
            click.echo("the artifact store is empty")
            return
        print_table(["hash", "size", "created"], [[i.hash, _size(i.size), (i.created or "")[:19]] for i in infos])
        return
    records = list(reversed(_catalog(state).artifacts()))[:limit]
    if as_json:
        echo_json([r.to_record() for r in records])
        return
    if not records:
        click.echo("no artifacts yet: `cairn artifact put FILE` stores one")
        return
    print_table(
        ["hash", "size", "type", "name", "created"],
        [[r.hash[:16], _size(r.size), r.mime, r.name, r.created[:19]] for r in records],
    )


@artifact_group.command("show")
@click.argument("digest", metavar="HASH")
@json_option()
@pass_state
def artifact_show(state: State, digest: str, as_json: bool) -> None:
    """One artifact: size, when it was stored, where, and the names it was put under."""
    catalog = _catalog(state)
    with _store(state) as store:
        digest = _resolve(store, digest, what="artifact", newest=lambda: _newest_artifact(catalog))
        info = store.stat(digest)
        location = store.location
    names = catalog.names_of(digest)
    if as_json:
        echo_json({**info.to_record(), "store": location, "names": [r.to_record() for r in names]})
        return
    click.echo(f"hash     {info.hash}")
    click.echo(f"size     {info.size} ({_size(info.size)})")
    click.echo(f"created  {info.created or 'unknown'}")
    click.echo(f"store    {location}")
    for record in names:
        click.echo(f"name     {record.name} ({record.mime}, put {record.created[:19]})")


@artifact_group.command("verify")
@click.argument("digests", metavar="[HASH]...", nargs=-1)
@json_option()
@pass_state
def artifact_verify(state: State, digests: tuple[str, ...], as_json: bool) -> None:
    """Read artifacts back and check their hashes (all of them when no HASH is given); exit 1 on any problem."""
    from cairn.errors import IntegrityError

    catalog = _catalog(state)
    results: list[dict[str, Any]] = []
    with _store(state) as store:
        if digests:
            targets = [_resolve(store, d, what="artifact", newest=lambda: _newest_artifact(catalog)) for d in digests]
        else:
            targets = (info.hash for info in store.list())  # type: ignore[assignment]
        for digest in targets:
            try:
                info = store.verify(digest)
                results.append({"hash": digest, "ok": True, "size": info.size})
            except (IntegrityError, NotFoundError) as exc:
                results.append({"hash": digest, "ok": False, "problem": exc.message})
    bad = [r for r in results if not r["ok"]]
    if as_json:
        echo_json({"checked": len(results), "bad": len(bad), "results": results})
    else:
        for result in bad:
            click.secho(f"✗ {result['problem']}", fg="red", err=True)
        click.echo(f"{len(results) - len(bad)} of {len(results)} artifact(s) verified")
    if bad:
        click.get_current_context().exit(1)


# -- cairn snapshot --------------------------------------------------------------------------------


@click.group("snapshot")
def snapshot_group() -> None:
    """Record a directory as a tree of hashes; list, show, diff and restore trees."""


def _newest_snapshot(catalog: Catalog) -> str | None:
    records = catalog.snapshots()
    return records[-1].tree if records else None


def _load(state: State, store: ArtifactStore, text: str) -> Any:
    from cairn.snapshots import load_tree

    catalog = _catalog(state)
    return load_tree(store, _resolve(store, text, what="snapshot tree", newest=lambda: _newest_snapshot(catalog)))


class _Progress:
    """A counter on stderr while files are read, on a terminal only."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.count = 0
        self.shown = 0.0

    def __call__(self, path: str) -> None:
        self.count += 1
        now = time.monotonic()
        if self.enabled and now - self.shown > 0.2:
            self.shown = now
            click.echo(f"\rreading files: {self.count}", err=True, nl=False)

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
    from cairn.snapshots import snapshot

    data_dir = state.config.data_dir
    progress = _Progress()
    with _store(state) as store:
        skip = [data_dir]
        if os.path.isdir(store.location):
            skip.append(Path(store.location))  # never snapshot the store into itself
        cache_dir = data_dir / "snapshot-cache"
        if no_cache:
            from cairn.snapshots import StatCache

            with contextlib.suppress(OSError):
                StatCache.location(cache_dir, Path(directory).resolve(), store).unlink()
        try:
            result = snapshot(
                directory,
                store,
                exclude=excludes,
                respect_gitignore=respect_gitignore,
                strict=strict,
                cache_dir=cache_dir,
                skip=skip,
                progress=progress,
            )
        finally:
            progress.done()
        location = store.location
    source = str(Path(directory).resolve())
    _catalog(state).add_snapshot(result.hash, source, len(result.tree), result.tree.size, len(result.problems))
    if as_json:
        echo_json({**result.to_record(), "source": source, "store": location})
        return
    for problem in result.problems:
        click.secho(f"note: {problem}", fg="yellow", err=True)
    click.echo(result.hash)
    click.echo(
        f"{len(result.tree)} entries, {_size(result.tree.size)}; read {result.files_read} file(s), "
        f"{result.files_cached} unchanged" + (f"; {len(result.problems)} left out" if result.problems else ""),
        err=True,
    )


@snapshot_group.command("list")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option()
@pass_state
def snapshot_list(state: State, limit: int, as_json: bool) -> None:
    """Snapshots taken in this project, newest first."""
    records = list(reversed(_catalog(state).snapshots()))[:limit]
    if as_json:
        echo_json([r.to_record() for r in records])
        return
    if not records:
        click.echo("no snapshots yet: `cairn snapshot create DIR` takes one")
        return
    print_table(
        ["tree", "created", "files", "size", "left out", "source"],
        [[r.tree[:16], r.created[:19], r.files, _size(r.bytes), r.problems or "", r.source] for r in records],
    )


@snapshot_group.command("show")
@click.argument("tree", metavar="TREE")
@json_option()
@pass_state
def snapshot_show(state: State, tree: str, as_json: bool) -> None:
    """The entries of a tree: mode, size, hash and path (links with their target)."""
    with _store(state) as store:
        loaded = _load(state, store, tree)
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


@snapshot_group.command("diff")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@json_option()
@pass_state
def snapshot_diff(state: State, a: str, b: str, as_json: bool) -> None:
    """What changed from tree A to tree B: A added, D removed, M changed, T mode changed."""
    from cairn.trees import diff_trees

    with _store(state) as store:
        diff = diff_trees(_load(state, store, a), _load(state, store, b))
    if as_json:
        echo_json(diff.to_record())
        return
    if diff.empty:
        click.echo("no differences")
        return
    lines = [("A", c.path, "") for c in diff.added] + [("D", c.path, "") for c in diff.removed]
    lines += [("M", c.path, "") for c in diff.changed]
    lines += [("T", c.path, f"  ({c.old.mode} -> {c.new.mode})") for c in diff.mode_changed if c.old and c.new]
    for letter, path, extra in sorted(lines, key=lambda line: line[1]):
        click.echo(f"{letter} {path}{extra}")


@snapshot_group.command("restore")
@click.argument("tree", metavar="TREE")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Write into a directory that is not empty (the tree's paths are replaced).")
@json_option()
@pass_state
def snapshot_restore(state: State, tree: str, directory: str, force: bool, as_json: bool) -> None:
    """Write the files of TREE into DIRECTORY; nothing is ever written outside it."""
    from cairn.restore import restore

    with _store(state) as store:
        loaded = _load(state, store, tree)
        result = restore(store, loaded, Path(directory), force=force)
    if as_json:
        echo_json({"tree": loaded.hash, **result.to_record()})
        return
    click.echo(f"restored {result.files} file(s) and {result.links} link(s), {_size(result.bytes)}, into {directory}")
