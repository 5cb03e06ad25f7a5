"""cairn.redact: planted secrets never survive, whatever surrounds them; ordinary text is never changed."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from cairn.redact import (
    MASK,
    MIN_SECRET,
    MIN_STRICT_SECRET,
    Redactor,
    configured_env_names,
    looks_secret_name,
    redact_argv,
    redact_text,
    redact_url,
)

# -- strategies ---------------------------------------------------------------------------

ANY_TEXT = st.text(max_size=60)
ALNUM = string.ascii_letters + string.digits
# Characters a password, token or key value may hold in any of the contexts below.
VALUE_CHARS = ALNUM + "-_.~+"
CONTEXT_VALUE = st.text(alphabet=VALUE_CHARS, min_size=12, max_size=40).filter(lambda v: not v.startswith("-"))
SECRET_NAMES = st.sampled_from(
    [
        "OPENAI_API_KEY",
        "CAIRN_CHAT_KEY",
        "ANTHROPIC_API_KEY",
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "HF_TOKEN",
        "NPM_TOKEN",
        "SLACK_BOT_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "DB_PASSWORD",
        "PGPASSWORD",
        "MYSQL_PWD",
        "TWINE_PASSWORD",
        "SECRET_KEY_BASE",
        "CLIENT_SECRET",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "api_key",
        "apiKey",
        "password",
        "passwd",
        "token",
        "access_token",
        "refresh_token",
        "private_key",
        "x-api-key",
    ]
)
# Names that are secret wherever they stand, so "name: value" counts mid-line too.
STRONG_NAMES = st.sampled_from(
    ["password", "DB_PASSWORD", "passwd", "api_key", "x-api-key", "CLIENT_SECRET", "access_token", "private_key"]
)


@st.composite
def keys(draw: st.DrawFn) -> str:
    """A key in one of the well-known shapes, as random as real ones."""

    def run(alphabet: str, size: int) -> str:
        return draw(st.text(alphabet=alphabet, min_size=size, max_size=size + 20))

    upper, lower, digits = string.ascii_uppercase, string.ascii_lowercase, string.digits
    kind = draw(st.sampled_from(["openai", "github", "pat", "gitlab", "slack", "aws", "google", "hf", "jwt", "stripe"]))
    if kind == "openai":
        prefix = draw(st.sampled_from(["sk-", "sk-proj-", "sk-ant-api03-", "sk-svcacct-"]))
        body = run(ALNUM + "-_", 20) + draw(st.sampled_from(upper)) + draw(st.sampled_from(lower)) + "7"
        return prefix + "".join(draw(st.permutations(body)))
    if kind == "github":
        return draw(st.sampled_from(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"])) + run(ALNUM, 36)
    if kind == "pat":
        return "github_pat_" + run(ALNUM + "_", 40)
    if kind == "gitlab":
        return "glpat-" + run(ALNUM + "-_", 20)
    if kind == "slack":
        return draw(st.sampled_from(["xoxb-", "xoxp-", "xoxa-", "xoxs-"])) + "12345-" + run(ALNUM + "-", 20)
    if kind == "aws":
        return draw(st.sampled_from(["AKIA", "ASIA"])) + run(upper + digits, 16)
    if kind == "google":
        return "AIza" + run(ALNUM + "-_", 35)
    if kind == "hf":
        return "hf_" + run(ALNUM, 34)
    if kind == "stripe":
        return draw(st.sampled_from(["sk_live_", "rk_live_", "sk_test_"])) + run(ALNUM, 24)
    part = ALNUM + "-_"
    return "eyJ" + run(part, 12) + ".eyJ" + run(part, 12) + "." + run(part, 20)


# -- planted secrets never survive ------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    name=SECRET_NAMES,
    value=st.text(st.characters(exclude_categories=("Cs",)), min_size=MIN_SECRET, max_size=40),
    before=ANY_TEXT,
    after=ANY_TEXT,
)
@example(name="OPENAI_API_KEY", value="sk-canary-a1b2c3d4e5f6", before="OPENAI_API_KEY=", after="\n")
@example(name="DB_PASSWORD", value="x***y2345", before="x", after="y2345")
def test_the_value_of_a_secret_variable_never_survives(name: str, value: str, before: str, after: str) -> None:
    assume(value != MASK)
    redactor = Redactor.from_environment({name: value, "HOME": "/home/ann"})
    assert value not in redactor.text(before + value + after)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["MY_VAR", "LLM"]), value=CONTEXT_VALUE, before=ANY_TEXT, after=ANY_TEXT)
def test_the_value_of_a_configured_variable_never_survives_whatever_its_name(
    name: str, value: str, before: str, after: str
) -> None:
    redactor = Redactor.from_environment(
        {name: value}, names=configured_env_names({"llm": {"x": {"api_key_env": name}}})
    )
    assert value not in redactor.text(before + value + after)


@settings(max_examples=500, deadline=None)
@given(key=keys(), before=ANY_TEXT, after=ANY_TEXT)
@example(key="sk-proj-AbCdEf0123456789xyzXYZ", before="OPENAI_API_KEY=", after="")
@example(key="AKIAIOSFODNN7EXAMPLE", before="AKIA", after="")
@example(key="ghp_" + "a1B2" * 9, before="sk-aaaaaaaA1", after="")
def test_a_key_shaped_token_never_survives(key: str, before: str, after: str) -> None:
    assert key not in Redactor().text(before + key + after)


@settings(max_examples=500, deadline=None)
@given(
    form=st.sampled_from(["assign", "quoted", "json", "colon", "line", "flag", "url", "bearer", "basic", "export"]),
    name=SECRET_NAMES,
    strong=STRONG_NAMES,
    value=CONTEXT_VALUE,
    before=ANY_TEXT,
    after=ANY_TEXT,
)
@example(form="assign", name="OPENAI_API_KEY", strong="password", value="sk-canary-000000", before="a=", after="")
@example(form="assign", name="GITHUB_TOKEN", strong="password", value="aaaaaaaaaaaa", before="sk-aaaaaaaA1", after="")
def test_a_secret_in_context_never_survives(
    form: str, name: str, strong: str, value: str, before: str, after: str
) -> None:
    planted = {
        "assign": f"{name}={value}",
        "quoted": f"{name}='{value}'",
        "json": f'"{name}": "{value}"',
        "colon": f"{strong}: {value}",
        "line": f"\n{name}: {value}",
        "flag": f" --{name} {value}",
        "url": f"https://bob:{value}@example.com/v1",
        "bearer": f"Authorization: Bearer {value}",
        "basic": f"proxy-authorization: Basic {value}",
        "export": f"\nexport {name}={value}",
    }[form]
    # The value must not already be there in the surroundings (nothing to say about those).
    assume(value not in before + name + strong and value not in after)
    out = Redactor().text(before + planted + after)
    assert value not in out, out


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200), secret=st.text(min_size=MIN_SECRET, max_size=20))
def test_redaction_is_idempotent(text: str, secret: str) -> None:
    redactor = Redactor([secret])
    once = redactor.text(text)
    assert redactor.text(once) == once


# -- ordinary text is never changed -----------------------------------------------------------

LETTERS = st.characters(categories=("Lu", "Ll", "Lo", "Nd"))
WORD_PART = st.text(alphabet=LETTERS, min_size=1, max_size=16)
WORD = st.builds(
    lambda parts, joins: "".join(p + j for p, j in zip(parts, joins, strict=False)).rstrip("-_.'/"),
    st.lists(WORD_PART, min_size=1, max_size=4),
    st.lists(st.sampled_from(["-", "_", ".", "'", "/"]), min_size=4, max_size=4),
)
# What starts a key shape or a context; a word holding one is not ordinary.
TRIGGERS = re.compile(
    r"sk-|[srp]k_|gh[opusr]_|github_pat_|glpat-|xox[a-z]-|A[A-Z]IA|AIza|hf_|npm_|eyJ|bearer|authorization|----",
    re.IGNORECASE,
)
SEPARATORS = st.sampled_from([" ", "  ", "\n", "\t", ", ", ". ", "; ", " (", ") ", "! ", "? ", " - "])


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(WORD.filter(lambda w: w and not TRIGGERS.search(w)), min_size=1, max_size=30),
    separators=st.lists(SEPARATORS, min_size=30, max_size=30),
    secret=st.text(alphabet=ALNUM + "!#%", min_size=MIN_SECRET, max_size=30),
)
@example(words=["nope-mini", "a", "non-JSON", "body"], separators=[" "] * 30, secret="hunter2hunter2")
@example(
    words=["gpt-4o-mini", "x86_64", "e.g", "/usr/bin/python3", "20261122T101500.123456Z_eval_k3j9x2qa", "f" * 64],
    separators=[" "] * 30,
    secret="hunter2hunter2",
)
@example(
    words=["the", "password", "is", "wrong", "token", "count", "api_key", "max_tokens"],
    separators=[" "] * 30,
    secret="x" * 8,
)
def test_ordinary_words_are_never_changed(words: list[str], separators: list[str], secret: str) -> None:
    text = "".join(w + s for w, s in zip(words, separators, strict=False))
    assume(secret not in text)
    redactor = Redactor.from_environment({"SERVICE_TOKEN": secret, "TOKENIZERS_PARALLELISM": "false", "PWD": "/x"})
    assert redactor.text(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "model nope-mini not found (a non-JSON body of 12 bytes)",
        "https://example.com/v1 ssh://git@github.com/o/r.git mail bob@example.com",
        "TOKENIZERS_PARALLELISM=false PWD=/home/ann max_tokens=5 token_count=7 api_key_env=OPENAI_API_KEY",
        "status: ok, key_env: CAIRN_CHAT_KEY, time: 12:30",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b on main",
    ],
)
def test_ordinary_technical_text_is_never_changed(text: str) -> None:
    assert Redactor.from_environment({"OPENAI_API_KEY": "sk-secret-value-1"}).text(text) == text


# -- the pieces ------------------------------------------------------------------------------


def test_what_the_masks_look_like() -> None:
    r = Redactor()
    assert r.text("curl -H 'Authorization: Bearer abc.def' https://bob:hunter2@example.com/x?token=zzz&a=1") == (
        "curl -H 'Authorization: Bearer ***' https://bob:***@example.com/x?token=***&a=1"
    )
    assert r.text('{"api_key": "abc", "max_tokens": 5}') == '{"api_key": "***", "max_tokens": 5}'
    assert r.text("PASSWORD=correct horse battery\nnext") == "PASSWORD=***\nnext"
    assert r.text("export DB_PASSWORD='x y z'") == "export DB_PASSWORD='***'"
    assert r.text("AKIAIOSFODNN7EXAMPLE") == MASK
    assert r.text("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY") == "aws_secret_access_key = ***"


def test_a_private_key_is_masked_line_by_line_even_with_its_head_cut_off() -> None:
    pem = ["-----BEGIN RSA PRIVATE KEY-----", "MIIEpAIBAAKCAQEA7c3", "Zm9vYmFy==", "-----END RSA PRIVATE KEY-----"]
    assert Redactor().lines(["before", *pem, "after"]) == ["before", *[MASK] * 4, "after"]
    assert Redactor().lines([*pem[2:], "after"]) == [MASK, MASK, "after"]


def test_argv() -> None:
    assert redact_argv(["curl", "--token=abc", "--api-key", "k", "-H", "sk-123", "--name=x"]) == [
        "curl",
        "--token=***",
        "--api-key",
        "***",
        "-H",
        "***",
        "--name=x",
    ]
    assert redact_argv(["curl", "-u", "bob:hunter2", "--max-tokens", "5", "https://a:b@h/"]) == [
        "curl",
        "-u",
        "bob:***",
        "--max-tokens",
        "5",
        "https://a:***@h/",
    ]


def test_structured_values_mask_whatever_sits_under_a_secret_name() -> None:
    r = Redactor(["s3cr3t-value"])
    assert r.value({"env": {"API_KEY": "abc", "HOME": "/h"}, "tokens": 3, "keys": ["a", "b"], "x": "s3cr3t-value"}) == {
        "env": {"API_KEY": MASK, "HOME": "/h"},
        "tokens": 3,
        "keys": [MASK, MASK],
        "x": MASK,
    }
    assert r.field("base_url", "http://u:p@h/") == "http://u:***@h/"
    assert r.field("password", "pw") == MASK and r.field("model", "sk-looks-like-a-key") == MASK


def test_names_and_urls() -> None:
    for name in ("OPENAI_API_KEY", "CAIRN_CHAT_KEY", "MYSQL_PWD", "--password", "GITHUB_TOKEN", "Authorization"):
        assert looks_secret_name(name), name
    for name in ("api_key_env", "key_env", "PWD", "OLDPWD", "max_tokens", "token_count", "TOKENIZERS_PARALLELISM"):
        assert not looks_secret_name(name), name
    assert redact_url("http://user:PW@host:8080/v1") == "http://user:***@host:8080/v1"
    assert redact_url("https://example.com/v1") == "https://example.com/v1"
    assert redact_text("key sk-abc", secrets=["sk-abc-very-secret"]) == "key sk-abc"
    assert configured_env_names({"llm": {"openai": {"api_key_env": "K", "model": "m"}}, "chat": {"key_env": "C"}}) == [
        "C",
        "K",
    ]


# -- strict: text a remote service sent back ----------------------------------------------------


def test_strict_masks_what_provider_errors_quote() -> None:
    text = "Incorrect API key provided: sk-abc12345. Sent Bearer abc, key k3y! via https://TOKEN123@host/v1"
    assert Redactor(["k3y!"], strict=True).text(text) == (
        "Incorrect API key provided: ***. Sent Bearer ***, key *** via https://***@host/v1"
    )
    # Elsewhere these could be ordinary text (a short value, a URL's user name): the default leaves them.
    assert Redactor(["k3y!"]).text(text) == text
    assert redact_text("https://bob:pw@h/ sk-learn-extras", strict=True) == "https://***@h/ ***"


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=120), secret=st.text(min_size=MIN_STRICT_SECRET, max_size=20))
@example(text="Authorization: Bearer abc.def https://bob:hunter2@example.com/x", secret="hunter2")
def test_strict_leaves_nothing_the_default_would_mask_and_settles(text: str, secret: str) -> None:
    once = Redactor([secret], strict=True).text(text)
    assert Redactor([secret], strict=True).text(once) == once
    assert Redactor([secret]).text(once) == once


def _reference_value(value: object, secrets: list[str], secret: bool = False) -> object:
    """``Redactor.value`` by its definition, every string through a fresh redactor (nothing remembered)."""
    if isinstance(value, str):
        return (MASK if value else value) if secret else redact_text(value, secrets=secrets)
    if isinstance(value, dict):
        return {
            (redact_text(k, secrets=secrets) if isinstance(k, str) else k): _reference_value(
                v, secrets, secret or (isinstance(k, str) and looks_secret_name(k))
            )
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(_reference_value(v, secrets, secret) for v in value)
    return value


JSON_KEYS = st.sampled_from(["api_key", "token", "text", "reason", "PASSWORD", "score", "env", "k"]) | st.text(
    max_size=12
)
JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(JSON_KEYS, children, max_size=4),
    max_leaves=20,
)


@given(values=st.lists(JSON_VALUES, min_size=1, max_size=4), secret=st.text(min_size=MIN_SECRET, max_size=16))
def test_what_a_redactor_remembers_never_changes_what_it_masks(values: list[object], secret: str) -> None:
    # One redactor masks many events in turn and remembers the strings and keys it saw: every answer
    # is what a redactor that never saw anything before gives.
    r = Redactor([secret])
    for value in [*values, *values]:
        assert r.value(value) == _reference_value(value, [secret])
