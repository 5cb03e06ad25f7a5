"""Images for models that take them: ``image`` items and artifact references in context, shown as image parts.

An ``image`` item (by ``https://`` URL, or a stored file) renders as a user
turn whose text names the image; for a model that takes images it also
carries the image: the URL as it is (OpenAI ``image_url`` with that URL,
Anthropic ``{"type": "url", "url": ...}`` source), a stored file as below.

An ``artifact`` content item in its reference form renders as a user turn
whose text names the file (``[artifact chart.png (image/png, 12.0 KiB,
sha256 …)]``). When ``materialize`` is given an image reader (``images=``,
for a model that accepts images), each reference to a PNG, JPEG, GIF or
WebP of at most ``MAX_IMAGE_BYTES`` also carries the image itself
(``Message.images``), which the formats render as each provider documents:

- OpenAI Chat Completions: the user message's ``content`` becomes a list of
  parts, ``{"type": "text", "text": ...}`` then
  ``{"type": "image_url", "image_url": {"url": "data:<mime>;base64,<data>"}}``;
- Anthropic Messages: the user turn gets ``{"type": "image", "source":
  {"type": "base64", "media_type": <mime>, "data": <data>}}`` after the
  text block.

Everything else (other types, larger images, models that take no images,
an image this machine does not have) keeps the text placeholder. Both
providers accept images only from the user, so images are rendered on user
turns only. Token counts are those of the placeholder text: what an image
costs is the provider's to say, and it differs by provider and size.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import attrs

from cairn.model import Artifact, Content, Image, ImagePart, Message
from cairn.model.artifacts import ArtifactRef

__all__ = ["MAX_IMAGE_BYTES", "ImageReader", "anthropic_image_block", "openai_image_part", "with_images"]

#: The largest image sent (Anthropic's API limit per image is 5 MB); larger ones stay placeholders.
MAX_IMAGE_BYTES = 5 * 1000 * 1000

#: Reads a referenced file's bytes, verified; None when this machine does not have it.
ImageReader = Callable[[ArtifactRef], "bytes | None"]


def with_images(messages: tuple[Message, ...], content: Content, read: ImageReader | None) -> tuple[Message, ...]:
    """``messages`` (``content`` rendered) with the image ``content`` shows, when ``read`` is given.

    An ``image`` by URL carries the URL (the provider fetches it); an
    ``image`` of a stored file, or an ``artifact`` reference to an image,
    carries the bytes ``read`` returns.
    """
    if read is None:
        return messages
    if isinstance(content, Image) and content.url is not None:
        image = ImagePart(content.mime or "", name=content.url, url=content.url)
    elif isinstance(content, (Artifact, Image)):
        ref = content.ref
        if ref is None or not ref.is_image or ref.size > MAX_IMAGE_BYTES:
            return messages
        data = read(ref)
        if data is None or len(data) > MAX_IMAGE_BYTES:
            return messages
        image = ImagePart(ref.mime, data, ref.name)
    else:
        return messages
    return tuple(attrs.evolve(m, images=(*m.images, image)) if m.role == "user" else m for m in messages)


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def openai_image_part(image: ImagePart) -> dict[str, Any]:
    """An OpenAI Chat Completions image content part: the URL, or the image inline as a data URL."""
    if image.url is not None:
        return {"type": "image_url", "image_url": {"url": image.url}}
    assert image.data is not None  # an image part has data or a url (ImagePart checks)
    return {"type": "image_url", "image_url": {"url": f"data:{image.mime};base64,{_base64(image.data)}"}}


def anthropic_image_block(image: ImagePart) -> dict[str, Any]:
    """An Anthropic Messages image content block: a URL source, or the image inline as base64."""
    if image.url is not None:
        return {"type": "image", "source": {"type": "url", "url": image.url}}
    assert image.data is not None  # as above
    return {"type": "image", "source": {"type": "base64", "media_type": image.mime, "data": _base64(image.data)}}
