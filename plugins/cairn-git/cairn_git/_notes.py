"""Run-attached chat messages as git notes: ``refs/notes/<ns>-chat``, readable with ``git notes``.

A notes ref is a commit chain whose tree maps the hex id of an annotated
object to a blob (flat, or fanned out as ``ab/cdef...`` by git itself when a
notes tree grows; both are read). Each run's messages are the note on the
run's *anchor object* -- its annotated tag (``refs/<ns>/runs/<id>`` points
at it), not the commit the tag names, which every run at the same HEAD
shares. A note is JSONL, one message per line::

    {"ts":"2026-01-01T00:00:07Z","encrypted":false,"id":"m-1",...}

each line the message's canonical JSON with ``ts`` moved first, so lines
sort by time and git's own ``cat_sort_uniq`` merge strategy keeps every
line once. Blank lines (``git notes append`` inserts them) are skipped.

Notes are never written with ``git notes append``, which has no
compare-and-swap (concurrent appends are lost): the new notes commit is
built in process on the tip that was read and published with an
``update-ref`` transaction naming that tip as the old value, rebuilt and
retried when another writer won.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping

from cairn.model.canonical import canonical_json
from cairn.model.chat import ChatMessage

__all__ = ["NOTES_MESSAGE", "lines_by_run", "message_line", "merge_notes", "note_index", "parse_note", "union_lines"]

NOTES_MESSAGE = "Notes added by cairn"


def message_line(message: ChatMessage) -> bytes:
    """The message's canonical JSON with ``ts`` as its first key, and a newline."""
    record = message.to_record()
    ts = record.pop("ts")
    rest = canonical_json(record, check_keys=False)  # '{...}', never empty: id and text are always there
    head = json.dumps(ts, ensure_ascii=False).encode("utf-8")
    return b'{"ts":' + head + b"," + rest[1:] + b"\n"


def _lines(data: bytes | None) -> Iterable[tuple[str, str, bytes]]:
    """(ts, id, line) of each non-blank line of a note."""
    for line in (data or b"").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
            yield str(record["ts"]), str(record["id"]), line
        except (ValueError, KeyError, TypeError):
            continue  # not one of ours: a note someone wrote by hand is left out of the union


def union_lines(*notes: bytes | None) -> bytes:
    """Every message of the given notes once (by id; the first side's line wins), sorted by ts then id."""
    by_id: dict[str, tuple[str, bytes]] = {}
    for data in notes:
        for ts, message_id, line in _lines(data):
            by_id.setdefault(message_id, (ts, line))
    ordered = sorted(by_id.items(), key=lambda item: (item[1][0], item[0]))
    return b"".join(line + b"\n" for _, (_, line) in ordered)


def lines_by_run(data: bytes) -> list[tuple[str | None, bytes]]:
    """(run id or None, line with its newline) of each message line of a note."""
    out = []
    for _, _, line in _lines(data):
        run_id = json.loads(line).get("run_id")
        out.append((run_id if isinstance(run_id, str) else None, line + b"\n"))
    return out


def parse_note(data: bytes) -> list[ChatMessage]:
    """The messages of one note (lines that are not messages are skipped)."""
    out = []
    for _, _, line in _lines(data):
        try:
            out.append(ChatMessage.from_record(json.loads(line)))
        except (ValueError, TypeError):
            continue
    return out


def note_index(walked: Iterable[tuple[str, str]], hex_size: int) -> dict[str, tuple[str, str]]:
    """annotated object id -> (path in the notes tree, blob id), from a walk of the notes tree."""
    out = {}
    for path, oid in walked:
        name = path.replace("/", "")
        if len(name) == hex_size and all(c in "0123456789abcdef" for c in name):
            out[name] = (path, oid)
    return out


def merge_notes(
    base: Mapping[str, str],
    ours: Mapping[str, str],
    theirs: Mapping[str, str],
    read: Callable[[list[str]], dict[str, bytes]],
) -> dict[str, bytes | str]:
    """Three-way merge of two notes trees (annotated id -> blob id).

    A note one side left as it was takes the other side's version (so a
    note moved away on one side stays moved); a note both sides changed
    becomes the union of their lines. Returns annotated id -> blob id (kept)
    or bytes (new content).
    """
    out: dict[str, bytes | str] = {}
    both: list[tuple[str, str | None, str | None]] = []
    for key in set(ours) | set(theirs):
        b, o, t = base.get(key), ours.get(key), theirs.get(key)
        if o == t or t == b:
            if o is not None:
                out[key] = o
        elif o == b:
            if t is not None:
                out[key] = t
        else:
            both.append((key, o, t))
    if both:
        contents = read([oid for _, o, t in both for oid in (o, t) if oid is not None])
        for key, o, t in both:
            out[key] = union_lines(contents.get(o) if o else None, contents.get(t) if t else None)
    return out
