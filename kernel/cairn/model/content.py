"""Content types: what a commit holds, a tagged union on ``content_type``.

Every content type is a frozen attrs class deriving from ``Content`` with a
``content_type`` tag, ``hints`` for the materializer and a ``render()`` to
chat messages. The eight built-in types are defined here and registered by
the kernel's built-in plugin through the same hook a third party uses.

A content item's identity is the SHA-256 of its canonical JSON: the fields
that are set (``None`` fields are left out, so adding an optional field later
never changes existing hashes) plus the ``content_type`` tag.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from cairn.errors import DuplicateNameError, ValidationError
from cairn.model.artifacts import IMAGE_TYPES, ArtifactRef
from cairn.model.canonical import canonical_json, sha256_hex
from cairn.model.convert import structure, unstructure

__all__ = [
    "Artifact",
    "BUILTIN_CONTENT_TYPES",
    "Content",
    "ContentHints",
    "ContentTypes",
    "Dialogue",
    "Freeform",
    "Image",
    "ImagePart",
    "Instruction",
    "Message",
    "Output",
    "Priority",
    "Reasoning",
    "ToolCall",
    "ToolIO",
    "UnknownContent",
]


class Priority(str, enum.Enum):
    """How the materializer treats an item: always kept, kept if it fits, or left out."""

    PINNED = "pinned"
    NORMAL = "normal"
    SKIP = "skip"


@attrs.frozen
class ContentHints:
    """What a content type tells the materializer.

    ``order``: items render in groups of ascending ``order`` (instructions, 0,
    come first); within a group they keep commit order.
    ``compression_priority``: 0-100, higher means cheaper to lose; a compressor
    or summarizer takes high values first.
    ``sent_by_default``: False keeps the type's items out of materialized
    messages unless the caller asks for them (``include_reasoning=True``);
    reasoning is held back so.
    """

    default_role: str
    default_priority: Priority = Priority.NORMAL
    order: int = 50
    compression_priority: int = 50
    sent_by_default: bool = True


@attrs.frozen
class ToolCall:
    """A tool call as it appears in a chat message; ``arguments`` is a JSON string."""

    id: str
    name: str
    arguments: str


@attrs.frozen
class ImagePart:
    """An image shown to a model beside a message's text: its media type and bytes, or a URL, and a name.

    Inline images carry ``data`` of a type every image-taking provider
    accepts (``IMAGE_TYPES``: PNG, JPEG, GIF, WebP); an image by ``url``
    (``https://`` only) leaves fetching it to the provider, and its ``mime``
    may be empty (unknown).
    """

    mime: str
    data: bytes | None = attrs.field(default=None, repr=lambda data: "None" if data is None else f"<{len(data)} bytes>")
    name: str = ""
    url: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.data is None) == (self.url is None):
            raise ValidationError("an image part carries either data or a url, exactly one")
        if self.url is not None:
            check_image_url(self.url)
            if self.mime and self.mime not in IMAGE_TYPES:
                raise ValidationError(
                    f"{self.mime!r} is not an image type providers accept", hint=", ".join(sorted(IMAGE_TYPES))
                )
            return
        if self.mime not in IMAGE_TYPES:
            raise ValidationError(
                f"{self.mime!r} is not an image type providers accept", hint=", ".join(sorted(IMAGE_TYPES))
            )
        if not isinstance(self.data, bytes):
            raise ValidationError(f"image data must be bytes, got {type(self.data).__name__}")


#: The longest image URL accepted (providers fetch it; a longer one is almost surely a data URL or a mistake).
MAX_IMAGE_URL = 2048


def check_image_url(url: object) -> str:
    """An image URL providers fetch themselves: ``https://`` and a host, printable, at most 2048 characters."""
    if (
        not isinstance(url, str)
        or not url.startswith("https://")
        or len(url) <= len("https://")
        or len(url) > MAX_IMAGE_URL
        or any(ord(c) <= 32 or ord(c) == 127 for c in url)
    ):
        raise ValidationError(
            f"image url {url!r:.80} is not one providers fetch",
            what="image",
            field="url",
            hint=f"give an https:// URL of at most {MAX_IMAGE_URL} characters, or put the file in the artifact store",
        )
    return url


@attrs.frozen
class Message:
    """A provider-neutral chat message; the materializer formats these per provider.

    ``images`` go with a user message's text to models that take images
    (``materialize(..., images=...)`` fills them in); formats show them as
    image parts, and drop them from any other role. ``is_error`` marks a
    tool result that reports a failure (Anthropic's ``is_error``).
    """

    role: str
    content: str | None
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    images: tuple[ImagePart, ...] = ()
    is_error: bool = False


# -- validators: small factories, errors that name the field and the value ------


def _text(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a string, got {type(value).__name__}")


def _nonempty_name(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    _text(instance, attribute, value)
    if not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")


def _optional_text(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _text(instance, attribute, value)


def _one_of(*choices: str, optional: bool = False) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if optional and value is None:
            return
        if value not in choices:
            raise ValueError(f"{attribute.name} must be one of {', '.join(choices)}; got {value!r}")

    return check


def _json_object(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, dict):
        raise TypeError(f"{attribute.name} must be a JSON object, got {type(value).__name__}")
    canonical_json(value)  # refuses NaN, non-string keys, non-JSON values


_PLAIN = (str, int, float, bool, dict, list, type(None))


def _is_plain(annotation: Any) -> bool:
    args = getattr(annotation, "__args__", None)
    if args is not None and getattr(annotation, "__origin__", None) not in (dict, list):
        return all(_is_plain(a) for a in args)  # a union such as str | None
    return getattr(annotation, "__origin__", annotation) in _PLAIN


class Content:
    """Base of every content type.

    Subclasses are frozen attrs classes that set two class variables,
    ``content_type`` (the tag, namespaced for plugins: ``"hello.greeting"``) and
    ``hints``, and implement ``render()``.
    """

    content_type: ClassVar[str]
    hints: ClassVar[ContentHints]
    if TYPE_CHECKING:
        # Every subclass is an attrs class (ContentTypes.register refuses any other), so
        # type checkers may take a content type wherever attrs wants one (attrs.fields).
        __attrs_attrs__: ClassVar[tuple[attrs.Attribute[Any], ...]]
        # Set on each subclass by _field_plan, the first time it is asked.
        _cairn_field_plan: ClassVar[tuple[tuple[str, bool], ...]]

    def render(self) -> tuple[Message, ...]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The canonical dict: set fields plus the ``content_type`` tag."""
        data: dict[str, Any] = {}
        for name, plain in self._field_plan():
            value = getattr(self, name)
            if value is not None:
                data[name] = value if plain else unstructure(value)
        data["content_type"] = self.content_type
        return data

    @classmethod
    def _field_plan(cls) -> tuple[tuple[str, bool], ...]:
        """(field name, holds plain JSON already) per field, worked out once per class.

        Fields typed as JSON primitives, ``dict`` or ``list`` are copied as they
        are; anything else (a nested attrs class, say) goes through cattrs.
        """
        plan = cls.__dict__.get("_cairn_field_plan")
        if plan is None:
            attrs.resolve_types(cls)
            plan = tuple((a.name, _is_plain(a.type)) for a in attrs.fields(cls))
            cls._cairn_field_plan = plan
        return plan

    @classmethod
    def _field_names(cls) -> frozenset[str]:
        return frozenset(name for name, _ in cls._field_plan())

    def canonical(self) -> bytes:
        # Payload fields were checked by their validators; keys are strings.
        return canonical_json(self.to_dict(), check_keys=False)

    @property
    def hash(self) -> str:
        return sha256_hex(self.canonical())

    def text_for_search(self) -> str:
        """Plain text for log filters and token counting."""
        return "\n".join(m.content or "" for m in self.render())


@attrs.frozen
class Instruction(Content):
    content_type: ClassVar[str] = "instruction"
    hints: ClassVar[ContentHints] = ContentHints("system", Priority.PINNED, order=0, compression_priority=0)
    text: str = attrs.field(validator=_text)
    #: A named directive: only the newest instruction of each name on a branch is materialized.
    name: str | None = attrs.field(default=None, validator=attrs.validators.optional(_nonempty_name))

    def render(self) -> tuple[Message, ...]:
        return (Message("system", self.text),)


@attrs.frozen
class Dialogue(Content):
    content_type: ClassVar[str] = "dialogue"
    hints: ClassVar[ContentHints] = ContentHints("user", compression_priority=40)
    role: str = attrs.field(validator=_one_of("user", "assistant", "system"))
    text: str = attrs.field(validator=_text)
    name: str | None = attrs.field(default=None, validator=_optional_text)

    def render(self) -> tuple[Message, ...]:
        return (Message(self.role, self.text, name=self.name),)


@attrs.frozen
class ToolIO(Content):
    content_type: ClassVar[str] = "tool_io"
    hints: ClassVar[ContentHints] = ContentHints("assistant", compression_priority=60)
    tool_name: str = attrs.field(validator=_nonempty_name)
    direction: str = attrs.field(validator=_one_of("call", "result"))
    # A bare dict, not dict[str, Any]: the converter's strict hook for dict (cairn.model.convert) matches
    # exactly this type and refuses a non-table with a clear message; the generic form bypasses it.
    payload: dict = attrs.field(validator=_json_object)  # type: ignore[type-arg]  # see above
    status: str | None = attrs.field(default=None, validator=_one_of("success", "error", optional=True))
    call_id: str | None = attrs.field(default=None, validator=_optional_text)

    def render(self) -> tuple[Message, ...]:
        body = json.dumps(self.payload, ensure_ascii=False, sort_keys=True)
        if self.direction == "call":
            call = ToolCall(self.call_id or "", self.tool_name, body)
            return (Message("assistant", None, tool_calls=(call,)),)
        return (Message("tool", body, name=self.tool_name, tool_call_id=self.call_id, is_error=self.status == "error"),)


@attrs.frozen
class Reasoning(Content):
    content_type: ClassVar[str] = "reasoning"
    hints: ClassVar[ContentHints] = ContentHints("assistant", compression_priority=90, sent_by_default=False)
    text: str = attrs.field(validator=_text)

    def render(self) -> tuple[Message, ...]:
        return (Message("assistant", self.text),)


def _optional_name(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _nonempty_name(instance, attribute, value)


@attrs.frozen
class Artifact(Content):
    """A file the agent made or was given, in one of two forms.

    - **inline**: ``artifact_type`` (``"patch"``, ``"report"`` ...) and its
      text ``content`` (with an optional ``language``), rendered as a fenced
      block;
    - **reference**: ``sha256``, ``name``, ``mime`` and ``size`` of a file
      kept by hash (``cairn artifact put``), optionally with an
      ``artifact_type``.
      It renders as a user turn with a placeholder naming the file; for
      models that take images, ``materialize(..., images=...)`` adds the
      image itself (PNG, JPEG, GIF, WebP).
    """

    content_type: ClassVar[str] = "artifact"
    hints: ClassVar[ContentHints] = ContentHints("assistant", compression_priority=70)
    artifact_type: str | None = attrs.field(default=None, validator=_optional_name)
    content: str | None = attrs.field(default=None, validator=_optional_text)
    language: str | None = attrs.field(default=None, validator=_optional_text)
    # Not "hash": every content item's ``hash`` is already its own identity (``Content.hash``).
    sha256: str | None = attrs.field(default=None, validator=_optional_text)
    name: str | None = attrs.field(default=None, validator=_optional_text)
    mime: str | None = attrs.field(default=None, validator=_optional_text)
    size: int | None = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        reference = (self.sha256, self.name, self.mime, self.size)
        if any(v is not None for v in reference):
            if any(v is None for v in reference):
                raise ValueError("an artifact reference needs sha256, name, mime and size, all four")
            if self.content is not None or self.language is not None:
                raise ValueError("an artifact is either inline (content) or a reference (sha256), not both")
            try:
                # All four are set (checked just above); mypy cannot carry that through any().
                ArtifactRef(self.sha256, self.name, self.mime, self.size)  # type: ignore[arg-type]
            except ValidationError as exc:
                raise ValueError(exc.message) from None
        elif self.artifact_type is None or self.content is None:
            raise ValueError(
                "an inline artifact needs artifact_type and content; a reference needs sha256, name, mime, size"
            )

    @classmethod
    def reference(cls, ref: ArtifactRef, *, artifact_type: str | None = None) -> Artifact:
        """The reference form of a stored file."""
        return cls(artifact_type=artifact_type, sha256=ref.hash, name=ref.name, mime=ref.mime, size=ref.size)

    @property
    def ref(self) -> ArtifactRef | None:
        """The stored file this item points at; None for an inline artifact."""
        if self.sha256 is None:
            return None
        # A reference sets all four or none (__attrs_post_init__ checks it), so sha256 stands for them.
        return ArtifactRef(self.sha256, self.name, self.mime, self.size)  # type: ignore[arg-type]

    def render(self) -> tuple[Message, ...]:
        ref = self.ref
        if ref is not None:
            label = f"{self.artifact_type}: " if self.artifact_type else ""
            return (Message("user", f"[artifact {label}{ref.describe()}]"),)
        fence = "```" + (self.language or "")
        return (Message("assistant", f"[{self.artifact_type}]\n{fence}\n{self.content}\n```"),)


@attrs.frozen
class Image(Content):
    """An image shown to the model: by ``url`` (``https://``, fetched by the provider) or a stored file
    (``sha256``, ``name``, ``mime``, ``size``, as an artifact reference), with optional ``text`` beside it.

    It renders as a user turn whose text names the image (and carries
    ``text``); ``materialize(..., images=...)``, for a model that takes
    images, adds the image itself: the URL as it is, a stored file read and
    sent inline. Without it the placeholder text is all that is sent.
    """

    content_type: ClassVar[str] = "image"
    hints: ClassVar[ContentHints] = ContentHints("user", compression_priority=70)
    url: str | None = attrs.field(default=None, validator=_optional_text)
    sha256: str | None = attrs.field(default=None, validator=_optional_text)
    name: str | None = attrs.field(default=None, validator=_optional_text)
    mime: str | None = attrs.field(default=None, validator=_optional_text)
    size: int | None = attrs.field(default=None)
    text: str | None = attrs.field(default=None, validator=_optional_text)

    def __attrs_post_init__(self) -> None:
        stored = (self.sha256, self.name, self.mime, self.size)
        if self.url is not None:
            if any(v is not None for v in stored):
                raise ValueError("an image is either a url or a stored file (sha256, name, mime, size), not both")
            try:
                check_image_url(self.url)
            except ValidationError as exc:
                raise ValueError(exc.message) from None
            return
        if any(v is None for v in stored):
            raise ValueError("an image needs a url, or sha256, name, mime and size of a stored file")
        try:
            ref = ArtifactRef(self.sha256, self.name, self.mime, self.size)  # type: ignore[arg-type]  # all set (above)
        except ValidationError as exc:
            raise ValueError(exc.message) from None
        if not ref.is_image:
            raise ValueError(f"{self.mime!r} is not an image type providers accept: {', '.join(sorted(IMAGE_TYPES))}")

    @classmethod
    def stored(cls, ref: ArtifactRef, *, text: str | None = None) -> Image:
        """An image kept in the artifact store (``cairn artifact put``)."""
        return cls(sha256=ref.hash, name=ref.name, mime=ref.mime, size=ref.size, text=text)

    @property
    def ref(self) -> ArtifactRef | None:
        """The stored file this image is; None for an image by URL."""
        if self.sha256 is None:
            return None
        return ArtifactRef(self.sha256, self.name, self.mime, self.size)  # type: ignore[arg-type]  # all four set

    def render(self) -> tuple[Message, ...]:
        ref = self.ref
        label = f"[image {ref.describe() if ref is not None else self.url}]"
        return (Message("user", f"{label}\n{self.text}" if self.text else label),)


@attrs.frozen
class Output(Content):
    content_type: ClassVar[str] = "output"
    hints: ClassVar[ContentHints] = ContentHints("assistant", compression_priority=50)
    text: str = attrs.field(validator=_text)
    format: str = attrs.field(default="text", validator=_one_of("text", "markdown", "json"))

    def render(self) -> tuple[Message, ...]:
        return (Message("assistant", self.text),)


@attrs.frozen
class Freeform(Content):
    content_type: ClassVar[str] = "freeform"
    hints: ClassVar[ContentHints] = ContentHints("user", compression_priority=50)
    # Bare dict, for the converter's strict hook: see ToolIO.payload.
    payload: dict = attrs.field(validator=_json_object)  # type: ignore[type-arg]

    def render(self) -> tuple[Message, ...]:
        return (Message("user", json.dumps(self.payload, ensure_ascii=False, sort_keys=True)),)


BUILTIN_CONTENT_TYPES: tuple[type[Content], ...] = (
    Instruction,
    Dialogue,
    ToolIO,
    Reasoning,
    Artifact,
    Output,
    Freeform,
    Image,
)


@attrs.frozen
class UnknownContent(Content):
    """Content of a type no installed plugin provides, kept exactly as stored.

    It hashes to the same value it was stored under and renders as its JSON, so
    uninstalling a plugin never loses or rewrites history.
    """

    hints: ClassVar[ContentHints] = ContentHints("user")
    raw: dict[str, Any] = attrs.field()

    @property
    # The base declares a class variable; an unknown item's tag is per instance, read from what was stored.
    def content_type(self) -> str:  # type: ignore[override]
        return str(self.raw.get("content_type"))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)

    def render(self) -> tuple[Message, ...]:
        return (Message("user", canonical_json(self.raw).decode("utf-8")),)


class ContentTypes:
    """The content types known to one kernel: decode stored dicts, validate new items."""

    def __init__(self) -> None:
        self._types: dict[str, type[Content]] = {}
        self._owners: dict[str, str] = {}

    def register(self, cls: type[Content], *, plugin: str = "?") -> None:
        if not (isinstance(cls, type) and attrs.has(cls) and issubclass(cls, Content)):
            raise ValidationError(
                f"content type must be an attrs class deriving from cairn.model.Content, got {cls!r}",
                what=plugin,
            )
        tag = getattr(cls, "content_type", None)
        if not isinstance(tag, str) or not tag:
            raise ValidationError(f"{cls.__name__} sets no content_type tag", what=plugin)
        if not isinstance(getattr(cls, "hints", None), ContentHints):
            raise ValidationError(f"{cls.__name__} sets no ContentHints in 'hints'", what=plugin)
        if tag in self._types and self._types[tag] is not cls:
            raise DuplicateNameError("content type", tag, self._owners[tag], plugin)
        self._types[tag] = cls
        self._owners[tag] = plugin

    def drop_owner(self, plugin: str) -> None:
        """Forget every type ``plugin`` registered (it turned out broken)."""
        for tag in [t for t, owner in self._owners.items() if owner == plugin]:
            del self._types[tag], self._owners[tag]

    def names(self) -> list[str]:
        return sorted(self._types)

    def get(self, tag: str) -> type[Content]:
        try:
            return self._types[tag]
        except KeyError:
            raise ValidationError(
                f"unknown content type {tag!r}",
                hint=f"known types: {', '.join(self.names())}",
            ) from None

    def owner(self, tag: str) -> str:
        return self._owners[tag]

    def create(self, data: Mapping[str, Any]) -> Content:
        """Validate a new item given as a dict with a ``content_type`` key; unknown types are refused."""
        if not isinstance(data, Mapping):
            raise ValidationError(f"content must be a JSON object, got {type(data).__name__}")
        fields = dict(data)
        tag = fields.pop("content_type", None)
        if tag is None:
            raise ValidationError("content has no content_type", hint=f"one of: {', '.join(self.names())}")
        cls = self.get(tag)
        return structure(fields, cls, what=tag)

    def decode(self, data: Mapping[str, Any]) -> Content:
        """Read a stored item back; an unknown or no longer valid type is preserved as ``UnknownContent``."""
        tag = data.get("content_type")
        cls = self._types.get(tag) if isinstance(tag, str) else None
        if cls is None:
            return UnknownContent(dict(data))
        fields = {k: v for k, v in data.items() if k != "content_type"}
        try:
            if fields.keys() <= cls._field_names():
                # Stored items were structured on the way in: the constructor and
                # its validators are enough, and much cheaper than cattrs.
                item = cls(**fields)
            else:
                return UnknownContent(dict(data))
        except (TypeError, ValueError):
            return UnknownContent(dict(data))
        if item.to_dict() != dict(data):  # e.g. a default written out differently
            return UnknownContent(dict(data))
        return item

    def decode_bytes(self, blob: bytes) -> Content:
        return self.decode(json.loads(blob))

    def __iter__(self) -> Iterable[type[Content]]:
        return iter(self._types.values())

    def __contains__(self, tag: object) -> bool:
        return tag in self._types
