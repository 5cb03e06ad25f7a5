"""Redaction of provider errors: keys and echoes of the request never reach a message.

Key shapes, auth headers, ``api_key=`` pairs and URL user info are
``cairn.redact``'s (its ``strict`` rules, for text a remote service sent
back). What is the providers' own is the echo rule: words of the error text
that quote the request bodies, or a cut piece of a key, become ``[…]``.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Sequence

from cairn.providers._errors import _TaxonomyError
from cairn.redact import MIN_STRICT_SECRET, Redactor

__all__ = ["redact_text"]


_WORD = re.compile(r"\w+", re.UNICODE)
_MIN_ECHO = 4  # shorter words are too common to be evidence of an echo
_ECHO_MARK = "[…]"
_MAX_ERROR_TEXT = 300


class _Echoes:
    """The words of request bodies (or of secrets), for spotting error text that quotes them.

    A gateway may echo the start of the prompt, cut anywhere: an error word
    that is a body word counts, and so does a cut piece of one (a prefix or
    suffix) where the text was cut. ``singles`` are the words of bodies that
    hold only one word long enough to count: a lone quoted word is the whole body.
    """

    def __init__(self, bodies: Iterable[str] | Callable[[], Iterable[str]]) -> None:
        # Built on first use: only a failed call needs it, and a long context makes it costly.
        self._bodies = bodies
        self._words: set[str] | None = None
        self.singles: set[str] = set()
        self.sorted: list[str] = []
        self.reversed: list[str] = []

    @property
    def words(self) -> set[str]:
        if self._words is None:
            bodies = self._bodies() if callable(self._bodies) else self._bodies
            self._words = set()
            for body in bodies:
                found = {w.lower() for w in _WORD.findall(body or "") if len(w) >= _MIN_ECHO}
                self._words |= found
                if len(found) == 1:
                    self.singles |= found
            self.sorted = sorted(self._words)
            self.reversed = sorted(w[::-1] for w in self._words)
            self._bodies = ()
        return self._words

    def __contains__(self, word: str) -> bool:
        w = word.lower()
        return w in self.words or self.starts(w) or self.ends(w)

    def starts(self, piece: str) -> bool:
        """Whether some word begins with ``piece`` (an echo cut at its end)."""
        return bool(self.words) and _has_prefix(self.sorted, piece)

    def ends(self, piece: str) -> bool:
        """Whether some word ends with ``piece`` (an echo cut at its start)."""
        return bool(self.words) and _has_prefix(self.reversed, piece[::-1])


def _has_prefix(ordered: list[str], prefix: str) -> bool:
    at = bisect.bisect_left(ordered, prefix)
    return at < len(ordered) and ordered[at].startswith(prefix)


# Where an echo was cut: an ellipsis, or a mask such as the *** a gateway or this module put there.
_CUT_MARK = re.compile(r"…|\.\.\.|\*\*\*")
_TAIL = re.compile(r"[\w\s/+=-]*")  # what may trail a word cut mid-token


def _echo_words(text: str, sources: Sequence[_Echoes], keep: set[str]) -> set[int]:
    """Start offsets of the words of ``text`` that echo a body or a secret.

    One word alone is not evidence: ``mini`` of ``nope-mini`` and ``JSON`` of
    cairn's own "a non-JSON body" are ordinary words that prompts hold too.
    A word counts when it stands where the text was cut (at its very end, or
    beside ``…`` / ``***``; there a cut piece of a word counts too), when it
    is the only word of a body, or when it is one of two or more echoed words
    in a row (short words and punctuation between them do not break a row).
    """
    words = [m for m in _WORD.finditer(text) if len(m.group(0)) >= _MIN_ECHO]
    sure: list[bool] = []
    maybe: list[bool] = []
    for i, match in enumerate(words):
        word = match.group(0).lower()
        before = text[words[i - 1].end() if i else 0 : match.start()]
        after = text[match.end() : words[i + 1].start() if i + 1 < len(words) else len(text)]
        cut_before = bool(_CUT_MARK.search(before))
        # The text cut off after the last long word: nothing but blanks or a short fragment follow it.
        cut_after = bool(_CUT_MARK.search(after)) or (i + 1 == len(words) and _TAIL.fullmatch(after) is not None)
        exact = word not in keep and any(word in source.words for source in sources)
        piece = word not in keep and any(
            (cut_after and source.starts(word)) or (cut_before and source.ends(word)) for source in sources
        )
        alone = exact and any(word in source.singles for source in sources)
        sure.append(piece or alone or (exact and (cut_before or cut_after)))
        maybe.append(exact or piece)
    marked: set[int] = set()
    for i, match in enumerate(words):
        beside = (i > 0 and maybe[i - 1]) or (i + 1 < len(words) and maybe[i + 1])
        if sure[i] or (maybe[i] and beside):
            marked.add(match.start())
    return marked


def redact_text(
    text: str,
    *,
    secrets: Iterable[str] = (),
    bodies: Iterable[str] | _Echoes = (),
    keep: Iterable[str | None] = (),
) -> str:
    """``text`` with secrets and echoes of the request bodies removed, cut to a readable length.

    ``secrets`` are replaced wherever they occur; auth headers, key shapes,
    ``api_key=...`` pairs and URL user info are replaced whatever they hold
    (``cairn.redact``, strict); words of ``text`` that echo ``bodies`` or a
    piece of a secret become ``[…]`` (see ``_echo_words`` for what counts as
    an echo: a lone ordinary word does not). Words of ``keep`` (the model and
    provider names) are never taken for echoes.
    """
    if not text:
        return text
    secrets = [s for s in secrets if s and len(s) >= MIN_STRICT_SECRET]
    text = Redactor(secrets, strict=True).text(text)
    echoes = bodies if isinstance(bodies, _Echoes) else _Echoes(bodies)
    # A key cut short in an echo no longer matches whole: its pieces are caught like prompt words.
    pieces = _Echoes(secrets)
    if echoes.words or pieces.words:
        kept = {w.lower() for name in keep if name for w in _WORD.findall(name)}
        marked = _echo_words(text, (echoes, pieces), kept)
        if marked:
            text = _WORD.sub(lambda m: _ECHO_MARK if m.start() in marked else m.group(0), text)
            text = re.sub(r"(?:\[…\][\s\W]*){2,}", _ECHO_MARK + " ", text).strip()
    if len(text) > _MAX_ERROR_TEXT:
        text = text[: _MAX_ERROR_TEXT - 1] + "…"
    return text


def _own(error: _TaxonomyError) -> _TaxonomyError:
    """Mark an error the kernel wrote itself: its text quotes nothing, so it is not redacted."""
    error._kernel_made = True
    return error


def _redact_error(error: _TaxonomyError, secrets: Sequence[str], echoes: _Echoes) -> _TaxonomyError:
    """Redact an error from a provider in place (defence in depth: plugins redact too)."""
    if error._kernel_made:
        return error
    keep = (error.model, error.provider)  # names the kernel knows are not echoes
    message = redact_text(error.message, secrets=secrets, bodies=echoes, keep=keep)
    hint = redact_text(error.hint, secrets=secrets, bodies=echoes, keep=keep) if error.hint else error.hint
    error.message, error.hint = message, hint
    error.args = (message,)
    return error
