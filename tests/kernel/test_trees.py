"""Trees: canonical encoding and hashing, the path rules, and diffs."""

from __future__ import annotations

import hashlib
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.errors import IntegrityError, ValidationError
from cairn.model import canonical_json
from cairn.trees import EXECUTABLE, FILE, SYMLINK, Tree, TreeEntry, check_tree_path, diff_trees


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file(path: str, content: bytes = b"x", mode: str = FILE) -> TreeEntry:
    return TreeEntry(path, mode, sha(content), len(content))


# Names of one path part: any text but '/', NUL and lone surrogates, and never '.' or '..'.
part = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="/\0"), min_size=1, max_size=8
).filter(lambda s: s not in (".", ".."))
paths = st.lists(part, min_size=1, max_size=4).map("/".join)


@st.composite
def trees(draw: st.DrawFn) -> list[TreeEntry]:
    """Entries whose paths never nest inside one another (a file is never also a directory)."""
    chosen: list[str] = []
    for path in draw(st.lists(paths, max_size=12, unique=True)):
        parts = path.split("/")
        prefixes = {"/".join(parts[:i]) for i in range(1, len(parts))}
        if prefixes & set(chosen) or any(p.startswith(path + "/") for p in chosen):
            continue  # it would sit inside a chosen entry, or a chosen entry inside it
        chosen.append(path)
    entries = []
    for path in chosen:
        kind = draw(st.sampled_from([FILE, EXECUTABLE, SYMLINK]))
        if kind == SYMLINK:
            entries.append(TreeEntry.link(path, draw(part)))
        else:
            entries.append(file(path, draw(st.binary(max_size=16)), kind))
    return entries


@settings(max_examples=200, deadline=None)
@given(trees(), st.randoms(use_true_random=False))
def test_the_hash_depends_on_the_entries_not_their_order(entries: list[TreeEntry], rnd: random.Random) -> None:
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    assert Tree.build(entries).hash == Tree.build(shuffled).hash


@settings(max_examples=200, deadline=None)
@given(trees())
def test_a_tree_round_trips_through_its_canonical_bytes(entries: list[TreeEntry]) -> None:
    tree = Tree.build(entries)
    assert tree.hash == sha(tree.encoded)
    again = Tree.decode(tree.encoded, tree.hash)
    assert again == tree
    assert [e.path for e in tree] == sorted(e.path for e in entries)
    value = json.loads(tree.encoded)
    assert canonical_json(value) == tree.encoded
    assert value["type"] == "cairn.tree" and value["version"] == 1


@settings(max_examples=200, deadline=None)
@given(trees(), trees())
def test_a_diff_accounts_for_every_difference(a_entries: list[TreeEntry], b_entries: list[TreeEntry]) -> None:
    a, b = Tree.build(a_entries), Tree.build(b_entries)
    diff = diff_trees(a, b)
    old, new = a.by_path(), b.by_path()
    assert {c.path for c in diff.added} == new.keys() - old.keys()
    assert {c.path for c in diff.removed} == old.keys() - new.keys()
    differing = {p for p in old.keys() & new.keys() if old[p] != new[p]}
    assert {c.path for c in diff.changed} | {c.path for c in diff.mode_changed} == differing
    assert not {c.path for c in diff.changed} & {c.path for c in diff.mode_changed}
    assert diff_trees(a, a).empty


def test_a_known_tree_has_a_known_hash() -> None:
    # Pinned: the same directory gives this hash on every backend, filesystem and version of cairn.
    tree = Tree.build([file("b.txt", b"world\n"), file("a.txt", b"hello\n"), TreeEntry.link("l", "a.txt")])
    assert tree.encoded == (
        b'{"entries":[{"hash":"5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03","mode":"100644",'
        b'"path":"a.txt","size":6},{"hash":"e258d248fda94c63753607f7c4494ee0fcbe92f1a76bfdac795c9d84101eb317",'
        b'"mode":"100644","path":"b.txt","size":6},{"hash":"18b7cb099a9ea3f50ba899b5ba81e0d377a5f3b16f8f6eeb8b3e58cd4692b993",'
        b'"mode":"120000","path":"l","size":5,"target":"a.txt"}],"type":"cairn.tree","version":1}'
    )
    assert tree.hash == "9371ed5f06b685e3a678640371e29166c3ea7d1e84ddc64e0c1cd903a2bd8ea2"


def test_mode_only_changes_are_told_apart_from_content_changes() -> None:
    a = Tree.build([file("run.sh", b"echo"), file("data", b"1"), TreeEntry.link("l", "x")])
    b = Tree.build([file("run.sh", b"echo", EXECUTABLE), file("data", b"2"), file("l", b"x")])
    diff = diff_trees(a, b)
    assert [c.path for c in diff.mode_changed] == ["run.sh"]
    assert [c.path for c in diff.changed] == ["data", "l"]  # a link that became a file is a change


@pytest.mark.parametrize(
    "path",
    ["", "/etc/passwd", "../up", "a/../../up", "a//b", "./a", "a/.", "a/", "nul\0byte", "x" * 5000],
)
def test_unsafe_paths_are_refused(path: str) -> None:
    with pytest.raises(ValidationError):
        check_tree_path(path)
    with pytest.raises(ValidationError):
        Tree.build([file(path)])


def test_an_entry_inside_another_entry_is_refused() -> None:
    with pytest.raises(ValidationError, match="inside 'link'"):
        Tree.build([TreeEntry.link("link", "/etc"), file("link/passwd")])
    with pytest.raises(ValidationError, match="twice"):
        Tree.build([file("a"), file("a", b"y")])


def test_malformed_entries_are_refused() -> None:
    with pytest.raises(ValidationError, match="mode"):
        Tree.build([TreeEntry("a", "100600", sha(b"x"), 1)])
    with pytest.raises(ValidationError, match="SHA-256"):
        Tree.build([TreeEntry("a", FILE, "abc", 1)])
    with pytest.raises(ValidationError, match="byte count"):
        Tree.build([TreeEntry("a", FILE, sha(b"x"), -1)])
    with pytest.raises(ValidationError, match="link target"):
        Tree.build([TreeEntry("a", SYMLINK, sha(b"x"), 1, "y")])
    with pytest.raises(ValidationError, match="target belongs"):
        Tree.build([TreeEntry("a", FILE, sha(b"x"), 1, "x")])


def test_decoding_refuses_what_is_not_exactly_a_tree() -> None:
    tree = Tree.build([file("a.txt")])
    with pytest.raises(IntegrityError):
        Tree.decode(tree.encoded, sha(b"something else"))
    with pytest.raises(ValidationError, match="not a tree"):
        Tree.decode(b"just a file")
    with pytest.raises(ValidationError, match="not a tree"):
        Tree.decode(b'{"type":"something"}')
    with pytest.raises(ValidationError, match="version"):
        Tree.decode(b'{"entries":[],"type":"cairn.tree","version":2}')
    pretty = json.dumps(json.loads(tree.encoded), indent=1).encode()
    with pytest.raises(ValidationError, match="canonical"):
        Tree.decode(pretty)
    escaping = canonical_json(
        {"type": "cairn.tree", "version": 1, "entries": [{"path": "../x", "mode": FILE, "hash": sha(b"x"), "size": 1}]}
    )
    with pytest.raises(ValidationError, match=r"'\.\.' part"):
        Tree.decode(escaping)
    unsorted = canonical_json(
        {
            "type": "cairn.tree",
            "version": 1,
            "entries": [file("b").to_record(), file("a").to_record()],
        }
    )
    with pytest.raises(ValidationError, match="canonical"):
        Tree.decode(unsorted)
