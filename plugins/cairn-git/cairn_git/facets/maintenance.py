"""The maintenance facet: stats, garbage collection of the catalog, and the integrity check of catalog and ledger."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from cairn.storage import GcReport, Maintenance, Problem, StoreStats, check_objects, unreachable
from cairn_git import _ledger as ledger
from cairn_git._base import MAX_ATTEMPTS, locked, writing
from cairn_git._catalog import blob_path, commit_path, token_path
from cairn_git._context import ContextBase
from cairn_git._git import CatFile, parse_tag
from cairn_git._ledger_base import LedgerBase

__all__ = ["GitMaintenance"]


class GitMaintenance(ContextBase, LedgerBase, Maintenance):
    """``Maintenance`` of the catalog, the context refs, the ledger branch and the run refs."""

    @locked
    def stats(self) -> StoreStats:
        """Object counts; ``bytes`` is the size of the content blobs and commit records."""
        catalog = self._refresh()
        oids = list(catalog.blobs.values()) + list(catalog.commit_oids.values())
        size = sum(found[2] for found in self._cat.info(oids) if found is not None)
        refs = len(self._context_refs())
        runs = self._git.output("for-each-ref", "--format=x", self.anchor_prefix).count("\n")
        return StoreStats(
            blobs=len(catalog.blobs),
            commits=len(catalog.commits),
            refs=refs,
            annotations=catalog.annotation_count(),
            bytes=size,
            details={
                "backend": "git",
                "git_dir": str(self.git_dir),
                "namespace": self.namespace,
                "ledger_branch": self.ledger_branch,
                "runs": runs,
                "token_counts": sum(len(v) for v in catalog.tokens.values()),
                "catalog_commit": catalog.commit_oid,
                "object_format": self._writer.object_format,
                "last_gc_error": self.last_gc_error,
            },
        )

    @writing
    def gc(self, *, dry_run: bool = False) -> GcReport:
        """Drop commits no ref reaches, the blobs only they used, their annotations and counts, in one catalog commit.

        Earlier catalog commits keep the dropped objects in git's history (so
        a clone that still has them merges cleanly); the store no longer
        serves them.
        """
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._backoff(attempt)
            catalog = self._refresh()
            refs = self._context_refs()
            values = self._values_of(oid for _, oid in refs.values())
            dead, dead_blobs = unreachable(
                {n: values.get(oid, "") for n, (_, oid) in refs.items()}, catalog.commits, catalog.blobs
            )
            doomed = sum(len(catalog.notes.get(t, ())) for t in dead)
            report = GcReport(
                commits_removed=len(dead), blobs_removed=len(dead_blobs), annotations_removed=doomed, dry_run=dry_run
            )
            if dry_run or not (dead or dead_blobs):
                return report
            edits: dict[str, tuple[str, str] | None] = {}
            for digest in dead:
                edits[commit_path(digest)] = None
                if digest in catalog.notes:
                    edits[f"annotations/{digest[:2]}/{digest}"] = None
            for digest in dead_blobs:
                edits[blob_path(digest)] = None
                for tokenizer, counts in catalog.tokens.items():
                    if digest in counts:
                        edits[token_path(tokenizer, digest)] = None
            # Every ref must still be where gc saw it: a writer that just moved one to a "dead" commit wins.
            verify = [f"verify {git_ref} {oid}" for git_ref, oid in refs.values()]
            commit, root, failure = self._publish_catalog(catalog, edits, f"cairn gc: {len(dead)} commits", verify)
            if failure is None:
                self._catalog.apply(self._trees.diff(catalog.root, root), {})  # removals only: nothing to read
                catalog.commit_oid, catalog.root = commit, root
                self._after_write()
                return report
        raise self._give_up("collecting garbage", None)

    @locked
    def check(self) -> list[Problem]:
        """Every problem found: hashes, links, derived fields, dangling refs, and ledger/anchor mismatches."""
        catalog = self._refresh()
        problems: list[Problem] = []
        for path, oid in self._trees.walk(catalog.root, "commits"):
            name = path.rsplit("/", 1)[-1]
            commit = catalog.commits.get(name)
            if commit is None or catalog.commit_oids.get(name) != oid:
                problems.append(Problem("commit_hash", name, f"the record at {path} is for another commit"))
        refs = self._context_refs()
        values = self._values_of(oid for _, oid in refs.values())
        readable = {}
        for name in sorted(refs):
            value = values.get(refs[name][1])
            if value is None:
                problems.append(Problem("dangling_ref", name, f"{refs[name][0]} does not point at a value blob"))
            else:
                readable[name] = value
        blobs = _CatalogBlobs(self._cat, catalog.blobs)
        problems.extend(check_objects(self, catalog.commits.values(), blobs, readable))
        problems.extend(self._check_ledger())
        return problems

    def _check_ledger(self) -> list[Problem]:
        problems = []
        _, root = self._read_ledger()
        on_branch = {}
        for path, oid in self._trees.walk(root, ledger.RUNS_DIR):
            parts = path.split("/")
            if parts[-1] == ledger.RUN and len(parts) == 5:
                on_branch[parts[3]] = oid
        text = self._git.run(
            "for-each-ref", "--format=%(objectname) %(objecttype) %(refname)", self.anchor_prefix
        ).stdout.decode()
        anchored = {}
        for line in text.splitlines():
            oid, kind, ref = line.split(" ", 2)
            run_id = ref[len(self.anchor_prefix) :]
            if kind != "tag":
                problems.append(Problem("other", ref, f"points at a {kind}, not a run's tag"))
                continue
            anchored[run_id] = oid
        tags = dict(zip(anchored, self._cat.read(list(anchored.values())), strict=True))
        for run_id, found in tags.items():
            if found is None:
                problems.append(Problem("other", f"run {run_id}", "its tag object is missing"))
                continue
            _, message = parse_tag(found[2])
            if run_id not in on_branch:
                problems.append(Problem("other", f"run {run_id}", f"anchored, but not on {self.ledger_ref}"))
            elif self._writer.oid("blob", message) != on_branch[run_id]:
                problems.append(Problem("other", f"run {run_id}", "its tag message differs from its run.json"))
        for run_id in sorted(set(on_branch) - set(anchored)):
            problems.append(
                Problem("other", f"run {run_id}", f"on {self.ledger_ref} but has no ref under {self.anchor_prefix}")
            )
        return problems


class _CatalogBlobs(Mapping[str, bytes]):
    """Every stored content blob for ``check_objects``, read in one pipelined pass when iterated."""

    def __init__(self, cat: CatFile, blobs: Mapping[str, str]) -> None:
        self._cat = cat
        self._blobs = blobs

    def __getitem__(self, key: str) -> bytes:
        found = self._cat.read_one(self._blobs[key])
        if found is None:
            raise KeyError(key)
        return found[2]

    def __contains__(self, key: object) -> bool:
        return key in self._blobs

    def __iter__(self) -> Iterator[str]:
        return iter(self._blobs)

    def __len__(self) -> int:
        return len(self._blobs)

    def items(self) -> list[tuple[str, bytes]]:  # type: ignore[override]  # a list read in one pass, not a view
        keys = list(self._blobs)
        found = self._cat.read([self._blobs[k] for k in keys])
        return [(k, f[2]) for k, f in zip(keys, found, strict=True) if f is not None]
