"""Export and import (``cairn.transfer``): every record checked, derived fields recomputed, nothing stored on error."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.errors import CairnError, IntegrityError, ValidationError
from cairn.model import Commit, canonical_json, sha256_hex
from cairn.repo import Repo
from cairn.testing.fakes import WordTokenizer
from cairn.testing.memory import MemoryStore

HEADER = '{"commits":0,"format":"cairn-export/1","type":"header"}'


def say(text: str, role: str = "user") -> dict:
    return {"content_type": "dialogue", "role": role, "text": text}


@pytest.fixture
def source(content_types, clock) -> Repo:
    """A small history: two branches, an edit, a delete, a pin."""
    repo = Repo(MemoryStore(), WordTokenizer(), content_types)
    first = repo.append({"content_type": "instruction", "text": "be brief"})
    second = repo.append(say("hello there"))
    repo.switch("side", create=True)
    repo.edit(second.hash, say("hello again, friend"))
    repo.append(say("and more"), metadata={"n": 1})
    repo.switch("main")
    third = repo.append(say("to go", "assistant"))
    repo.delete(third.hash)
    repo.pin(first.hash, "rules")
    return repo


def dump(repo: Repo, **options) -> list[str]:
    out = io.StringIO()
    repo.export(out, **options)
    return out.getvalue().splitlines()


def fresh(content_types) -> Repo:
    return Repo(MemoryStore(), WordTokenizer(), content_types)


def nothing_stored(repo: Repo) -> bool:
    stats = repo.store.stats()
    return stats.commits == 0 and stats.blobs == 0 and stats.annotations == 0 and repo.store.list_refs() == {}


def edit_records(lines: list[str], kind: str, change) -> list[str]:
    """``lines`` with ``change(record)`` applied to every record of ``kind`` (records stay canonical JSON)."""
    out = []
    for line in lines:
        record = json.loads(line)
        if record["type"] == kind:
            change(record)
        out.append(json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    return out


def test_round_trip_is_hash_for_hash(source, content_types):
    lines = dump(source)
    target = fresh(content_types)
    report = target.import_(lines)
    assert (report.commits, report.present, report.annotations) == (6, 0, 1)
    assert target.store.check() == []
    assert target.store.list_refs() == source.store.list_refs()
    hashes = [json.loads(line)["hash"] for line in lines if '"type":"commit"' in line]
    assert target.store.get_commits(hashes) == source.store.get_commits(hashes)  # derived fields too
    assert dump(target) == lines


def test_importing_twice_reports_what_was_already_there(source, content_types):
    lines = dump(source)
    target = fresh(content_types)
    target.import_(lines)
    again = target.import_(lines)
    assert (again.commits, again.present, again.refs, again.annotations) == (0, 6, 0, 0)


def test_bytes_lines_and_crlf_are_read(source, content_types):
    lines = [(line + "\r\n").encode() for line in dump(source)]
    target = fresh(content_types)
    assert target.import_(lines).commits == 6


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], "no export header"),
        (["", "   "], "no export header"),
        (['{"type":"blob"}'], "missing export header"),
        ([HEADER.replace("cairn-export/1", "cairn-export/9")], "unsupported export format"),
        ([HEADER, "[1,2]"], ":2: expected a JSON object, got an array"),
        ([HEADER, "7"], ":2: expected a JSON object, got a number"),
        ([HEADER, "{nope"], ":2: not JSON"),
        ([HEADER, '{"type":"blob","hash":"x","data":NaN}'], ":2: not JSON: NaN"),
        ([HEADER, '{"type":"blob"}'], ":2: blob: missing 'data', 'hash'"),
        ([HEADER, '{"type":"ref","value":"' + "a" * 64 + '"}'], ":2: ref: missing 'name'"),
        ([HEADER, '{"type":"wat"}'], ":2: unknown record type 'wat'"),
        ([HEADER, HEADER], ":2: a second header"),
        (
            [
                HEADER,
                '{"type":"annotation","target":"' + "a" * 64 + '","priority":"pinned","reason":"",'
                '"created_at":"2026-01-01T00:00:00.000000Z","bogus":1}',
            ],
            ":2: annotation: unknown key 'bogus'",
        ),
        (
            [
                HEADER,
                '{"type":"annotation","target":"' + "a" * 64 + '","priority":"ultra","reason":"",'
                '"created_at":"2026-01-01T00:00:00.000000Z"}',
            ],
            ":2: annotation: priority 'ultra'",
        ),
        ([HEADER, b'{"type":"blob","x":"\xff\xfe"}'], ":2: not valid UTF-8"),
        ([HEADER, "[" * 200_000 + "]" * 200_000], ":2: nested too deeply"),
        ([HEADER, '{"type":"blob","hash":"' + "a" * 64 + '","data":"\\ud800"}'], ":2: text holds a character"),
        ([HEADER.replace('"commits":0', '"commits":3')], ":1: the header announces 3 commits"),
    ],
)
def test_malformed_files_say_where_and_store_nothing(content_types, lines, message):
    target = fresh(content_types)
    with pytest.raises(ValidationError) as info:
        target.import_(lines, source="dump.jsonl")
    assert info.value.message.startswith("dump.jsonl")
    assert message in info.value.message
    assert info.value.hint
    assert nothing_stored(target)


def test_a_token_count_beyond_64_bits_is_refused(source, content_types):
    lines = edit_records(dump(source), "commit", lambda r: r["derived"].update(token_count=10**30))
    target = fresh(content_types)
    with pytest.raises(ValidationError, match=r"<import>:\d+: commit \w+: token_count must be an integer"):
        target.import_(lines)
    assert nothing_stored(target)


def test_tampered_content_or_fields_break_the_hash(source, content_types):
    lines = dump(source)
    forged = [line.replace("be brief", "be verbose") for line in lines]
    with pytest.raises(IntegrityError, match="does not match its hash"):
        fresh(content_types).import_(forged)
    forged = edit_records(lines, "commit", lambda r: r["fields"].update(message="forged"))
    target = fresh(content_types)
    with pytest.raises(IntegrityError, match=r"<import>:\d+: commit \w+ does not match its hash"):
        target.import_(forged)
    assert nothing_stored(target)


@pytest.mark.parametrize(
    "change",
    [
        {"depth": 99},
        {"skip": "b" * 64},
        {"skip": None},
        {"content_type": "artifact"},
        {"token_count": 0},
        {"cumulative_tokens": 123456},
        {"tokenizer": "someone-else"},
    ],
)
def test_edited_derived_fields_are_recomputed_not_trusted(source, content_types, change):
    lines = dump(source)
    edited = edit_records(lines, "commit", lambda r: r["derived"].update(change))
    target = fresh(content_types)
    target.import_(edited)
    assert target.store.check() == []
    hashes = [json.loads(line)["hash"] for line in lines if '"type":"commit"' in line]
    assert target.store.get_commits(hashes) == source.store.get_commits(hashes)


def test_derived_fields_are_counted_by_the_importing_tokenizer(source, content_types):
    target = Repo(MemoryStore(), WordTokenizer("other-words"), content_types)
    target.import_(dump(source))
    assert target.store.check() == []
    for commit in target.store.commits_by_time():
        assert commit.tokenizer == "other-words"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("refs/heads/../../etc/passwd", None),
        ("refs/heads/-x", None),
        ("refs/heads/🪨", None),
        ("refs/heads/ffff", None),
        ("refs/heads/" + "c" * 64, None),
        ("refs/tags/v1", None),
        ("../../etc/passwd", None),
        ("refs/heads/main", "zzz"),
        ("HEAD", "ref: ../../etc"),
        ("HEAD", "ref: refs/heads/a..b"),
        ("refs/heads/\udcff", None),
    ],
)
def test_refs_follow_the_cli_name_rules(source, content_types, name, value):
    lines = dump(source, branch="main")

    def rename(record):
        record["name"] = name
        if value is not None:
            record["value"] = value

    target = fresh(content_types)
    with pytest.raises(ValidationError, match=r"<import>:\d+: ref"):
        target.import_(edit_records(lines, "ref", rename))
    assert nothing_stored(target)


def test_a_ref_to_a_commit_in_neither_the_file_nor_the_store_is_refused(source, content_types):
    lines = edit_records(dump(source), "ref", lambda r: r.update(value="d" * 64) if r["name"] != "HEAD" else None)
    target = fresh(content_types)
    with pytest.raises(ValidationError, match="neither in the file nor stored here"):
        target.import_(lines)
    assert nothing_stored(target)


def test_a_missing_parent_is_refused_before_anything_is_written(source, content_types):
    lines = [line for line in dump(source) if not ('"type":"commit"' in line and '"parent":null' in line)]
    lines[0] = lines[0].replace('"commits":6', '"commits":5')
    target = fresh(content_types)
    with pytest.raises(ValidationError, match="its parent .* is neither in the file nor stored here"):
        target.import_(lines, batch_size=1)
    assert nothing_stored(target)


def test_an_existing_branch_elsewhere_is_refused_first(source, content_types):
    target = fresh(content_types)
    target.append(say("mine"))
    before = target.store.stats()
    with pytest.raises(ValidationError, match="refs/heads/main exists here"):
        target.import_(dump(source), batch_size=1)
    assert target.store.stats() == before


def test_a_bad_record_at_the_end_stores_nothing_and_acknowledges_nothing(source, content_types):
    lines = [*dump(source), '{"type":"annotation"}']
    acknowledged: list[int] = []
    target = fresh(content_types)
    with pytest.raises(ValidationError, match=r":\d+: annotation: missing"):
        target.import_(lines, batch_size=1, progress=acknowledged.append)
    assert acknowledged == [] and nothing_stored(target)


def test_batches_are_acknowledged_in_order(source, content_types):
    acknowledged: list[int] = []
    fresh(content_types).import_(dump(source), batch_size=4, progress=acknowledged.append)
    assert acknowledged == [4, 6]


def _forge(parent: Commit | None, operation: str, target: Commit | None, content: bytes | None, at: str) -> Commit:
    return Commit.new(
        parent=parent.hash if parent else None,
        operation=operation,
        content_hash=sha256_hex(content) if content is not None else None,
        target=target.hash if target else None,
        created_at=at,
    )


def _file(commits: list[Commit], blobs: list[bytes], refs: dict[str, str]) -> list[str]:
    lines = [json.dumps({"type": "header", "format": "cairn-export/1", "commits": len(commits)})]
    lines += [json.dumps({"type": "blob", "hash": sha256_hex(b), "data": json.loads(b)}) for b in blobs]
    lines += [json.dumps({"type": "commit", "hash": c.hash, "fields": c.hashed_fields()}) for c in commits]
    lines += [json.dumps({"type": "ref", "name": n, "value": v}) for n, v in refs.items()]
    return lines


@pytest.mark.parametrize("case", ["off_lineage", "edit_of_edit", "deleted_twice", "time_backwards", "not_content"])
def test_histories_the_engine_never_writes_are_refused(content_types, case):
    one, two = canonical_json(say("one")), canonical_json(say("two"))
    t = "2026-01-01T00:00:0{}.000000Z".format
    root = _forge(None, "append", None, one, t(1))
    side = _forge(root, "append", None, two, t(2))
    main = _forge(root, "append", None, two, t(3))
    commits, blobs = [root, side, main], [one, two]
    if case == "off_lineage":
        commits.append(_forge(main, "edit", side, one, t(4)))  # side is on another branch
    elif case == "edit_of_edit":
        edit = _forge(main, "edit", main, one, t(4))
        commits += [edit, _forge(edit, "edit", edit, two, t(5))]
    elif case == "deleted_twice":
        gone = _forge(main, "delete", root, None, t(4))
        commits += [gone, _forge(gone, "delete", root, None, t(5))]
    elif case == "time_backwards":
        commits.append(_forge(main, "append", None, one, t(0)))
    else:
        blobs.append(canonical_json(["not", "content"]))
        commits.append(_forge(main, "append", None, canonical_json(["not", "content"]), t(4)))
    target = fresh(content_types)
    with pytest.raises(ValidationError, match=r"<import>:\d+: commit \w+: "):
        target.import_(_file(commits, blobs, {"refs/heads/main": commits[-1].hash}))
    assert nothing_stored(target)


def test_a_history_may_continue_one_already_stored(source, content_types):
    lines = dump(source, branch="main")
    target = fresh(content_types)
    target.import_(lines[:1] + [line for line in lines[1:] if '"type":"ref"' not in line])
    later = Repo(source.store, WordTokenizer(), content_types)
    later.switch("main")
    later.append(say("one more"))
    assert target.import_(dump(later, branch="main")).commits == 1
    assert target.store.check() == []


# -- robustness: whatever a line holds, a clear error or a clean import -------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)
_record_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["blob", "commit", "ref", "annotation", "header", "x"])},
    optional={
        "hash": st.text(alphabet="0123456789abcdef", min_size=64, max_size=64) | _json_values,
        "data": _json_values,
        "fields": _json_values,
        "name": st.sampled_from(["HEAD", "refs/heads/main", "refs/heads/ffff"]) | st.text(max_size=20),
        "value": st.text(max_size=70) | _json_values,
        "target": _json_values,
        "priority": st.sampled_from(["pinned", "skip", "ultra"]) | _json_values,
        "reason": _json_values,
        "created_at": _json_values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(_json_values | _record_like, min_size=1, max_size=4))
def test_any_json_records_give_a_clear_error_or_a_clean_store(source, content_types, records):
    lines = [*dump(source, branch="main"), *(json.dumps(r) for r in records)]
    lines[0] = json.dumps({"type": "header", "format": "cairn-export/1"})
    target = fresh(content_types)
    try:
        target.import_(lines)
    except CairnError as exc:
        assert exc.message.startswith("<import>")
        assert nothing_stored(target)
    assert target.store.check() == []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.lists(st.binary(max_size=60), min_size=1, max_size=4))
def test_any_bytes_give_a_clear_error_or_a_clean_store(content_types, raw):
    target = fresh(content_types)
    try:
        target.import_([HEADER.replace('"commits":0,', "").encode(), *raw])
    except CairnError as exc:
        assert exc.message.startswith("<import>")
        assert nothing_stored(target)
    assert target.store.check() == []


def test_an_edit_of_an_item_counted_by_another_tokenizer_counts_it_again(content_types, clock):
    store = MemoryStore()
    item = Repo(store, WordTokenizer("old-words"), content_types).append(say("one two three"))
    elsewhere = Repo(MemoryStore(), WordTokenizer("old-words"), content_types)
    elsewhere.import_(dump(Repo(store, WordTokenizer("old-words"), content_types)))
    edit = elsewhere.edit(item.hash, say("four five"))
    store.delete_ref("refs/heads/main", expected=item.hash)  # import never moves a branch
    Repo(store, WordTokenizer("new-words"), content_types).import_(dump(elsewhere))
    stored = store.get_commits([edit.hash])[edit.hash]
    # As the engine counts: the item's stored total, plus the edit (3 + 1 + 2), minus the item by new-words (7).
    assert (stored.tokenizer, stored.token_count, stored.cumulative_tokens) == ("new-words", 6, 7 + 6 - 7)
    assert store.check() == []
    assert store.token_cache == {}  # checking the file wrote nothing, not even to the cache
