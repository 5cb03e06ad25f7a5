"""The run ledger over the reference store: ids, record, open/append/close, listing, pruning, hooks."""

from __future__ import annotations

import datetime as dt
import re
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.errors import ConflictError, NotFoundError, ValidationError
from cairn.events import EventBus
from cairn.hookspecs import hookimpl
from cairn.ledger import Ledger, current_code_ref, parse_age, parse_moment
from cairn.model import Run, format_time, new_run_id, parse_time, validate_run_id
from cairn.plugins import load_plugins
from cairn.testing.memory import MemoryStore


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    return Ledger(MemoryStore(), bus=EventBus(), project_dir=tmp_path, user="tester")


def test_new_run_ids_sort_by_time_and_are_unique():
    early = new_run_id("eval", dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    late = new_run_id("eval", dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc))
    assert re.fullmatch(r"20260101T000000\.000000Z_eval_[0-9a-f]{8}", early)
    assert early < late
    assert len({new_run_id("job") for _ in range(200)}) == 200
    assert validate_run_id(early) == early


@pytest.mark.parametrize("bad", ["../etc", "-rf", "a/b", "x..y", "", "x" * 200, "a b", ".hidden", "a.lock", 5])
def test_bad_run_ids_are_refused(bad):
    with pytest.raises(ValidationError, match="not a valid run id"):
        validate_run_id(bad)


@pytest.mark.parametrize("bad", ["Eval", "-x", "a/b", "", "x" * 40])
def test_bad_run_types_are_refused(bad):
    with pytest.raises(ValidationError, match="run type"):
        new_run_id(bad)


def test_record_a_run_with_events(ledger):
    run = ledger.record(
        "job",
        subtype="nightly",
        summary="ok",
        events=[{"type": "start", "n": 1}, {"type": "end", "n": 2, "ts": "2026-01-01T00:00:00Z"}],
        metadata={"k": "v"},
        modules_affected=["kernel"],
    )
    assert run.status == "ok" and run.user == "tester" and run.duration_ms is not None
    assert run.environment["cairn"] and run.environment["python"]
    got = ledger.get(run.run_id)
    assert got == run
    events = ledger.events(run.run_id)
    assert [(e.seq, e.type, e.fields) for e in events] == [(0, "start", {"n": 1}), (1, "end", {"n": 2})]
    assert events[1].ts == "2026-01-01T00:00:00Z"
    with pytest.raises(ValidationError):
        ledger.record("job", status="open")
    with pytest.raises(ValidationError):
        ledger.record("job", events=[{"no_type": 1}])


def test_open_append_close_and_context_manager(ledger):
    with ledger.open("agent", summary="working") as run:
        run.event("tool", name="search")
        run.event("tool", name="read")
        assert ledger.get(run.run_id).status == "open"
    closed = ledger.get(run.run_id)
    assert closed.status == "ok" and closed.ended_at is not None
    assert [e.type for e in ledger.events(run.run_id)] == ["tool", "tool"]
    with pytest.raises(ConflictError):
        run.event("late")  # closed: refused, not lost silently

    with pytest.raises(RuntimeError):
        with ledger.open("agent") as failing:
            failing.event("step")
            raise RuntimeError("boom")
    bad = ledger.get(failing.run_id)
    assert bad.status == "failed" and "RuntimeError: boom" in bad.summary


def test_close_with_last_events_and_partial(ledger):
    run = ledger.open("job")
    run.event("a")
    closed = run.close("partial", summary="half", metadata={"done": 1}, events=[{"type": "b"}])
    assert closed.status == "partial" and closed.metadata == {"done": 1}
    assert [e.seq for e in ledger.events(run.run_id)] == [0, 1]


def test_two_writers_on_one_open_run_lose_nothing(ledger):
    run = ledger.open("job")
    other = type(run)(ledger, run.run)  # a second handle: both think seq 0 is next
    run.event("from-first")
    other.event("from-second")  # conflict on seq 0, re-read, append at 1
    assert [(e.seq, e.type) for e in ledger.events(run.run_id)] == [(0, "from-first"), (1, "from-second")]


def test_list_filters_get_delete(ledger):
    a = ledger.record("eval", started_at="2026-01-01T00:00:00Z")
    b = ledger.record("job", status="failed", started_at="2026-01-02T00:00:00Z")
    c = ledger.record("eval", status="partial", started_at="2026-01-03T00:00:00Z")
    assert [r.run_id for r in ledger.list()] == [c.run_id, b.run_id, a.run_id]
    assert [r.run_id for r in ledger.list(type="eval")] == [c.run_id, a.run_id]
    assert [r.run_id for r in ledger.list(status="failed")] == [b.run_id]
    assert [r.run_id for r in ledger.list(since="2026-01-02")] == [c.run_id, b.run_id]
    assert [r.run_id for r in ledger.list(limit=1)] == [c.run_id]
    ledger.delete(b.run_id)
    with pytest.raises(NotFoundError):
        ledger.get(b.run_id)
    with pytest.raises(NotFoundError, match="no run"):
        ledger.delete(b.run_id)
    with pytest.raises(ValidationError):
        ledger.get("../x")


def test_prune_by_age(ledger):
    old = ledger.record("job", started_at=format_time(dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40)))
    new = ledger.record("job")
    still_open = ledger.open("job", run_id="ancient-but-open")
    assert [r.run_id for r in ledger.prune("30d", dry_run=True)] == [old.run_id]
    assert ledger.get(old.run_id)
    assert [r.run_id for r in ledger.prune("30d")] == [old.run_id]
    assert {r.run_id for r in ledger.list()} == {new.run_id, still_open.run_id}


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("90s", dt.timedelta(seconds=90)),
        ("45m", dt.timedelta(minutes=45)),
        ("12h", dt.timedelta(hours=12)),
        ("30d", dt.timedelta(days=30)),
        ("2w", dt.timedelta(weeks=2)),
    ],
)
def test_parse_age(text, delta):
    assert parse_age(text) == delta


@pytest.mark.parametrize("bad", ["30", "d", "3 days", "-1d", "1y"])
def test_parse_age_refuses(bad):
    with pytest.raises(ValidationError, match="not an age"):
        parse_age(bad)


def test_record_many_is_one_batch(ledger):
    runs = ledger.record_many([{"type": "job", "events": [{"type": "x"}]} for _ in range(20)])
    assert len(ledger.list()) == 20
    assert all(len(ledger.events(r.run_id)) == 1 for r in runs)


def test_event_bus_and_run_recorded_hook(tmp_path):
    bus = EventBus()
    seen = []
    bus.subscribe("ledger:run", seen.append)

    class Recorder:
        runs: list[Run] = []

        @hookimpl
        def cairn_run_recorded(self, run):
            self.runs.append(run)

    plugins = load_plugins(entry_points=False)
    recorder = Recorder()
    plugins.register(recorder, "recorder")
    ledger = Ledger(MemoryStore(), bus=bus, hooks=plugins.pm.hook, project_dir=tmp_path)
    run = ledger.record("job")
    opened = ledger.open("job")
    closed = opened.close("failed")
    assert [r.run_id for r in recorder.runs] == [run.run_id, closed.run_id]
    assert [e.payload["status"] for e in seen] == ["ok", "failed"]


def test_code_ref_is_the_git_head(tmp_path):
    assert current_code_ref(tmp_path) is None  # not a repository
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}

    def run(*a):
        return subprocess.run(
            ["git", *a], cwd=tmp_path, check=True, capture_output=True, env={**env, "PATH": "/usr/bin:/bin"}
        )

    run("init", "-q")
    assert current_code_ref(tmp_path) is None  # no commits yet
    run("commit", "-q", "--allow-empty", "--no-verify", "-m", "first")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert current_code_ref(tmp_path) == head
    ledger = Ledger(MemoryStore(), bus=EventBus(), project_dir=tmp_path)
    assert ledger.record("job").code_ref == head


@given(number=st.integers(min_value=0, max_value=10**30 - 1), unit=st.sampled_from("smhdw"))
def test_every_age_becomes_a_time_that_reads_back(number: int, unit: str) -> None:
    stamp = parse_moment(f"{number}{unit}")
    assert parse_time(stamp) <= dt.datetime.now(dt.timezone.utc)
    assert format_time(parse_time(stamp)).endswith(stamp[4:])  # the same time, whatever the year's width


def test_parse_moment_takes_words_dates_and_times_and_names_every_form_when_wrong() -> None:
    today = dt.datetime.now(dt.timezone.utc).date()
    assert parse_moment("today") == f"{today.isoformat()}T00:00:00.000000Z"
    yesterday = today - dt.timedelta(days=1)
    assert parse_moment(" Yesterday ") == f"{yesterday.isoformat()}T00:00:00.000000Z"
    assert parse_moment("2026-11-01") == "2026-11-01T00:00:00.000000Z"
    assert parse_moment("2026-11-01T09:00:00+02:00") == "2026-11-01T07:00:00.000000Z"
    with pytest.raises(ValidationError) as caught:
        parse_moment("last tuesday", "--since")
    assert caught.value.message == "--since 'last tuesday' is not a time"
    assert all(form in (caught.value.hint or "") for form in ("7d", "12h", "today", "yesterday", "2026-11-01"))


def test_one_run_resolver_for_every_command(tmp_path) -> None:
    ledger = Ledger(MemoryStore(), bus=EventBus(), project_dir=tmp_path)
    first = ledger.record("job", started_at="2026-01-01T00:00:01Z")
    trace = ledger.record("trace", started_at="2026-01-01T00:00:02Z")
    last = ledger.record("job", started_at="2026-01-01T00:00:03Z")
    assert ledger.resolve("@last") == last.run_id and ledger.resolve("@prev") == trace.run_id
    assert ledger.resolve("@last~2") == first.run_id
    assert ledger.resolve("@last", type="trace") == trace.run_id  # the newest of that type
    assert ledger.resolve("@prev", type="job") == first.run_id
    assert ledger.get("@last", type="trace").run_id == trace.run_id
    with pytest.raises(NotFoundError) as caught:
        ledger.resolve("@prev", type="trace")
    assert "1 trace run recorded" in (caught.value.hint or "")
    with pytest.raises(NotFoundError, match="trace run"):
        ledger.get(last.run_id, type="trace")  # an id of another type is not a trace
    with pytest.raises(ValidationError, match="not a run reference"):
        ledger.resolve("@first")
