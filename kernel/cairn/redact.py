"""Redaction: the one step that text from the outside world passes before cairn stores it.

Whatever a child process printed, the arguments it got, the environment it
ran in and the messages people type may hold secrets. ``Redactor`` replaces
them with ``***`` (``MASK``):

- **known values**: the values of environment variables whose names look
  secret (``looks_secret_name``: ``OPENAI_API_KEY``, ``GITHUB_TOKEN``,
  ``DB_PASSWORD`` ...), of the variables that configuration names in its
  ``*_env`` keys (``api_key_env``, ``key_env``, ``password_env``), and any
  given explicitly, wherever they occur (also URL-quoted); values shorter
  than ``MIN_SECRET`` characters are too common to replace everywhere, and
  are caught only in the contexts below;
- **key shapes**: OpenAI / Anthropic ``sk-...``, GitHub ``ghp_...`` /
  ``github_pat_...``, GitLab ``glpat-...``, Slack ``xox?-...``, AWS access
  key ids ``AKIA...``, Google ``AIza...``, Hugging Face ``hf_...``, npm,
  Stripe, JSON web tokens and PEM private key blocks, wherever they occur;
- **contexts**: ``Authorization: Bearer ...`` / ``Basic ...`` (and a lone
  ``Bearer <token>``), the password of a URL (``scheme://user:***@host``),
  and the value given to a secret-looking name: ``NAME=value``,
  ``"name": "value"``, ``password: value``, ``--token value``.

Ordinary words are left alone: a key shape is at least 20 characters with a
known prefix, and a context needs ``=``, ``:`` or ``://...@`` next to a
secret-looking name. Redaction repeats until nothing more changes, so its
output never holds anything it would redact (``text(text(x)) == text(x)``).

What it cannot catch: a secret with no known shape, in no context, that is
not the value of a variable it was told about, or a known secret cut short.
Keep secrets in the environment, under names that say so.

``strict=True`` is for text a remote service sent back about a request (a
provider's error, which may quote the key it refused or the request's
headers), where a masked ordinary word costs little and a missed key a lot.
It masks more: known values from ``MIN_STRICT_SECRET`` characters, any
``Bearer`` token whatever its length, ``sk-`` / ``pk-`` / ``rk-`` keys from
8 characters after the dash in any case, and the whole user info of a URL
(a token may stand as the user name: ``https://***@host``).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

__all__ = [
    "MASK",
    "MIN_SECRET",
    "MIN_STRICT_SECRET",
    "Redactor",
    "configured_env_names",
    "looks_secret_name",
    "redact_argv",
    "redact_text",
    "redact_url",
]

#: What a secret becomes.
MASK = "***"
#: Known values shorter than this are not replaced wherever they occur (``false``, ``1``, ``us``).
MIN_SECRET = 8
#: With ``strict=True`` (text a remote service sent back), known values from this many characters are masked.
MIN_STRICT_SECRET = 4
_MAX_PASSES = 8

# -- names -------------------------------------------------------------------------------

# A name is secret when it holds one of the strong words anywhere, or ends in a weak one
# (MYSQL_PWD, NPM_TOKEN; not PWD, TOKENIZERS_PARALLELISM, max_tokens or token_count), and
# does not end in _env, which holds the NAME of a variable (cairn's configuration convention).
_STRONG = re.compile(
    r"(?i)secret|passw(?:or)?d|passphrase|credential|private[_.-]?key|api[_.-]?key|access[_.-]?key"
    r"|(?:auth|access|refresh|session|id|bearer)[_.-]?token|authorization|cookie"
)
_WEAK_END = re.compile(r"(?i)(?:key|keys|token|pass|[_.-]pwd|auth)\Z")
_ENV_END = re.compile(r"(?i)[_.-]env\Z")
_N = r"A-Za-z0-9_.\-"  # the characters of a name
#: Strings up to this long have their masked form remembered by each ``Redactor`` (keys, labels, short
#: values repeat across the events of a run), the first ``_MEMO_SIZE`` of them.
_MEMO_LENGTH = 200
_MEMO_SIZE = 4096
_SCALARS = frozenset({int, float, bool, type(None)})


@functools.lru_cache(maxsize=4096)  # the same few field and variable names are asked about over and over
def looks_secret_name(name: str) -> bool:
    """Whether a variable, key or option called ``name`` holds a secret.

    ``OPENAI_API_KEY``, ``GITHUB_TOKEN``, ``--password``, ``MYSQL_PWD``: yes;
    ``api_key_env``, ``PWD``, ``max_tokens``, ``token_count``: no.
    """
    name = name.lstrip("-")
    if not name or _ENV_END.search(name):
        return False
    return bool(_STRONG.search(name) or _WEAK_END.search(name))


def _named(name: str) -> bool:
    # Authorization headers have a rule of their own, which keeps the scheme (Bearer, Basic) readable.
    return looks_secret_name(name) and not name.lower().endswith("authorization")


def _strong_name(name: str) -> bool:
    return _named(name) and bool(_STRONG.search(name))


def configured_env_names(data: Mapping[str, Any]) -> list[str]:
    """The variable names configuration points at: every string under a key ending in ``_env``."""
    found: set[str] = set()

    def walk(node: Mapping[str, Any]) -> None:
        for key, value in node.items():
            if isinstance(value, Mapping):
                walk(value)
            elif isinstance(key, str) and key.endswith("_env") and isinstance(value, str) and value:
                found.add(value)

    walk(data)
    return sorted(found)


# -- patterns ----------------------------------------------------------------------------
# Every pattern starts at a literal or at the start of a run of name characters (a lookbehind),
# so scanning stays linear in the length of the text, however long a line is.

_K = r"A-Za-z0-9_\-"  # the characters of a key
# No boundary before a shape: a key glued to other text is still a key. Each shape runs on over
# the characters a key is made of, so a key is never cut in two with its tail left behind.
# Lookaheads and the first part of a JWT are bounded, so a long run of look-alikes stays linear.
_SHAPES = re.compile(
    "|".join(
        (
            # OpenAI, Anthropic (sk-ant-), sk-proj-: digits, upper and lower case, as random keys have.
            rf"sk-(?=[{_K}]{{0,80}}?[0-9])(?=[{_K}]{{0,80}}?[A-Z])(?=[{_K}]{{0,80}}?[a-z])[{_K}]{{20,}}",
            r"(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe
            rf"gh[opusr]_[A-Za-z0-9]{{30,}}[{_K}]*",  # GitHub tokens
            r"github_pat_[A-Za-z0-9_]{30,}",
            rf"glpat-[{_K}]{{20,}}",  # GitLab
            r"xox[abposre]-(?=[A-Za-z0-9-]{0,80}?[0-9])[A-Za-z0-9-]{15,}",  # Slack
            r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16,}",  # AWS key ids
            rf"AIza[{_K}]{{35,}}",  # Google API keys
            r"hf_[A-Za-z0-9]{30,}",  # Hugging Face
            r"npm_[A-Za-z0-9]{36,}",
            rf"eyJ[{_K}]{{10,400}}\.[{_K}]{{10,}}\.[{_K}]{{10,}}",  # JSON web tokens
        )
    )
)
# A whole argument or configuration value that starts like a key is one, however short.
_KEY_PREFIX = re.compile(
    r"(?:sk-|(?:sk|rk)_(?:live|test)_|gh[opusr]_|github_pat_|glpat-|xox[abposre]-|AKIA|ASIA|AIza|npm_)[A-Za-z0-9_-]{3,}"
)
# A PEM private key: whole, with its head cut off (an output tail may start inside it), or with
# its end missing. The body is masked line by line, so a block keeps its number of lines.
_PEM_BODY = r"[A-Za-z0-9+/=:,. \t\r\n-]"
_PEM = re.compile(
    rf"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----{_PEM_BODY}*?-----END[A-Z0-9 ]*PRIVATE KEY-----"
    rf"|\A(?:[A-Za-z0-9+/=]*\r?\n)*?-----END[A-Z0-9 ]*PRIVATE KEY-----"
    rf"|-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----{_PEM_BODY}*\Z"
)
_URL_PASSWORD = re.compile(r"((?<![A-Za-z0-9+.\-])[A-Za-z0-9+.\-]+://[^\s/?#@:]*:)[^\s/?#]*(?=@)")
_AUTH_HEADER = re.compile(
    r"(?i)((?:proxy-)?authorization[\"']?[ \t]*[:=][ \t]*[\"']?"
    r"(?:(?:bearer|basic|token|digest|negotiate|ntlm|apikey|aws4-hmac-sha256)[ \t]+)?)"
    r"[^\r\n\"']+"
)
_BEARER = re.compile(r"(?i)(bearer[ \t]+)(?=[A-Za-z0-9._~+/=-]{0,80}?[0-9._~+/=-])[A-Za-z0-9._~+/=-]{16,}")

# Secrets given to a name: the head (the name and its separator), then the value.
_QUOTED = r"\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'"
_ASSIGN = re.compile(rf"(?<![{_N}])(?P<name>[{_N}]+)[ \t]*=[ \t]*")  # NAME=value, --password=..., ?token=...
_QUOTED_KEY = re.compile(rf"([\"'])(?P<name>[{_N}]+)\1[ \t]*:[ \t]*")  # "name": value
_COLON = re.compile(rf"(?<![{_N}])(?P<name>[{_N}]+)[ \t]*:[ \t]*")  # password: value
_LINE_COLON = re.compile(rf"(?m)^[ \t]*(?:-[ \t]+)?[\"']?(?P<name>[{_N}]+)[\"']?[ \t]*:[ \t]*")  # X-Api-Key: value
_FLAG = re.compile(rf"(?<![{_N}])--(?P<name>[{_N}]+)[ \t]+(?!-)")  # --token value
_WORD_VALUE = re.compile(rf"{_QUOTED}|[^\s\"'&]+")
_JSON_VALUE = re.compile(rf"{_QUOTED}|[^\s,}}\]]+")
_LINE_VALUE = re.compile(rf"{_QUOTED}|\S[^\r\n]*")
_LINE_HEAD = re.compile(r"(?:\A|\n)[ \t]*(?:export[ \t]+)?\Z")


def _starts_line(text: str, at: int) -> bool:
    """Whether only blanks (or ``export``) stand between the start of a line and ``at``.

    Looks back a bounded distance, so a long line of many assignments stays linear.
    """
    low = max(0, at - 40)
    found = _LINE_HEAD.search(text, low, at)
    return found is not None and (found.group(0).startswith("\n") or found.start() == 0)


def _mask_named(text: str, head: re.Pattern[str], secret: Any, value: Any) -> str:
    """Mask the value after every ``head`` whose name ``secret(name)`` says is secret.

    ``value(text, match)`` is the pattern of the value after the head. A head
    whose name is not secret is stepped over, never its value, so a secret
    assignment inside an ordinary one's value is still found.
    """
    out: list[str] = []
    pos = 0
    while True:
        match = head.search(text, pos)
        if match is None:
            break
        end = match.end()
        found = value(text, match).match(text, end) if secret(match.group("name")) else None
        out.append(text[pos:end])
        if found is not None and found.end() > end:
            quote = found.group(0)[0]
            out.append(quote + MASK + quote if quote in "\"'" else MASK)  # a quoted value stays quoted
            pos = found.end()
        else:
            pos = end
    out.append(text[pos:])
    return "".join(out)


def _assign_value(text: str, match: re.Match[str]) -> re.Pattern[str]:
    # NAME=value alone on its line (`env`, .env files) takes the rest of the line.
    return _LINE_VALUE if _starts_line(text, match.start()) else _WORD_VALUE


def _keep_lines(match: re.Match[str]) -> str:
    # One mask per line, so a multi-line block keeps its line count (output tails are per line).
    return "\n".join(MASK for _ in match.group(0).split("\n"))


def _mask_after(match: re.Match[str]) -> str:
    return match.group(1) + MASK


# Strict only (see the module docstring): rules that would mask ordinary text elsewhere.
_STRICT_KEY = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{8,}")  # short or single-case keys, as errors quote them
_STRICT_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")  # any token, whatever its length
_STRICT_USERINFO = re.compile(r"((?<![A-Za-z0-9+.\-])[A-Za-z0-9+.\-]+://)[^\s/@]+(?=@)")  # the user too

# Something every pattern below needs: most text holds none of it and is left at once.
_TRIGGER = re.compile(r"[-_=:]|eyJ|AIza|A(?:KIA|SIA|BIA|CCA|GPA|IDA|IPA|NPA|NVA|ROA|PKA)|(?i:bearer)")


def _patterns(text: str, strict: bool = False) -> str:
    if _TRIGGER.search(text) is None:
        return text
    # Contexts before shapes: a shape glued to a name (sk-...OPENAI_API_KEY=) must not hide the name.
    if "PRIVATE KEY-----" in text:
        text = _PEM.sub(_keep_lines, text)
    if "://" in text:
        text = (_STRICT_USERINFO if strict else _URL_PASSWORD).sub(_mask_after, text)
    text = _AUTH_HEADER.sub(_mask_after, text)
    text = (_STRICT_BEARER if strict else _BEARER).sub(_mask_after, text)
    if "=" in text:
        text = _mask_named(text, _ASSIGN, _named, _assign_value)
    if ":" in text:
        text = _mask_named(text, _QUOTED_KEY, _named, lambda t, a: _JSON_VALUE)
        text = _mask_named(text, _COLON, _strong_name, lambda t, a: _WORD_VALUE)
        text = _mask_named(text, _LINE_COLON, _named, lambda t, a: _LINE_VALUE)
    if "--" in text:
        text = _mask_named(text, _FLAG, _named, lambda t, a: _WORD_VALUE)
    text = _SHAPES.sub(MASK, text)
    return _STRICT_KEY.sub(MASK, text) if strict else text


def redact_url(url: str) -> str:
    """``url`` with the password of its user info masked: ``https://bob:***@host/``; key shapes masked too."""
    return redact_text(url)


def redact_text(text: str, *, secrets: Iterable[str] = (), strict: bool = False) -> str:
    """``text`` with the given ``secrets``, key shapes and secrets in context masked (no environment).

    ``strict`` masks more, for text a remote service sent back (see the module docstring).
    """
    return Redactor(secrets, strict=strict).text(text)


def redact_argv(argv: Sequence[str], *, secrets: Iterable[str] = ()) -> list[str]:
    """A command line with secrets masked (see ``Redactor.argv``); the environment is not consulted."""
    return Redactor(secrets).argv(argv)


class Redactor:
    """Masks known secret values, key shapes and secrets in context; build one per process or command.

    ``Redactor.from_environment()`` knows the values of the environment's
    secret-looking variables; ``Redactor(secrets)`` knows only ``secrets``.
    ``strict=True`` masks more, for text a remote service sent back about a
    request (see the module docstring).
    """

    def __init__(self, secrets: Iterable[str] = (), *, strict: bool = False) -> None:
        self.strict = strict
        shortest = MIN_STRICT_SECRET if strict else MIN_SECRET
        values: set[str] = set()
        for secret in secrets:
            if isinstance(secret, str) and len(secret) >= shortest and secret != MASK:
                values.add(secret)
                values.add(quote(secret, safe=""))
        values = {v for v in values if len(v) >= shortest}
        # Longest first: a secret that contains another is masked whole.
        ordered = sorted(values, key=lambda v: (-len(v), v))
        self._known = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None
        self.size = len(ordered)
        self._memo: dict[str, str] = {}
        self._keys: dict[str, tuple[str, bool]] = {}  # a mapping key: (its masked form, whether it names a secret)

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        names: Iterable[str] = (),
        secrets: Iterable[str] = (),
    ) -> Redactor:
        """A redactor for the values of ``environ``'s secret-looking variables and of ``names``.

        ``names`` are variables configuration points at (``configured_env_names``),
        whatever they are called.
        """
        environ = os.environ if environ is None else environ
        wanted = set(names)
        values = [value for name, value in environ.items() if value and (name in wanted or looks_secret_name(name))]
        return cls([*values, *secrets])

    def text(self, text: str) -> str:
        """``text`` with every secret masked; unchanged when it holds none."""
        if not text:
            return text
        short = len(text) <= _MEMO_LENGTH
        if short:
            done = self._memo.get(text)
            if done is not None:
                return done
        masked = self._settle(text)
        if short and len(self._memo) < _MEMO_SIZE:
            self._memo[text] = masked  # the first strings seen stay: a run's keys and labels come early
        return masked

    def _settle(self, text: str) -> str:
        """Mask until nothing more changes (see the module docstring)."""
        for _ in range(_MAX_PASSES):
            before = text
            if self._known is not None:
                text = self._known.sub(MASK, text)
            text = _patterns(text, self.strict)
            if text == before:
                return text
        return MASK  # never reached in practice; if masking does not settle, nothing is kept

    def lines(self, lines: Sequence[str]) -> list[str]:
        """Lines of one stream, masked together (a private key spans lines), as many as were given."""
        if not lines:
            return []
        joined = self.text("\n".join(lines)).split("\n")
        if len(joined) == len(lines):
            return joined
        return [self.text(line) for line in lines]  # a mask swallowed a line break: fall back to one by one

    def argv(self, argv: Sequence[str]) -> list[str]:
        """A command line as it may be recorded: the value after ``--token`` / ``--password`` (any
        secret-looking option), the password in ``-u user:password``, and any argument shaped like a
        key are masked; everything else passes through ``text``."""
        out: list[str] = []
        hide = ""  # what the previous argument asks of this one: "all", "password" or nothing
        for arg in argv:
            if hide == "all":
                out.append(MASK)
            elif hide == "password" and ":" in arg:
                out.append(arg.partition(":")[0] + ":" + MASK)
            elif _KEY_PREFIX.fullmatch(arg):
                out.append(MASK)
            else:
                out.append(self.text(arg))
            hide = ""
            if arg.startswith("--") and "=" not in arg and looks_secret_name(arg[2:]):
                hide = "all"
            elif arg in ("-u", "--user", "--proxy-user"):
                hide = "password"
        return out

    def value(self, value: Any, *, secret: bool = False) -> Any:
        """A JSON-like value with every string masked as by ``text``; under a secret-looking key
        (``{"api_key": "..."}``), every string is masked whole."""
        return self._walk(value, secret)

    def _walk(self, value: Any, secret: bool) -> Any:
        # The hot path of recording (every event of a run passes here): exact types are tested first,
        # the strings seen before are looked up in the memo without a call, and scalars are copied inline.
        kind = type(value)
        if kind is str or isinstance(value, str):
            if secret:
                return MASK if value else value
            done = self._memo.get(value)
            return done if done is not None else self.text(value)
        if kind in _SCALARS:
            return value  # numbers, booleans and None hold no text
        if kind is dict or isinstance(value, Mapping):
            memo, keys = self._memo, self._keys
            out: dict[Any, Any] = {}
            for key, item in value.items():
                known = keys.get(key) if type(key) is str else None
                if known is not None:
                    shown, hidden = known
                    hidden = hidden or secret
                elif isinstance(key, str):
                    shown, named = self.text(key), looks_secret_name(key)
                    if len(keys) < _MEMO_SIZE:
                        keys[key] = (shown, named)
                    hidden = secret or named
                else:
                    hidden, shown = secret, key
                item_kind = type(item)
                if item_kind in _SCALARS:
                    out[shown] = item
                elif item_kind is str and not hidden:
                    done = memo.get(item)
                    out[shown] = done if done is not None else self.text(item)
                else:
                    out[shown] = self._walk(item, hidden)
            return out
        if isinstance(value, (list, tuple)):
            return type(value)(self._walk(item, secret) for item in value)
        return value

    def field(self, name: str, value: Any) -> Any:
        """One named value (a configuration key, a metadata field): masked whole when the name looks
        secret or the value starts like a key, else as by ``value``."""
        if looks_secret_name(name):
            return self.value(value, secret=True) if isinstance(value, (str, list, tuple, Mapping)) else MASK
        if isinstance(value, str) and _KEY_PREFIX.match(value):
            return MASK
        return self.value(value)
