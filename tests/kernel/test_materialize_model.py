"""Arbitrary operation sequences materialize exactly as a naive reference model says.

The model replays every operation into plain lists and recomputes the
answer from scratch with a full scan; the engine reads only what the budget
reaches, through skip pointers and indexes. They must agree on every
sequence Hypothesis can find.
"""

from __future__ import annotations

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.errors import BudgetExceededError
from cairn.plugins import load_plugins
from cairn.repo import Repo
from cairn.testing.fakes import WordTokenizer
from cairn.testing.memory import MemoryStore

CONTENT_TYPES = load_plugins(entry_points=False).content_types
WORDS = ["alpha", "beta", "gamma", "delta", "eps"]


@attrs.define
class Node:
    hash: str
    parent: Node | None
    op: str
    target: str | None
    content: dict | None
    time: str


@attrs.define
class Model:
    """The naive reference: everything recomputed by walking full lists."""

    nodes: dict[str, Node] = attrs.Factory(dict)
    notes: list[tuple[str, str, str]] = attrs.Factory(list)  # (time, target, priority)

    def lineage(self, head: Node | None) -> list[Node]:
        out = []
        while head is not None:
            out.append(head)
            head = head.parent
        return out[::-1]

    def expected(self, head: Node | None, moment: str | None, budget: int | None, tok: WordTokenizer):
        lineage = self.lineage(head)
        effective: dict[str, dict | None] = {}
        order: list[str] = []
        for node in lineage:
            if node.op == "append":
                effective[node.hash] = node.content
                order.append(node.hash)
            elif node.op == "edit":
                effective[node.target] = node.content
            else:
                effective[node.target] = None
        latest: dict[str, str] = {}
        for time, target, priority in sorted(self.notes):
            if moment is None or time <= moment:
                latest[target] = priority
        items = []
        for h in order:
            content = effective[h]
            if content is None:
                continue
            default = "pinned" if content["content_type"] == "instruction" else "normal"
            priority = latest.get(h, default)
            if priority == "skip":
                continue
            tokens = sum(tok.count_message(m) for m in CONTENT_TYPES.create(content).render())
            items.append((h, content, priority, tokens))
        required = [i for i in items if i[2] == "pinned"]
        rest = [i for i in items if i[2] != "pinned"]
        if budget is not None:
            used = sum(i[3] for i in required) + tok.overhead.reply_priming
            if required and used > budget:
                return "over"
            kept = []
            for item in reversed(rest):
                if used + item[3] > budget:
                    break
                used += item[3]
                kept.append(item)
            rest = kept
        chosen = {i[0] for i in required} | {i[0] for i in rest}
        ordered = [i for i in items if i[0] in chosen]
        ordered.sort(key=lambda i: 0 if i[1]["content_type"] == "instruction" else 50)
        return [(i[0], i[1]) for i in ordered]


operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("append"),
            st.sampled_from(["dialogue", "instruction", "reasoning"]),
            st.lists(st.sampled_from(WORDS), min_size=1, max_size=6),
        ),
        st.tuples(st.just("edit"), st.integers(0, 50), st.lists(st.sampled_from(WORDS), min_size=1, max_size=6)),
        st.tuples(st.just("delete"), st.integers(0, 50)),
        st.tuples(st.just("annotate"), st.integers(0, 50), st.sampled_from(["pinned", "skip", "normal"])),
        st.tuples(st.just("branch"), st.sampled_from(["main", "b1", "b2"])),
        # A budget as a share of what the branch holds, so budgets land where choices are made.
        st.tuples(st.just("check"), st.one_of(st.none(), st.floats(0.05, 1.1)), st.integers(0, 50)),
    ),
    min_size=1,
    max_size=40,
)


def make(kind: str, words: list[str]) -> dict:
    text = " ".join(words)
    if kind == "dialogue":
        return {"content_type": "dialogue", "role": "user", "text": text}
    return {"content_type": kind, "text": text}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_engine_matches_reference_model(ops, clock):
    # The fake clock (one microsecond per reading, shared by every example) makes
    # commit and annotation times strictly ordered, so time travel is exact.
    tok = WordTokenizer()
    repo = Repo(MemoryStore(), tok, CONTENT_TYPES)
    model = Model()
    heads: dict[str, Node | None] = {"main": None}
    branch = "main"
    for op in ops:
        kind = op[0]
        head = heads[branch]
        lineage_items = [n for n in model.lineage(head) if n.op == "append"]
        if kind == "append":
            content = make(op[1], op[2])
            c = repo.append(content)
            heads[branch] = model.nodes.setdefault(c.hash, Node(c.hash, head, "append", None, content, c.created_at))
        elif kind in ("edit", "delete"):
            live = [n for n in lineage_items if _alive(model, head, n)]
            if not live:
                continue
            target = live[op[1] % len(live)]
            if kind == "edit":
                content = make(target.content["content_type"], op[2])
                c = repo.edit(target.hash, content)
            else:
                content = None
                c = repo.delete(target.hash)
            heads[branch] = model.nodes.setdefault(c.hash, Node(c.hash, head, kind, target.hash, content, c.created_at))
        elif kind == "annotate":
            if not lineage_items:
                continue
            target = lineage_items[op[1] % len(lineage_items)]
            note = repo.annotate(target.hash, op[2])
            model.notes.append((note.created_at, target.hash, op[2]))
        elif kind == "branch":
            name = op[1]
            if name not in heads:
                if head is None:
                    continue  # nothing to branch from
                repo.create_branch(name)
                heads[name] = head
            repo.switch(name)
            branch = name
        else:
            share, pick = op[1], op[2]
            budget = None if share is None else max(1, int(share * repo.effective_tokens()))
            _check(repo, model, heads[branch], None, budget, tok)
            # Time travel to an earlier commit of this branch.
            lineage = model.lineage(heads[branch])
            if lineage:
                past = lineage[pick % len(lineage)]
                _check(repo, model, past, past.hash, budget, tok)
    _check(repo, model, heads[branch], None, None, tok)


def _alive(model: Model, head: Node | None, item: Node) -> bool:
    for node in model.lineage(head):
        if node.op == "delete" and node.target == item.hash:
            return False
    return True


def _check(repo: Repo, model: Model, head: Node | None, as_of: str | None, budget: int | None, tok) -> None:
    moment = head.time if (as_of and head) else None
    expected = model.expected(head, moment, budget, tok)
    if expected == "over":
        with pytest.raises(BudgetExceededError):
            repo.materialize(as_of=as_of, budget=budget, include_reasoning=True)
        return
    got = repo.materialize(as_of=as_of, budget=budget, include_reasoning=True)  # the model sends every type
    assert [(i.item, i.content.to_dict()) for i in got.items] == expected
    if budget is not None:
        assert got.token_count <= budget
    kept = {i.item for i in got.items}
    dropped = {d.commit for d in got.dropped}
    assert not kept & dropped
    live_items = [n.hash for n in model.lineage(head) if n.op == "append"]
    assert kept | dropped == set(live_items)
