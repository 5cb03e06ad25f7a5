"""Properties of materialized tool sequences and token counts, over histories Hypothesis makes up.

Whatever order calls, results, user turns, deletes, skips and pins came in,
the messages obey the APIs' ordering rules for both providers, every item
left out says why, and ``token_count`` is what the tokenizer says the
messages sent cost, within the budget, for the base tokenizer and for one
that counts a request its own way.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sdk_checks import anthropic_sequence_problems, openai_sequence_problems

from cairn.errors import BudgetExceededError
from cairn.materialize_tools import TOOL_REASONS
from cairn.model import Message
from cairn.plugins import load_plugins
from cairn.repo import Repo
from cairn.testing.fakes import WordTokenizer
from cairn.testing.memory import MemoryStore

CONTENT_TYPES = load_plugins(entry_points=False).content_types
REASONS = {"deleted", "skipped", "budget", "superseded", "held_back", *TOOL_REASONS}


class RequestTokenizer(WordTokenizer):
    """Counts a request its own way: 2 per message, 9 for the request, not the base class's sum."""

    def count_messages(self, messages):
        messages = list(messages)
        if not messages:
            return 0
        return 9 + sum(
            2 + self.count(m.content or "") + sum(self.count(c.arguments) for c in m.tool_calls) for m in messages
        )


event = st.one_of(
    st.tuples(st.just("call"), st.integers(0, 3)),
    st.tuples(st.just("result"), st.integers(0, 3)),
    st.tuples(st.just("user"), st.sampled_from(["hi", "wait a moment", "and then?"])),
    st.tuples(st.just("assistant"), st.sampled_from(["ok", "let me look"])),
    st.tuples(st.just("delete"), st.integers(0, 30)),
    st.tuples(st.just("skip"), st.integers(0, 30)),
    st.tuples(st.just("pin"), st.integers(0, 30)),
)


def build(events, tokenizer, instruction):
    repo = Repo(MemoryStore(), tokenizer, CONTENT_TYPES)
    if instruction:
        repo.append({"content_type": "instruction", "text": "Use the tools."})
    appended, deleted = [], set()
    for kind, arg in events:
        if kind in ("call", "result"):
            item = {
                "content_type": "tool_io",
                "tool_name": "search",
                "direction": kind,
                "payload": {"n": arg},
                "call_id": f"c{arg}",
            }
            appended.append(repo.append(item).hash)
        elif kind in ("user", "assistant"):
            appended.append(repo.append({"content_type": "dialogue", "role": kind, "text": arg}).hash)
        elif appended:
            target = appended[arg % len(appended)]
            if kind == "delete":
                if target not in deleted:
                    repo.delete(target)
                    deleted.add(target)
            elif kind == "skip":
                repo.skip(target)
            else:
                repo.pin(target)
    return repo


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(event, max_size=14),
    budget=st.none() | st.integers(1, 120),
    own_count=st.booleans(),
    instruction=st.booleans(),
    pending=st.booleans(),
)
def test_materialized_sequences_are_valid_and_counted_by_the_tokenizer(events, budget, own_count, instruction, pending):
    tokenizer = RequestTokenizer("request-words") if own_count else WordTokenizer()
    repo = build(events, tokenizer, instruction)
    try:
        got = repo.materialize(budget=budget, keep_pending_calls=pending)
    except BudgetExceededError:
        assert budget is not None  # only the pinned items alone can be too many
        return
    sent: list[Message] = list(got.neutral_messages)
    assert got.token_count == tokenizer.count_messages(sent)
    if budget is not None:
        assert got.token_count <= budget
    assert all(d.reason in REASONS for d in got.dropped)
    kept = {i.item for i in got.items}
    assert not kept & {d.commit for d in got.dropped}
    if not sent:
        return
    assert openai_sequence_problems(got.messages, pending_at_end=pending) == []
    anthropic = repo.materialize(budget=budget, format="anthropic", keep_pending_calls=pending).messages
    assert anthropic_sequence_problems(anthropic["messages"], pending_at_end=pending) == []
    if not pending:
        calls = {c.id for m in sent for c in m.tool_calls}
        answered = {m.tool_call_id for m in sent if m.role == "tool"}
        assert calls == answered


def test_a_tokenizer_that_counts_requests_its_own_way_is_honoured_under_a_budget():
    tokenizer = RequestTokenizer("request-words")
    repo = Repo(MemoryStore(), tokenizer, CONTENT_TYPES)
    for text in ["one two", "three four five", "six", "seven eight"]:
        repo.append({"content_type": "dialogue", "role": "user", "text": text})
    everything = repo.materialize()
    assert everything.token_count == 9 + (2 + 2) + (2 + 3) + (2 + 1) + (2 + 2)
    # The base rule would count these items as fitting 20 tokens; this tokenizer says otherwise.
    fitted = repo.materialize(budget=20)
    assert fitted.token_count == tokenizer.count_messages(fitted.neutral_messages) <= 20
    assert [m.content for m in fitted.neutral_messages] == ["six", "seven eight"]
    assert {d.reason for d in fitted.dropped} == {"budget"}
