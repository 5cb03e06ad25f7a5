"""The ``hello.greeting`` content type: who greeted, what was said, in which language.

A content type is a frozen attrs class deriving from ``cairn.model.Content``
with two class variables, ``content_type`` (the tag stored with every item,
namespaced by the plugin: ``hello.``) and ``hints`` (how the materializer
treats it), and a ``render()`` to chat messages. Its fields validate
themselves, so a bad item is refused when it is made, never when it is read.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import attrs

from cairn.errors import ValidationError
from cairn.model import Content, ContentHints, Message, Priority

__all__ = ["GREETINGS", "Greeting", "make_greeting"]

#: Greeting templates by language tag; ``{name}`` is the person greeted.
GREETINGS: dict[str, str] = {
    "de": "Hallo, {name}!",
    "en": "Hello, {name}!",
    "es": "¡Hola, {name}!",
    "fr": "Bonjour, {name} !",
    "it": "Ciao, {name}!",
    "ja": "こんにちは、{name}さん！",
}

# A BCP 47-shaped tag, simplified: "en", "pt-BR", "zh-Hant".
_LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")

#: Longest greeter name accepted; a greeter is a short label, not a paragraph.
MAX_GREETER_LENGTH = 64


def _short_label(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")
    if len(value) > MAX_GREETER_LENGTH:
        raise ValueError(f"{attribute.name} must be at most {MAX_GREETER_LENGTH} characters, got {len(value)}")


def _nonempty_text(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")


def _language_tag(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str) or not _LANGUAGE_TAG.fullmatch(value):
        raise ValueError(f"{attribute.name} must be a language tag such as 'en' or 'pt-BR', got {value!r}")


@attrs.frozen
class Greeting(Content):
    """One greeting: ``greeter`` said ``text`` (in ``language``) to someone.

    Rendered as a user message that names the greeter, so a model reading the
    context knows who spoke. Greetings are the first thing worth dropping
    when the context is over budget, hence the high compression priority.
    """

    content_type: ClassVar[str] = "hello.greeting"
    hints: ClassVar[ContentHints] = ContentHints(
        default_role="user",
        default_priority=Priority.NORMAL,
        order=50,
        compression_priority=90,
    )

    greeter: str = attrs.field(validator=_short_label)
    text: str = attrs.field(validator=_nonempty_text)
    language: str = attrs.field(default="en", validator=_language_tag)

    def render(self) -> tuple[Message, ...]:
        return (Message(self.hints.default_role, f"{self.greeter} ({self.language}): {self.text}"),)


def make_greeting(name: str, *, language: str = "en", greeter: str = "cairn") -> Greeting:
    """The greeting ``greeter`` says to ``name`` in ``language`` (one of ``GREETINGS``).

    Raises ``cairn.errors.ValidationError`` naming the field for an empty
    name, an unknown language or a bad greeter.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("must not be empty", what="hello.greeting", field="name", given=name)
    template = GREETINGS.get(language)
    if template is None:
        raise ValidationError(
            f"no greeting in {language!r}",
            what="hello.greeting",
            field="language",
            given=language,
            hint=f"choose one of: {', '.join(sorted(GREETINGS))}",
        )
    try:
        return Greeting(greeter=greeter, text=template.format(name=name.strip()), language=language)
    except (TypeError, ValueError) as exc:
        # attrs validators raise plain TypeError/ValueError; cairn code raises its own errors.
        raise ValidationError(str(exc.args[0]), what="hello.greeting", given=greeter) from None
