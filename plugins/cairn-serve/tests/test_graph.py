"""The commit graph's layout on real repositories: lanes, rows, and every kind of edge."""

from __future__ import annotations

import pytest
from cairn_serve.graph import commit_graph, parents_of

from cairn.plugins import load_plugins
from cairn.repo import Repo
from cairn.testing.memory import MemoryStore


@pytest.fixture
def repo() -> Repo:
    plugins = load_plugins(environ={})
    return Repo(MemoryStore(), plugins.create("tokenizers", "approx"), plugins.content_types)


def say(text: str) -> dict:
    return {"content_type": "dialogue", "role": "user", "text": text}


def graph(repo: Repo, limit: int = 100) -> dict:
    return commit_graph(repo, limit=limit, summary=lambda c: c.hash[:4])


def test_a_single_line_of_history_is_one_lane(repo):
    for i in range(5):
        repo.append(say(f"{i}"))
    data = graph(repo)
    assert data["lanes"] == 1 and [n["lane"] for n in data["nodes"]] == [0] * 5
    assert [e["kind"] for e in data["edges"]] == ["parent"] * 4


def test_two_branches_take_two_lanes_and_join_where_they_forked(repo):
    base = repo.append(say("base"))
    repo.append(say("main 1"))
    repo.switch("side", create=True)
    repo.append(say("side 1"))
    repo.append(say("side 2"))
    repo.switch("main")
    repo.append(say("main 2"))
    data = graph(repo)
    lanes = {n["summary"]: n["lane"] for n in data["nodes"]}
    assert data["lanes"] == 2 and len(data["nodes"]) == 5
    by_hash = {n["hash"]: n for n in data["nodes"]}
    fork = next(n for n in data["nodes"] if n["hash"] == base.hash)
    assert fork["lane"] in lanes.values()
    children = [e["from"] for e in data["edges"] if e["to"] == base.hash]
    assert len(children) == 1  # main 1; side forked from main 1
    side_heads = [n for n in data["nodes"] if n["branches"] == ["side"]]
    main_heads = [n for n in data["nodes"] if n["branches"] == ["main"]]
    assert side_heads[0]["lane"] != main_heads[0]["lane"]
    assert all(by_hash[e["to"]]["row"] > by_hash[e["from"]]["row"] for e in data["edges"])


def test_edits_deletes_and_merges_are_edges(repo):
    first = repo.append(say("first"))
    repo.switch("side", create=True)
    side = repo.append(say("on the side"))
    repo.switch("main")
    repo.edit(first.hash, say("first, edited"))
    merged = repo.merge("side").merge
    assert merged is not None and merged.merge_parent == side.hash
    repo.delete(first.hash)
    assert parents_of(merged) == [merged.parent, side.hash]
    kinds = {(e["kind"], e["from"], e["to"]) for e in graph(repo)["edges"]}
    assert ("merge", merged.hash, side.hash) in kinds
    assert ("parent", merged.hash, merged.parent) in kinds
    assert {k for k, _, t in kinds if t == first.hash} >= {"edit", "delete"}


def test_a_window_keeps_only_edges_inside_it(repo):
    for i in range(30):
        repo.append(say(f"{i}"))
    data = graph(repo, limit=10)
    assert len(data["nodes"]) == 10 and data["truncated"]
    shown = {n["hash"] for n in data["nodes"]}
    assert all(e["from"] in shown and e["to"] in shown for e in data["edges"])
    assert len(data["edges"]) == 9
