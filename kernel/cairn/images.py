"""Images for models that take them: artifact references in context, shown as image parts.

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

from cairn.model import Artifact, Content, ImagePart, Message
from cairn.model.artifacts import ArtifactRef

__all__ = ["MAX_IMAGE_BYTES", "ImageReader", "anthropic_image_block", "openai_image_part", "with_images"]

#: The largest image sent (Anthropic's API limit per image is 5 MB); larger ones stay placeholders.
MAX_IMAGE_BYTES = 5 * 1000 * 1000

#: Reads a referenced file's bytes, verified; None when this machine does not have it.
ImageReader = Callable[[ArtifactRef], "bytes | None"]


def with_images(messages: tuple[Message, ...], content: Content, read: ImageReader | None) -> tuple[Message, ...]:
    """``messages`` (``content`` rendered) with the image a reference points at, when ``read`` is given."""
    if read is None or not isinstance(content, Artifact):
        return messages
    ref = content.ref
    if ref is None or not ref.is_image or ref.size > MAX_IMAGE_BYTES:
        return messages
    data = read(ref)
    if data is None or len(data) > MAX_IMAGE_BYTES:
        return messages
    image = ImagePart(ref.mime, data, ref.name)
    return tuple(attrs.evolve(m, images=(*m.images, image)) if m.role == "user" else m for m in messages)


def _base64(image: ImagePart) -> str:
    return base64.b64encode(image.data).decode("ascii")


def openai_image_part(image: ImagePart) -> dict[str, Any]:
    """An OpenAI Chat Completions image content part, the image inline as a data URL."""
    return {"type": "image_url", "image_url": {"url": f"data:{image.mime};base64,{_base64(image)}"}}


def anthropic_image_block(image: ImagePart) -> dict[str, Any]:
    """An Anthropic Messages image content block, the image inline as base64."""
    return {"type": "image", "source": {"type": "base64", "media_type": image.mime, "data": _base64(image)}}
