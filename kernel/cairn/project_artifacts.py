"""The project's artifacts: one put and get over two homes, and the records that name them.

``ProjectArtifacts`` is what ``cairn artifact``, ``cairn snapshot``,
``cairn run --artifact/--snapshot`` and ``cairn chat send --attach`` use:

- **size routing**: a file of at most ``[artifacts] inline_max_bytes``
  (and more than 0 allowed) is kept *inline*, its bytes in the project
  store's ``artifact_meta`` facet beside its record; a larger one goes to
  the artifact store (``[artifacts] store``). Either way it is named by the
  SHA-256 of its bytes, and ``open``, ``copy_to``, ``stat`` and ``verify``
  look in both, so callers never need to know where a file lives;
- **records**: every put records its name, media type, who put it and what
  for (``referrer``: ``run:<id>``, ``chat:<id>``, ``commit:<hash>``) in the
  ``artifact_meta`` facet, and every snapshot its tree and counts;
- **snapshots**: ``snapshot`` takes a directory into the artifact store
  (contents and tree always go there, never inline), with the project's
  stat cache, never including cairn's own data directory or the local
  store's.

The artifact store is opened on first need, so inline artifacts and the
records work without it (an S3 bucket is not contacted to list names).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cairn.artifacts import (
    ArtifactInfo,
    ArtifactStore,
    Readable,
    ReadStream,
    Source,
    artifact_not_found,
    check_digest,
    corrupt,
    open_source,
)
from cairn.errors import NotFoundError, ValidationError
from cairn.model import now, sha256_hex
from cairn.model.artifacts import ArtifactRecord, SnapshotRecord, check_mime, check_name, check_referrer, guess_mime
from cairn.storage import ArtifactMetaStore, Facet, require

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.plugins import Plugins
    from cairn.snapshots import SnapshotResult
    from cairn.trees import Tree

__all__ = ["INLINE", "LAST", "MIN_PREFIX", "STORE", "ProjectArtifacts", "open_project_artifacts"]

#: Where an artifact's bytes live.
INLINE = "inline"
STORE = "store"
#: The newest named artifact or snapshot, wherever a hash is asked for.
LAST = "@last"
#: The shortest hash prefix accepted.
MIN_PREFIX = 4
_CACHE_DIR = "snapshot-cache"


class _Prefixed(io.RawIOBase):
    """``head`` then the rest of ``tail``: a stream whose first bytes were already read to size it."""

    def __init__(self, head: bytes, tail: Readable) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head.nbytes:
            count = min(len(view), self._head.nbytes)
            view[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        data = self._tail.read(len(view)) or b""
        view[: len(data)] = data
        return len(data)


def _read_up_to(stream: Readable, limit: int) -> bytes:
    """At most ``limit`` bytes from ``stream`` (fewer only at its end)."""
    parts = []
    left = limit
    while left > 0:
        data = stream.read(min(left, 1 << 20)) or b""
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


class ProjectArtifacts:
    """Artifacts of one project: inline in ``meta`` up to ``inline_max_bytes``, else in the artifact store."""

    def __init__(
        self,
        meta: ArtifactMetaStore,
        artifact_store: ArtifactStore | Callable[[], ArtifactStore],
        *,
        inline_max_bytes: int,
        data_dir: Path | None = None,
        user: str | None = None,
    ) -> None:
        self.meta = meta
        self._store: ArtifactStore | None = None
        self._open_store: Callable[[], ArtifactStore] | None = None
        if isinstance(artifact_store, ArtifactStore):
            self._store = artifact_store
        else:
            self._open_store = artifact_store
        self.inline_max_bytes = inline_max_bytes
        self.data_dir = data_dir
        self.user = user

    @property
    def store(self) -> ArtifactStore:
        """The artifact store, opened on first use."""
        if self._store is None:
            assert self._open_store is not None
            self._store = self._open_store()
        return self._store

    @property
    def cache_dir(self) -> Path | None:
        """Where snapshots keep their stat caches (``<data_dir>/snapshot-cache``)."""
        return self.data_dir / _CACHE_DIR if self.data_dir is not None else None

    def close(self) -> None:
        """Close the artifact store if this opened it (the project store, and a store given, belong to the caller)."""
        if self._store is not None and self._open_store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> ProjectArtifacts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- putting -----------------------------------------------------------------------------------

    def put(
        self,
        source: Source,
        *,
        name: str,
        mime: str | None = None,
        referrer: str | None = None,
    ) -> ArtifactRecord:
        """Store the bytes of ``source`` (a path or a readable binary stream) and record them under ``name``.

        ``mime`` defaults to what the name suggests. Small files are kept
        inline, larger ones in the artifact store (see the module docstring).
        """
        name = check_name(name)
        mime = check_mime(mime) if mime is not None else guess_mime(name)
        check_referrer(referrer)
        limit = self.inline_max_bytes
        if isinstance(source, (str, os.PathLike)):
            try:
                small = limit > 0 and os.stat(source).st_size <= limit
            except (OSError, ValueError):
                small = False  # the put below reports what is wrong with the path
            if small:
                with open_source(source) as stream:
                    head = _read_up_to(stream, limit + 1)
                if len(head) <= limit:  # (a file that grew meanwhile goes to the artifact store)
                    return self._put_inline(head, name, mime, referrer)
            info = self.store.put(source)  # a path: the store may copy it the fast way
        else:
            with open_source(source) as stream:
                head = _read_up_to(stream, limit + 1) if limit > 0 else b""
                if limit > 0 and len(head) <= limit:
                    return self._put_inline(head, name, mime, referrer)
                info = self.store.put(_Prefixed(head, stream) if head else stream)
        record = self._record(info.hash, name, mime, info.size, False, referrer)
        self.meta.add_artifact_records([record])
        return record

    def _put_inline(self, data: bytes, name: str, mime: str, referrer: str | None) -> ArtifactRecord:
        digest = sha256_hex(data)
        record = self._record(digest, name, mime, len(data), True, referrer)
        self.meta.add_artifact_records([record], inline={digest: data})
        return record

    def _record(
        self, digest: str, name: str, mime: str, size: int, inline: bool, referrer: str | None
    ) -> ArtifactRecord:
        return ArtifactRecord(digest, name, mime, size, now(), inline=inline, user=self.user, referrer=referrer)

    # -- reading -----------------------------------------------------------------------------------

    def _inline(self, digest: str) -> bytes | None:
        data = self.meta.get_inline([digest]).get(digest)
        if data is not None and sha256_hex(data) != digest:
            raise corrupt(digest, "the project store (inline)", f"its bytes hash to {sha256_hex(data)}")
        return data

    def where(self, digest: str) -> str | None:
        """``"inline"``, ``"store"``, or None when neither holds the hash."""
        check_digest(digest)
        if digest in self.meta.get_inline([digest]):
            return INLINE
        return STORE if self.store.has(digest) else None

    def stat(self, digest: str) -> tuple[ArtifactInfo, str]:
        """(size and creation time, where) of a stored artifact; ``NotFoundError`` if neither home has it."""
        check_digest(digest)
        data = self._inline(digest)
        if data is not None:
            records = self.meta.artifact_records(hash=digest)
            created = min((r.created for r in records), default=None)
            return ArtifactInfo(digest, len(data), created), INLINE
        try:
            return self.store.stat(digest), STORE
        except NotFoundError:
            raise artifact_not_found(digest, f"the project store or {self.store.location}") from None

    def open(self, digest: str) -> ReadStream:
        """A verified stream of the artifact's bytes, wherever they live."""
        check_digest(digest)
        data = self._inline(digest)
        if data is not None:
            return io.BytesIO(data)
        try:
            return self.store.open(digest)
        except NotFoundError:
            raise artifact_not_found(digest, f"the project store or {self.store.location}") from None

    def read_bytes(self, digest: str) -> bytes:
        """The whole artifact, verified: for small files (images for a model, trees)."""
        with self.open(digest) as stream:
            return stream.read() or b""

    def copy_to(self, digest: str, fd: int) -> int:
        """Write the artifact into the open file ``fd``, verified; returns its size (see ``ArtifactStore.copy_to``)."""
        check_digest(digest)
        data = self._inline(digest)
        if data is None:
            try:
                return self.store.copy_to(digest, fd)
            except NotFoundError:
                raise artifact_not_found(digest, f"the project store or {self.store.location}") from None
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        return len(data)

    def verify(self, digest: str) -> tuple[ArtifactInfo, str]:
        """Read the artifact back and check its hash: (its info, where), or ``IntegrityError``/``NotFoundError``."""
        check_digest(digest)
        data = self._inline(digest)  # checked as it is read
        if data is not None:
            return ArtifactInfo(digest, len(data)), INLINE
        try:
            return self.store.verify(digest), STORE
        except NotFoundError:
            raise artifact_not_found(digest, f"the project store or {self.store.location}") from None

    def list_all(self, *, prefix: str = "") -> Iterator[tuple[ArtifactInfo, str]]:
        """Every stored object, inline and in the artifact store, in hash order: (info, where)."""
        inline = sorted((h, n) for h, n in self.meta.inline_sizes().items() if h.startswith(prefix))
        stored = self.store.list(prefix=prefix)
        pending = next(stored, None)
        for digest, size in inline:
            while pending is not None and pending.hash < digest:
                yield pending, STORE
                pending = next(stored, None)
            if pending is not None and pending.hash == digest:
                pending = next(stored, None)  # kept in both homes: shown once, inline
            yield ArtifactInfo(digest, size), INLINE
        while pending is not None:
            yield pending, STORE
            pending = next(stored, None)

    def resolve(self, text: str, *, what: str = "artifact", newest: Callable[[], str | None] | None = None) -> str:
        """A full hash from a full hash, a unique prefix of at least ``MIN_PREFIX`` digits, or ``@last``."""
        if text == LAST:
            found = newest() if newest is not None else self.newest_artifact()
            if found is None:
                first = (
                    "`cairn snapshot create DIR` takes one"
                    if "snapshot" in what
                    else "`cairn artifact put FILE` stores one"
                )
                raise NotFoundError(what, LAST, hint=f"none recorded in this project yet; {first}")
            return found
        value = text.strip().lower()
        if len(value) == 64:
            return check_digest(value, what=what)
        if len(value) < MIN_PREFIX or any(c not in "0123456789abcdef" for c in value):
            raise ValidationError(
                f"{text!r:.80} is not a hash or a prefix of one",
                hint=f"give the hash, at least {MIN_PREFIX} of its first hex digits, or {LAST}",
            )
        matches: list[str] = []
        for info, _ in self.list_all(prefix=value):
            matches.append(info.hash)
            if len(matches) > 5:
                break
        if not matches:
            raise NotFoundError(what, text, hint=f"nothing in this project's artifacts starts with {value}")
        if len(matches) > 1:
            shown = ", ".join(m[:16] for m in matches[:5])
            raise ValidationError(
                f"{text!r} is ambiguous: {shown}{' ...' if len(matches) > 5 else ''}", hint="give more digits"
            )
        return matches[0]

    # -- records -----------------------------------------------------------------------------------

    def records(self, *, limit: int | None = None) -> list[ArtifactRecord]:
        """Named artifacts, newest first."""
        return self.meta.artifact_records(limit=limit)

    def names_of(self, digest: str) -> list[ArtifactRecord]:
        """Every record of ``digest``, oldest first."""
        return list(reversed(self.meta.artifact_records(hash=digest)))

    def newest_artifact(self) -> str | None:
        newest = self.meta.artifact_records(limit=1)
        return newest[0].hash if newest else None

    def newest_snapshot(self) -> str | None:
        newest = self.meta.snapshot_records(limit=1)
        return newest[0].tree if newest else None

    # -- snapshots ---------------------------------------------------------------------------------

    def snapshot(
        self,
        directory: Path | str,
        *,
        exclude: Sequence[str] = (),
        respect_gitignore: bool = False,
        strict: bool = False,
        no_cache: bool = False,
        progress: Callable[[str], None] | None = None,
        referrer: str | None = None,
    ) -> tuple[SnapshotResult, SnapshotRecord]:
        """Snapshot ``directory`` into the artifact store and record it; see ``cairn.snapshots.snapshot``."""
        from cairn.snapshots import StatCache, snapshot

        check_referrer(referrer)
        store = self.store
        skip: list[Path] = [self.data_dir] if self.data_dir is not None else []
        if os.path.isdir(store.location):
            skip.append(Path(store.location))  # never snapshot the store into itself
        cache_dir = self.cache_dir
        if no_cache and cache_dir is not None:
            with contextlib.suppress(OSError):
                StatCache.location(cache_dir, Path(directory).resolve(), store).unlink()
        result = snapshot(
            directory,
            store,
            exclude=exclude,
            respect_gitignore=respect_gitignore,
            strict=strict,
            cache_dir=cache_dir,
            skip=skip,
            progress=progress,
        )
        record = SnapshotRecord(
            result.hash,
            str(Path(directory).resolve()),
            now(),
            len(result.tree),
            result.tree.size,
            len(result.problems),
            user=self.user,
            referrer=referrer,
        )
        self.meta.add_snapshot_records([record])
        return result, record

    def load_tree(self, digest: str) -> Tree:
        """The snapshot tree stored under ``digest``, checked."""
        from cairn.snapshots import load_tree

        return load_tree(self.store, digest)

    def snapshots(self, *, limit: int | None = None) -> list[SnapshotRecord]:
        """Snapshots taken in this project, newest first."""
        return self.meta.snapshot_records(limit=limit)


def open_project_artifacts(
    store: Facet,
    *,
    config: Config,
    plugins: Plugins,
    user: str | None = None,
    doing: str | None = None,
) -> ProjectArtifacts:
    """The artifacts of the project ``config`` describes, over its opened ``store`` (which must keep artifact
    metadata: ``MissingFacetError`` otherwise). Records left by the first release's sidecar catalog are
    imported on the way (``cairn.catalog``)."""
    from cairn.artifacts import open_artifact_store
    from cairn.catalog import import_sidecar_catalog
    from cairn.config import ArtifactsSettings

    meta = require(store, ArtifactMetaStore, doing=doing)
    settings = config.settings("artifacts", ArtifactsSettings)
    import_sidecar_catalog(config.data_dir, meta)
    return ProjectArtifacts(
        meta,
        lambda: open_artifact_store(config=config, plugins=plugins),
        inline_max_bytes=settings.inline_max_bytes,
        data_dir=config.data_dir,
        user=user,
    )
