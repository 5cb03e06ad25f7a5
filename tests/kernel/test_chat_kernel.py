"""Chat: routing, threads, encryption that never leaks, and traces."""

from __future__ import annotations

import base64
import json
import logging
import secrets

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.chat import Chat, ChatCipher, UndecryptableError, check_key_material, generate_key
from cairn.errors import ConfigError, NotFoundError, ValidationError
from cairn.events import EventBus
from cairn.ledger import Ledger
from cairn.testing.memory import MemoryStore
from cairn.tracing import ActiveRecordings, Recording, save_trace, summarize

KEY = generate_key()
CANARY = "canary-7f3a-do-not-leak"


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def chat(store, bus) -> Chat:
    return Chat(store, user="ann", bus=bus, environ={"CAIRN_CHAT_KEY": KEY})


@pytest.fixture
def ledger(store, bus, tmp_path) -> Ledger:
    return Ledger(store, bus=bus, project_dir=tmp_path, user="ann")


def test_routing(chat, ledger):
    run = ledger.record("job")
    thread = chat.new_thread("Design", tags=["arch"])
    general = chat.send("no target")
    on_run = chat.send("on the run", run_id=run.run_id)
    on_thread = chat.send("in the thread", thread_id=thread.thread_id)
    both = chat.send("both", run_id=run.run_id, thread_id=thread.thread_id)
    assert (both.run_id, both.thread_id) == (run.run_id, thread.thread_id)
    assert general.thread_id == "general" and general.run_id is None
    assert (on_run.run_id, on_run.thread_id) == (run.run_id, None)
    texts = lambda **kw: [m.text for m in chat.list(**kw)]  # noqa: E731
    assert texts(run_id=run.run_id) == ["both", "on the run"]
    assert texts(thread_id=thread.thread_id) == ["both", "in the thread"]
    assert texts(thread_id="general") == ["no target"]
    assert texts(limit=2) == ["both", "in the thread"]
    assert {t.thread_id for t in chat.threads()} == {"general", thread.thread_id}
    assert on_thread.user == "ann"


def test_unknown_targets_and_bad_ids_are_refused(chat):
    with pytest.raises(NotFoundError, match="no run"):
        chat.send("x", run_id="20260101T000000.000000Z_job_00000000")
    with pytest.raises(NotFoundError, match="no thread"):
        chat.send("x", thread_id="nope")
    with pytest.raises(ValidationError):
        chat.send("x", thread_id="../etc")
    with pytest.raises(ValidationError):
        chat.send("")
    with pytest.raises(ValidationError, match="already exists"):
        chat.new_thread("A", thread_id="same")
        chat.new_thread("B", thread_id="same")


def test_publish_flag(chat):
    chat.send("draft")
    chat.send("announce", publish=True)
    assert [m.text for m in chat.list(published=True)] == ["announce"]


def test_encrypted_text_never_reaches_the_store_events_or_logs(store, bus, chat, caplog):
    seen = []
    bus.subscribe("*", seen.append)
    with caplog.at_level(logging.DEBUG):
        message = chat.send(f"the secret is {CANARY}", encrypt=True)
    assert message.encrypted and message.text.startswith("ENC:v1:")
    assert CANARY not in json.dumps([m.to_record() for m in store.messages.values()])
    assert CANARY not in json.dumps([e.payload for e in seen], default=str)
    assert CANARY not in caplog.text
    (shown,) = chat.list()
    assert shown.text == f"the secret is {CANARY}" and shown.state == "decrypted"


def test_reading_without_the_key_with_a_wrong_key_and_tampered(store, chat):
    sealed = chat.send("sealed", encrypt=True)
    chat.send("plain text")
    no_key = Chat(store, environ={})
    assert [(m.text, m.state) for m in no_key.list()] == [
        ("plain text", "plain"),
        ("[encrypted: no key, set CAIRN_CHAT_KEY]", "locked"),
    ]
    assert Chat(store, key_env="TEAM_KEY", environ={}).list()[1].text == "[encrypted: no key, set TEAM_KEY]"
    wrong = Chat(store, environ={"CAIRN_CHAT_KEY": generate_key()})
    assert wrong.list()[1].text == "[undecryptable: wrong key or tampered]"
    bad = Chat(store, environ={"CAIRN_CHAT_KEY": " " * 40})
    assert bad.list()[1].text == "[encrypted: CAIRN_CHAT_KEY is not a valid key, run cairn chat keygen]"
    # Tamper with the stored envelope: that message alone is reported, the listing goes on.
    envelope = sealed.text
    flipped = envelope[:-2] + ("A" if envelope[-2] != "A" else "B") + envelope[-1]
    store.messages[sealed.id] = type(sealed)(**{**sealed.to_record(), "text": flipped})
    shown = chat.list()
    assert [m.state for m in shown] == ["plain", "undecryptable"]


def test_a_sealed_text_moved_to_another_message_does_not_open(store, chat):
    first = chat.send("first", encrypt=True)
    second = chat.send("second", encrypt=True)
    store.messages[second.id] = type(second)(**{**second.to_record(), "text": first.text})
    assert {m.message.id: m.state for m in chat.list()}[second.id] == "undecryptable"


def test_encrypting_without_a_key_names_the_variable(store):
    with pytest.raises(ConfigError, match=r"\$CAIRN_CHAT_KEY"):
        Chat(store, environ={}).send("x", encrypt=True)
    with pytest.raises(ConfigError, match="at least 32"):
        Chat(store, environ={"CAIRN_CHAT_KEY": "short"}).send("x", encrypt=True)
    with pytest.raises(ConfigError, match="not base64"):
        Chat(store, environ={"CAIRN_CHAT_KEY": "base64:!!!"}).send("x", encrypt=True)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (" " * 40, "whitespace"),  # accepted before: 40 bytes, so long enough
        ("correct horse battery staple and more words", "whitespace"),
        ("a" * 64, "varies too little"),
        ("ab" * 32, "varies too little"),
        ("abcd" * 8, "varies too little"),
        ("base64:" + base64.b64encode(bytes(32)).decode(), "varies too little"),
        ("base64:" + base64.b64encode(b"x" * 16).decode(), "at least 32"),
    ],
)
def test_key_material_must_look_like_a_key(store, value, problem):
    with pytest.raises(ConfigError, match=problem) as info:
        Chat(store, environ={"CAIRN_CHAT_KEY": value}).send("x", encrypt=True)
    assert "cairn chat keygen" in (info.value.hint or "")
    assert value.strip() == "" or value not in str(info.value)  # the error never quotes the key


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_keys_from_keygen_and_random_raw_keys_are_accepted(data):
    assert check_key_material(base64.b64decode(generate_key()[len("base64:") :]), text=False) is None
    raw = data.draw(st.sampled_from([secrets.token_urlsafe(32), secrets.token_hex(32), secrets.token_urlsafe(48)]))
    Chat(MemoryStore(), environ={"CAIRN_CHAT_KEY": raw}).send("x", encrypt=True)


def test_an_envelope_of_another_version_is_refused_by_name(store, chat):
    sealed = chat.send("sealed", encrypt=True)
    as_v2 = "ENC:v2:" + sealed.text[len("ENC:v1:") :]  # the same bytes: before, v2 opened as v1
    store.messages[sealed.id] = type(sealed)(**{**sealed.to_record(), "text": as_v2})
    (shown,) = chat.list()
    assert (shown.text, shown.state) == ("[undecryptable: unknown envelope version v2]", "undecryptable")
    cipher = ChatCipher.from_env("CAIRN_CHAT_KEY", {"CAIRN_CHAT_KEY": KEY})
    assert cipher is not None
    with pytest.raises(UndecryptableError, match="version v2"):
        cipher.open(as_v2, sealed.id)
    for garbage in ("ENC:", "ENC:../../x:a:b:c", "plain text", ""):
        with pytest.raises(UndecryptableError, match="not a cairn envelope"):
            cipher.open(garbage, sealed.id)
    assert cipher.open(sealed.text, sealed.id) == "sealed"


def test_plain_texts_and_titles_are_redacted_sealed_ones_are_not(store):
    secret = "sk-proj-Zq1Wd9Rk2Xv7Lm3Zp5Tn8Bc4"
    chat = Chat(store, environ={"CAIRN_CHAT_KEY": KEY, "OPENAI_API_KEY": secret})
    thread = chat.new_thread(f"rotate {secret}")
    assert secret not in thread.title
    plain = chat.send(f"the key is {secret}", thread_id=thread.thread_id)
    assert plain.text == "the key is ***"
    sealed = chat.send(f"the key is {secret}", encrypt=True)
    assert {m.message.id: m.text for m in chat.list()}[sealed.id] == f"the key is {secret}"


def test_listing_a_thousand_encrypted_messages_is_fast(store, chat):
    import time

    for i in range(1000):
        chat.send(f"message {i}", encrypt=True)
    start = time.perf_counter()
    shown = chat.list(limit=None)
    elapsed = time.perf_counter() - start
    assert len(shown) == 1000 and all(m.state == "decrypted" for m in shown)
    assert elapsed < 1.0, f"{elapsed:.2f}s"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=1, max_size=300), encrypt=st.booleans())
def test_any_unicode_text_round_trips(text, encrypt):
    # Sealed texts come back as written; plain ones as the redactor leaves them (unchanged unless
    # they hold a secret).
    chat = Chat(MemoryStore(), environ={"CAIRN_CHAT_KEY": KEY})
    chat.send(text, encrypt=encrypt)
    (shown,) = chat.list()
    assert shown.text == (text if encrypt else chat.redactor.text(text))


def test_cipher_rejects_short_keys_and_garbage():
    with pytest.raises(ValidationError):
        ChatCipher(b"short")
    with pytest.raises(ValidationError, match="varies too little"):
        ChatCipher(b"k" * 32)
    cipher = ChatCipher(secrets.token_bytes(32))
    with pytest.raises(UndecryptableError):
        cipher.open("ENC:v1:not:valid", "m")
    with pytest.raises(UndecryptableError):
        cipher.open("ENC:v1:a:b:c", "m")


# -- traces --------------------------------------------------------------------------------


def test_summary_is_a_pure_function_of_the_events():
    events = [
        {"event": "context:commit", "ts": "2026-01-01T00:00:00Z", "payload": {}},
        {"event": "ledger:run", "ts": "2026-01-01T00:01:30Z", "payload": {}},
        {"event": "context:commit", "ts": "2026-01-01T00:03:00Z", "payload": {}},
    ]
    first = summarize("s", "debug", events)
    assert first == summarize("s", "debug", list(events))
    assert first == "s (debug): 3 events over 3m — 2 context:commit, 1 ledger:run"
    assert summarize("s", "debug", []) == "s (debug): 0 events over 0s — nothing happened"


@pytest.mark.parametrize(
    ("started", "ended", "shown"),
    [
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:04.900000Z", "4.9s"),
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00.400000Z", "0.4s"),
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:42Z", "42s"),
        ("2026-01-01T00:00:00Z", "2026-01-01T02:30:00Z", "2.5h"),
    ],
)
def test_a_trace_is_summarised_over_its_own_span(started: str, ended: str, shown: str) -> None:
    # One event, or events close together, used to make a 4.9 s trace "over 0s".
    events = [{"event": "context:commit", "ts": started, "payload": {}}]
    assert summarize("s", "debug", events, started, ended) == f"s (debug): 1 event over {shown} — 1 context:commit"


def test_recordings_capture_the_bus_and_can_overlap(bus, chat, ledger):
    outer = Recording("outer", bus=bus, user="ann")
    chat.send("one")
    inner = Recording("inner", classification="review", bus=bus)
    ledger.record("job")
    inner_trace = inner.stop()
    chat.send("two")
    outer_trace = outer.stop()
    assert [e["event"] for e in inner_trace.events] == ["ledger:run"]
    assert [e["event"] for e in outer_trace.events] == ["chat:message", "ledger:run", "chat:message"]
    run = save_trace(outer_trace, ledger, chat=chat)
    assert run.type == "trace" and run.summary == outer_trace.summary
    assert [e.type for e in ledger.events(run.run_id)] == ["chat:message", "ledger:run", "chat:message"]
    (posted,) = [m for m in chat.list(run_id=run.run_id)]
    assert posted.message.source == "trace" and posted.text == outer_trace.summary


def test_active_recordings_span_processes(tmp_path, bus):
    active = ActiveRecordings(tmp_path)
    active.start("session", classification="debug", user="ann")
    with pytest.raises(ValidationError, match="already running"):
        active.start("session")
    detach = active.attach(bus)
    bus.publish("context:commit", {"commit": "abc"})
    detach()
    bus.publish("context:commit", {"commit": "not recorded"})
    # A second "process": a fresh object over the same directory sees the same events.
    again = ActiveRecordings(tmp_path)
    assert again.names() == ["session"] and len(again.events("session")) == 1
    trace = again.stop("session")
    assert trace.classification == "debug" and [e["payload"]["commit"] for e in trace.events] == ["abc"]
    assert again.names() == []
    with pytest.raises(NotFoundError):
        again.stop("session")
    with pytest.raises(ValidationError):
        again.start("../escape")
