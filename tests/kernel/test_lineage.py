"""``cairn.model.lineage`` works out derived fields exactly as the context engine writes them."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.errors import CairnError
from cairn.model import Operation
from cairn.model.lineage import Lineage
from cairn.repo import Repo
from cairn.testing.fakes import WordTokenizer
from cairn.testing.memory import MemoryStore

_steps = st.lists(
    st.tuples(
        st.sampled_from(["append", "append", "edit", "delete", "branch", "switch", "tokenizer"]),
        st.integers(min_value=0, max_value=50),
        st.text(alphabet="ab ", max_size=12),
    ),
    max_size=40,
)


def _play(content_types, steps) -> tuple[MemoryStore, dict[str, WordTokenizer]]:
    """Run random engine operations (two tokenizers, several branches) on one store."""
    store = MemoryStore()
    tokenizers = {name: WordTokenizer(name) for name in ("words-a", "words-b")}
    repo = Repo(store, tokenizers["words-a"], content_types)
    for action, pick, text in steps:
        items = [c for c in store.commits.values() if c.operation is Operation.APPEND]
        try:
            if action == "append" or not items:
                repo.append({"content_type": "dialogue", "role": "user", "text": text if text.strip() else "x"})
            elif action == "edit":
                repo.edit(
                    items[pick % len(items)].hash, {"content_type": "reasoning", "text": text if text.strip() else "y"}
                )
            elif action == "delete":
                repo.delete(items[pick % len(items)].hash)
            elif action == "branch":
                repo.switch(f"b{pick % 4}", create=f"refs/heads/b{pick % 4}" not in store.refs)
            elif action == "switch":
                repo.switch("main") if "refs/heads/main" in store.refs else None
            else:
                name = "words-b" if repo.tokenizer.name == "words-a" else "words-a"
                repo = Repo(store, tokenizers[name], content_types)
        except CairnError:
            pass  # the engine refused (off the branch, already deleted): nothing written
    return store, tokenizers


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_steps)
def test_derive_reproduces_every_commit_the_engine_wrote(content_types, steps):
    store, tokenizers = _play(content_types, steps)
    lineage = Lineage(store.commits.get, lambda t: [c for c in store.commits.values() if c.target == t])

    for commit in store.commits.values():
        content_type = None
        if commit.content_hash is not None:
            content_type = json.loads(store.blobs[commit.content_hash])["content_type"]
        tokenizer = tokenizers[commit.tokenizer]  # type: ignore[index]
        own = (
            sum(
                tokenizer.count_message(m)
                for m in content_types.decode_bytes(store.blobs[commit.content_hash]).render()
            )
            if commit.content_hash
            else 0
        )

        def count_by(source, name=commit.tokenizer):
            content = content_types.decode_bytes(store.blobs[source.content_hash])
            return sum(tokenizers[name].count_message(m) for m in content.render())

        derived = lineage.derive(
            commit, content_type=content_type, token_count=own, tokenizer=commit.tokenizer, count=count_by
        )
        assert derived.problems == ()
        assert derived.fields() == commit.derived_fields(), commit
    assert store.check() == []
