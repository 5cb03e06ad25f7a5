"""The maintenance facet's conformance suite: stats, gc and the integrity check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cairn.model import Annotation, Commit, Priority, canonical_json, sha256_hex
from cairn.storage import GcReport, RefUpdate
from cairn.testing.storage._support import (
    MAIN,
    SIDE,
    Chain,
    CorruptBlob,
    FacetSuite,
    at,
)


class MaintenanceConformance(FacetSuite):
    """The ``maintenance`` facet's contract as tests: stats, gc of what no ref reaches, check of every hash and derived field."""

    facet = "maintenance"

    def test_stats_counts(self, store: Any, chain: Chain) -> None:
        empty = store.stats()
        assert (empty.blobs, empty.commits, empty.refs, empty.annotations) == (0, 0, 0, 0)
        one, two, three = chain.line(3)
        store.write(
            **chain.batch(one, two, three),
            refs=[RefUpdate(MAIN, three.hash, None), RefUpdate("HEAD", "ref: refs/heads/main", None)],
        )
        store.write(blobs={sha256_hex(b"loose"): b"loose"})
        store.add_annotations(
            [Annotation(one.hash, Priority.SKIP, "a", at(1)), Annotation(one.hash, Priority.NORMAL, "b", at(2))]
        )
        stats = store.stats()
        assert (stats.blobs, stats.commits, stats.refs, stats.annotations) == (4, 3, 2, 2)
        assert stats.bytes > 0

    def _gc_history(self, store: Any, chain: Chain) -> dict[str, Any]:
        """main: root-a1-a2; side: a1-b1-b2 (b2 reuses a2's content); an unreferenced o1-o2; a tag on a1."""
        root = chain.append(None, "root")
        a1 = chain.append(root, "a1")
        a2 = chain.append(a1, "shared text")
        b1 = chain.append(a1, "b1 only")
        b2 = chain.append(b1, "shared text")
        o1 = chain.append(None, "orphan root")
        o2 = chain.append(o1, "orphan child")
        store.write(
            **chain.batch(root, a1, a2, b1, b2, o1, o2),
            refs=[
                RefUpdate(MAIN, a2.hash, None),
                RefUpdate(SIDE, b2.hash, None),
                RefUpdate("HEAD", "ref: refs/heads/main", None),
            ],
        )
        store.add_annotations(
            [
                Annotation(a2.hash, Priority.PINNED, "kept", at(1)),
                Annotation(b1.hash, Priority.SKIP, "goes with b1", at(2)),
                Annotation(o2.hash, Priority.SKIP, "goes with o2", at(3)),
                Annotation(o2.hash, Priority.NORMAL, "goes with o2 too", at(4)),
            ]
        )
        store.put_token_counts("approx", {o1.content_hash: 2, a1.content_hash: 1})
        return {"root": root, "a1": a1, "a2": a2, "b1": b1, "b2": b2, "o1": o1, "o2": o2}

    def test_gc_removes_only_what_no_ref_reaches(self, store: Any, chain: Chain) -> None:
        h = self._gc_history(store, chain)
        store.delete_ref(SIDE, expected=h["b2"].hash)
        before = store.stats()

        dry = store.gc(dry_run=True)
        assert dry == GcReport(commits_removed=4, blobs_removed=3, annotations_removed=3, dry_run=True)
        after_dry = store.stats()
        assert (after_dry.blobs, after_dry.commits, after_dry.annotations) == (
            before.blobs,
            before.commits,
            before.annotations,
        ), "dry_run removed something"

        report = store.gc()
        assert report == GcReport(commits_removed=4, blobs_removed=3, annotations_removed=3, dry_run=False)
        live = [h["root"], h["a1"], h["a2"]]
        dead = [h["b1"], h["b2"], h["o1"], h["o2"]]
        assert set(store.get_commits(c.hash for c in live + dead)) == {c.hash for c in live}
        live_blobs = {c.content_hash for c in live}
        dead_blobs = {c.content_hash for c in dead} - live_blobs
        assert set(store.get_blobs(live_blobs | dead_blobs)) == live_blobs
        assert store.annotation_history(h["b1"].hash) == [] and store.annotation_history(h["o2"].hash) == []
        assert len(store.annotation_history(h["a2"].hash)) == 1
        assert store.get_token_counts("approx", [h["o1"].content_hash, h["a1"].content_hash]) == {
            h["a1"].content_hash: 1
        }
        assert store.list_refs() == {"HEAD": "ref: refs/heads/main", MAIN: h["a2"].hash}
        assert store.children(h["a1"].hash) == [h["a2"]]
        assert store.check() == []
        assert store.gc() == GcReport(0, 0, 0, False)

    def test_gc_keeps_everything_any_ref_reaches(self, store: Any, chain: Chain) -> None:
        h = self._gc_history(store, chain)
        store.set_ref("refs/tags/orphans", h["o2"].hash, expected=None)
        assert store.gc() == GcReport(0, 0, 0, False)
        assert store.stats().commits == 7
        store.delete_ref(MAIN, expected=h["a2"].hash)  # HEAD now names a missing branch: nothing to follow
        report = store.gc()
        assert report.commits_removed == 1 and report.annotations_removed == 1  # a2 only: b2 reaches root-a1
        assert set(store.get_commits(c.hash for c in h.values())) == {
            h[k].hash for k in ("root", "a1", "b1", "b2", "o1", "o2")
        }
        assert store.get_blobs([h["a2"].content_hash]) != {}, "a blob a surviving commit uses was removed"
        assert store.check() == []

    def test_gc_never_breaks_a_surviving_link(self, store: Any, chain: Chain) -> None:
        root = chain.append(None, "root")
        side = chain.append(root, "only on the side branch")
        main = chain.append(root, "main")
        edit = chain.edit(main, side, "main edits a commit of the side branch")
        store.write(
            **chain.batch(root, side, main, edit),
            refs=[RefUpdate(MAIN, edit.hash, None), RefUpdate(SIDE, side.hash, None)],
        )
        store.delete_ref(SIDE, expected=side.hash)
        store.gc()
        assert store.get_commits([edit.hash]) == {edit.hash: edit}
        assert store.check() == [], "gc removed a commit that a surviving commit links to"

    def test_check_is_empty_on_a_healthy_store(self, store: Any, chain: Chain) -> None:
        assert store.check() == []
        line = chain.line(12)
        edit = chain.edit(line[-1], line[2], "edited")
        delete = chain.delete(edit, line[3])
        branch = chain.append(line[5], "branch")
        store.write(
            **chain.batch(*line, edit, delete, branch),
            refs=[
                RefUpdate(MAIN, delete.hash, None),
                RefUpdate(SIDE, branch.hash, None),
                RefUpdate("HEAD", "ref: refs/heads/main", None),
            ],
        )
        store.add_annotations([Annotation(line[0].hash, Priority.PINNED, "p", at(1))])
        store.put_token_counts("approx", {line[0].content_hash: 2})
        assert store.check() == []

    # Each case: which commit of ``_planted_history`` to damage, and how. The damaged commit is
    # written through the store's own ``write`` (which trusts derived fields) in place of the
    # right one; ``check`` must name it, and only it.
    _DAMAGE: dict[str, tuple[str, Callable[[Commit, dict[str, Commit]], dict[str, Any]]]] = {
        "depth": ("a5", lambda c, h: {"depth": 9}),
        "depth of a root": ("a0", lambda c, h: {"depth": 1}),
        "skip to the parent": ("a5", lambda c, h: {"skip": c.parent}),
        "skip missing": ("a6", lambda c, h: {"skip": None}),
        "skip to another branch": ("a6", lambda c, h: {"skip": h["side"].hash}),
        "content type": ("a3", lambda c, h: {"content_type": "artifact"}),
        "content type of a delete": ("delete", lambda c, h: {"content_type": "dialogue"}),
        "tokens of a delete": ("delete", lambda c, h: {"token_count": 3}),
        "negative tokens": ("a1", lambda c, h: {"token_count": -1}),
        "cumulative of an append": ("a4", lambda c, h: {"cumulative_tokens": c.cumulative_tokens + 1}),
        "cumulative of an edit": ("edit", lambda c, h: {"cumulative_tokens": c.cumulative_tokens + 5}),
        "cumulative of a delete": ("delete", lambda c, h: {"cumulative_tokens": c.cumulative_tokens + 2}),
    }

    def _planted_history(self, chain: Chain) -> dict[str, Commit]:
        """Seven appends, an edit, a delete, and a side branch; every derived field right."""
        line = chain.line(7)
        history = {f"a{i}": commit for i, commit in enumerate(line)}
        history["edit"] = chain.edit(line[6], line[2], "an edit with more words than before")
        history["delete"] = chain.delete(history["edit"], line[4])
        history["after"] = chain.append(history["delete"], "after the delete")
        history["side"] = chain.append(line[3], "on the side")
        return history

    @pytest.mark.parametrize("case", sorted(_DAMAGE))
    def test_check_finds_each_wrong_derived_field(self, store: Any, chain: Chain, case: str) -> None:
        import attrs

        history = self._planted_history(chain)
        name, damage = self._DAMAGE[case]
        right = history[name]
        wrong = attrs.evolve(right, **damage(right, history))
        commits = [wrong if c is right else c for c in history.values()]
        store.write(
            **chain.batch(*commits),
            refs=[RefUpdate(MAIN, history["after"].hash, None), RefUpdate(SIDE, history["side"].hash, None)],
        )
        problems = store.check()
        assert ("derived", right.hash) in [(p.kind, p.object) for p in problems], problems
        # Counts follow from the parent's stored counts, so a wrong cumulative count also
        # shows on the children counted from it; anything else is one problem.
        children = {c.hash for c in history.values() if c.parent == right.hash} if "cumulative" in case else set()
        assert {(p.kind, p.object) for p in problems} <= {("derived", h) for h in {right.hash, *children}}, problems

    def test_check_finds_content_that_is_not_a_content_item(self, store: Any, chain: Chain) -> None:
        import attrs

        one = chain.append(None, "fine")
        data = canonical_json(["not", "a", "content", "item"])
        odd = attrs.evolve(chain.append(one, "placeholder"), content_hash=sha256_hex(data))
        odd = attrs.evolve(odd, hash=odd.computed_hash())
        store.write(blobs={**chain.batch(one)["blobs"], odd.content_hash: data}, commits=[one, odd])
        assert [(p.kind, p.object) for p in store.check()] == [("other", odd.hash)]

    @pytest.mark.parametrize(
        ("name", "value", "kind"),
        [
            ("refs/heads/../../etc/passwd", "commit", "bad_ref"),
            ("refs/heads/-x", "commit", "bad_ref"),
            ("refs/heads/🪨", "commit", "bad_ref"),
            ("refs/heads/main", "zzz", "bad_ref"),
            ("refs/heads/main", "ref: refs/heads/side", "bad_ref"),
            ("HEAD", "ref: ../../etc", "bad_ref"),
            ("HEAD", "ref: refs/heads/a..b", "bad_ref"),
            ("HEAD", "zzz", "bad_ref"),
            ("loose", "commit", "bad_ref"),
            ("refs/heads/main", "d" * 64, "dangling_ref"),
            ("HEAD", "d" * 64, "dangling_ref"),
        ],
    )
    def test_check_finds_refs_with_bad_names_or_values(
        self, store: Any, chain: Chain, name: str, value: str, kind: str
    ) -> None:
        one = chain.append(None, "one")
        store.write(**chain.batch(one), refs=[RefUpdate(name, one.hash if value == "commit" else value, None)])
        assert [(p.kind, p.object) for p in store.check()] == [(kind, name)]

    def test_check_accepts_refs_the_engine_writes(self, store: Any, chain: Chain) -> None:
        one = chain.append(None, "one")
        store.write(
            **chain.batch(one),
            refs=[
                RefUpdate("HEAD", "ref: refs/heads/feature/x-1", None),
                RefUpdate("refs/heads/feature/x-1", one.hash, None),
                RefUpdate("refs/heads/cafe", one.hash, None),  # named before branch names could not look like hashes
                RefUpdate("refs/tags/v1.0", one.hash, None),
            ],
        )
        assert store.check() == []
        store.set_ref("HEAD", one.hash, expected="ref: refs/heads/feature/x-1")  # detached
        assert store.check() == []

    def test_check_finds_a_tampered_blob(self, store: Any, chain: Chain, corrupt_blob: CorruptBlob | None) -> None:
        if corrupt_blob is None:
            pytest.skip("the backend provides no corrupt_blob hook")
        one, two = chain.line(2)
        store.write(**chain.batch(one, two), refs=[RefUpdate(MAIN, two.hash, None)])
        assert store.check() == []
        # one is an append: its content_hash is set.
        corrupt_blob(store, one.content_hash, b'{"content_type":"dialogue","text":"tampered"}')  # type: ignore[arg-type]
        problems = store.check()
        assert [(p.kind, p.object) for p in problems if p.kind == "blob_hash"] == [("blob_hash", one.content_hash)]

    # -- durability and concurrency -------------------------------------------------------------
