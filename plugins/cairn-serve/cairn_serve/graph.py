"""The commit graph's layout: which lane and row each commit takes, and the edges between them.

Rows are newest first (time, then depth). A lane is one line of descent: a
commit takes the lane that is waiting for it (a child named it as parent),
else a new one, like ``cairn log --graph``. Edges: ``parent`` (the line of
history), ``merge`` (a merge commit's ``merge_parent``, the side merged in),
``edit`` and ``delete`` (a change pointing at the item it changes). Only
edges between shown commits are drawn; a change whose item is older than the
window says so in its ``target``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["commit_graph", "parents_of"]


def parents_of(commit: Any) -> list[str]:
    """Every parent of a commit: ``parent`` and, for a merge commit, ``merge_parent`` (the side merged in)."""
    out = [commit.parent] if commit.parent else []
    merged_in = getattr(commit, "merge_parent", None)
    if merged_in and merged_in not in out:
        out.append(merged_in)
    return out


def commit_graph(repo: Any, *, limit: int, summary: Any) -> dict[str, Any]:
    """The newest ``limit`` commits of every branch (and HEAD) laid out for drawing.

    Each branch is walked at most ``limit`` commits back: the newest ``limit``
    of the union are all within that, so the cost follows the window, not
    the length of history. ``summary(commit)`` gives a node's one-line text.
    """
    branches = repo.branches()
    labels: dict[str, list[str]] = {}
    for name, digest in sorted(branches.items()):
        labels.setdefault(digest, []).append(name)
    _, head = repo.head_state()
    commits: dict[str, Any] = {}
    more = False  # a branch goes back further than the window
    for digest in [*branches.values(), *([head] if head else [])]:
        for n, commit in enumerate(repo.walk(repo.commit(digest))):
            if commit.hash in commits:
                break
            if n >= limit:
                more = True
                break
            commits[commit.hash] = commit
    ordered = sorted(commits.values(), key=lambda c: (c.created_at, c.depth), reverse=True)[:limit]
    shown = {c.hash for c in ordered}
    lanes: list[str | None] = []
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    for row, commit in enumerate(ordered):
        if commit.hash in lanes:
            lane = lanes.index(commit.hash)
        elif None in lanes:
            lane = lanes.index(None)
            lanes[lane] = commit.hash
        else:
            lanes.append(commit.hash)
            lane = len(lanes) - 1
        # Other lanes waiting for this commit end here: their branch forked from it.
        for i, waiting in enumerate(lanes):
            if waiting == commit.hash and i != lane:
                lanes[i] = None
        parents = parents_of(commit)
        lanes[lane] = parents[0] if parents and parents[0] in shown else None
        for extra in parents[1:]:
            if extra in shown and extra not in lanes:
                lanes.append(extra)
        nodes.append(
            {
                "hash": commit.hash,
                "short": commit.hash[:12],
                "row": row,
                "lane": lane,
                "operation": commit.operation.value,
                "content_type": commit.content_type,
                "target": commit.target,
                "created_at": commit.created_at,
                "message": commit.message,
                "summary": summary(commit),
                "branches": labels.get(commit.hash, []),
                "head": commit.hash == head,
            }
        )
        for n, parent in enumerate(parents):
            if parent in shown:
                edges.append({"from": commit.hash, "to": parent, "kind": "parent" if n == 0 else "merge"})
        if commit.target and commit.target in shown:
            edges.append({"from": commit.hash, "to": commit.target, "kind": commit.operation.value})
    return {
        "nodes": nodes,
        "edges": edges,
        "lanes": max((n["lane"] for n in nodes), default=-1) + 1,
        "branches": dict(sorted(branches.items())),
        "head": head,
        "current_branch": repo.branch,
        "limit": limit,
        "truncated": more or len(commits) > len(ordered),
    }
