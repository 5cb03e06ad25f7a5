"""A repository written by cairn-git 0.1.0, frozen as a git bundle, and a snapshot of what it holds.

``data/release-0.1.0.bundle`` holds every ref of a repository that the
0.1.0 code (one ``store.py``, before the store was split into facet
modules) wrote with ``record``: context objects, refs with quoted names,
annotations, token counts, runs open and closed, events, spend, chat on
runs (notes moved by a close) and in threads, and a second store in the
same repository with another namespace, ``run_refs = "tags"`` and another
ledger branch. ``data/release-0.1.0.json`` is ``snapshot`` of it, read
back by that same code.

``test_previous_release.py`` opens the bundle with today's code and checks
that ``snapshot`` is unchanged, so any change to the layout or to how it is
read shows up there. Regenerating the files defeats that purpose: they were
made once, by the release, with::

    python tests/release_fixture.py tests/data   # run by cairn-git 0.1.0
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from cairn.model import Annotation, Priority
from cairn.model.chat import ChatMessage, Thread
from cairn.model.ledger import Run, RunEvent, SpendRecord
from cairn.storage import RefUpdate
from cairn.testing.storage import Chain, at

NAME = "release-0.1.0"
MAIN = "refs/heads/main"
#: The second store's settings.
TEAM = {"namespace": "team", "ledger_branch": "team-ledger", "run_refs": "tags"}


def _run(run_id: str, seconds: float, status: str = "ok", **fields: Any) -> Run:
    return Run(run_id=run_id, type="job", status=status, started_at=at(seconds), **fields)


def _events(run_id: str, count: int, start: int = 0) -> list[RunEvent]:
    return [
        RunEvent(run_id, s, at(100 + s), "step", {"n": s, "text": f"étape {s} ✓"}) for s in range(start, start + count)
    ]


def record(store: Any, team: Any) -> None:
    """Everything the fixture holds, written through the store API (deterministic: fixed times and ids)."""
    chain = Chain()
    one, two, three, four = chain.line(4)
    intro = chain.append(four, "be brief", content_type="instruction", message="rules", metadata={"k": [1, "ü"]})
    edit = chain.edit(intro, two, "item 1, edited")
    gone = chain.delete(edit, three)
    reply = chain.append(gone, "a reply", reply_to=one)
    side = chain.line(2, parent=two, prefix="side")
    commits = [one, two, three, four, intro, edit, gone, reply, *side]
    store.write(
        **chain.batch(*commits),
        refs=[
            RefUpdate(MAIN, reply.hash, None),
            RefUpdate("refs/heads/feature/v1.2_x-y", side[-1].hash, None),
            RefUpdate("HEAD", "ref: refs/heads/main", None),
        ],
        token_counts={"words": {c.content_hash: c.token_count for c in commits if c.content_hash}},
    )
    store.set_ref("refs/heads/old", one.hash, expected=None)
    store.put_token_counts("hf:org/m.x", {one.content_hash: 6, two.content_hash: 6})
    store.add_annotations(
        [
            Annotation(one.hash, Priority.PINNED, "keep", at(50)),
            Annotation(four.hash, Priority.SKIP, "noise", at(51)),
            Annotation(four.hash, Priority.NORMAL, "changed my mind", at(52)),
        ]
    )

    store.put_thread(Thread("t-1", "About the done run", at(60), created_by="ann", anchor_run="r-done", tags=["x"]))
    store.put_run(_run("r-done", 1, summary="done"), _events("r-done", 3))
    store.put_run(_run("r-open", 2, status="open"), _events("r-open", 1))
    store.add_chat_message(ChatMessage("m-1", at(61), "on the done run", user="ann", run_id="r-done"))
    store.add_chat_message(ChatMessage("m-2", at(62), "in the thread", thread_id="t-1", publish=True))
    store.add_chat_message(
        ChatMessage("m-3", at(63), "on the open run, in the thread", run_id="r-open", thread_id="t-1")
    )
    store.add_chat_message(ChatMessage("m-4", at(64), "on a run not recorded here", run_id="r-elsewhere"))
    store.append_events("r-open", _events("r-open", 2, start=1))
    store.put_run(_run("r-open", 2, status="failed", summary="closed"), _events("r-open", 1, 3), expected_status="open")
    store.add_chat_message(ChatMessage("m-5", at(65), "after the close", run_id="r-open"))
    store.put_runs([(_run(f"r-batch-{i}", 10 + i), _events(f"r-batch-{i}", i)) for i in range(3)])
    store.put_run(_run("r-live", 20, status="open", metadata={"who": "me"}), _events("r-live", 2))
    store.put_run(_run("r-gone", 21), _events("r-gone", 1))
    store.delete_runs(["r-gone"])
    store.add_spend(
        [
            SpendRecord(at(70), "local", "m1", "ok", input_tokens=3, output_tokens=4, cost=0.5, run_id="r-done"),
            SpendRecord(at(70 + 86400), "local", "m2", "rate_limited", calls=2),
        ]
    )

    other = Chain(500)
    (solo,) = other.line(1, prefix="team")
    team.write(**other.batch(solo), refs=[RefUpdate(MAIN, solo.hash, None)])
    team.put_run(_run("t-run", 30), _events("t-run", 2))
    team.add_chat_message(ChatMessage("tm-1", at(80), "team note", run_id="t-run"))


def snapshot(store: Any) -> dict[str, Any]:
    """What a store holds, as JSON-ready records read through the public API, in a stable order."""
    refs = store.list_refs()
    commits = sorted(store.commits_by_time(), key=lambda c: c.hash)
    hashes = [c.hash for c in commits]
    blobs = store.get_blobs(sorted({c.content_hash for c in commits if c.content_hash}))
    heads = {name: [c.hash for c in store.ancestors(value)] for name, value in refs.items() if name != "HEAD"}
    runs = store.list_runs()
    stats = store.stats()
    return {
        "refs": refs,
        "refs_one_by_one": {name: store.get_ref(name) for name in refs},
        "commits": [c.to_record() for c in commits],
        "by_id": sorted(store.get_commits(hashes)) == hashes,
        "blobs": {h: base64.b64encode(b).decode() for h, b in sorted(blobs.items())},
        "ancestors": heads,
        "children": {h: [c.hash for c in store.children(h)] for h in hashes},
        "instructions": [c.hash for c in store.commits_by_type("instruction")],
        "targeting": [c.hash for c in store.commits_targeting(hashes)],
        "prefixes": {h[:6]: store.find_commits(h[:6]) for h in hashes},
        "annotations": {h: [a.to_record() for a in store.annotation_history(h)] for h in hashes},
        "latest": {h: a.to_record() for h, a in store.latest_annotations(hashes).items()},
        "latest_at_51": {h: a.to_record() for h, a in store.latest_annotations(hashes, as_of=at(51)).items()},
        "pinned": sorted(store.annotated(Priority.PINNED)),
        "token_counts": {t: store.get_token_counts(t, sorted(blobs)) for t in ("words", "hf:org/m.x")},
        "runs": [r.to_record() for r in runs],
        "run_by_id": [store.get_run(r.run_id) == r for r in runs],
        "events": {r.run_id: [e.to_record() for e in store.run_events(r.run_id)] for r in runs},
        "spend": [s.to_record() for s in store.spend()],
        "messages": [m.to_record() for m in store.chat_messages()],
        "messages_by_run": {r.run_id: [m.id for m in store.chat_messages(run_id=r.run_id)] for r in runs},
        "threads": [t.to_record() for t in store.list_threads()],
        "thread_messages": {
            t.thread_id: [m.id for m in store.chat_messages(thread_id=t.thread_id)] for t in store.list_threads()
        },
        "stats": [stats.blobs, stats.commits, stats.refs, stats.annotations, stats.details["runs"]],
        "problems": [str(p) for p in store.check()],
    }


def main(out: Path) -> None:
    """Write the bundle and the snapshot into ``out`` (see the module docstring: the release does this, once)."""
    from cairn_git.store import GitStore

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        repo = Path(scratch) / "repo"
        repo.mkdir()

        def git(*args: str) -> None:
            subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

        git("init", "-q", "-b", "main")
        git("config", "user.name", "Release Fixture")
        git("config", "user.email", "fixture@example.invalid")
        (repo / "README").write_text("fixture\n")
        git("add", "README")
        git("commit", "-q", "-m", "first")
        with GitStore(repo) as store, GitStore(repo, **TEAM) as team:
            record(store, team)
            shot = {"default": snapshot(store), "team": snapshot(team)}
        git("bundle", "create", "-q", str((out / f"{NAME}.bundle").resolve()), "--all")
    (out / f"{NAME}.json").write_text(json.dumps(shot, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
