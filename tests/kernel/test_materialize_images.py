"""Artifact references in context: a placeholder for everyone, the image itself for models that take images."""

from __future__ import annotations

import base64
import hashlib

import pytest

from cairn.errors import ValidationError
from cairn.images import MAX_IMAGE_BYTES
from cairn.materialize import to_anthropic, to_openai
from cairn.model import Artifact, ImagePart, Message
from cairn.model.artifacts import ArtifactRef

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def ref_of(data: bytes, name: str = "chart.png", mime: str = "image/png") -> ArtifactRef:
    return ArtifactRef(hashlib.sha256(data).hexdigest(), name, mime, len(data))


def placeholder(ref: ArtifactRef) -> str:
    return f"[artifact {ref.describe()}]"


@pytest.fixture
def chart(repo) -> ArtifactRef:
    repo.append({"content_type": "instruction", "text": "Describe what you are shown."})
    ref = ref_of(PNG)
    repo.append(Artifact.reference(ref))
    return ref


def test_without_images_a_reference_is_a_user_turn_naming_the_file(repo, chart) -> None:
    result = repo.materialize(format="openai")
    assert result.messages[-1] == {"role": "user", "content": placeholder(chart)}
    assert placeholder(chart) == f"[artifact chart.png (image/png, 72 B, sha256 {chart.hash[:12]})]"
    assert repo.materialize(format="text").messages.endswith(f"user: {placeholder(chart)}")


def test_openai_gets_a_text_part_and_a_data_url_image_part(repo, chart) -> None:
    reads = []

    def read(ref: ArtifactRef) -> bytes:
        reads.append(ref)
        return PNG

    message = repo.materialize(format="openai", images=read).messages[-1]
    assert reads == [chart]
    assert message == {
        "role": "user",
        "content": [
            {"type": "text", "text": placeholder(chart)},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}},
        ],
    }


def test_anthropic_gets_a_text_block_and_a_base64_image_block(repo, chart) -> None:
    out = repo.materialize(format="anthropic", images=lambda ref: PNG).messages
    assert out["system"] == "Describe what you are shown."
    assert out["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": placeholder(chart)},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()},
                },
            ],
        }
    ]


def test_tokens_are_those_of_the_placeholder(repo, chart) -> None:
    assert repo.materialize(images=lambda ref: PNG).token_count == repo.materialize().token_count


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        (ref_of(b"%PDF-1.7", "report.pdf", "application/pdf"), "not an image"),
        (ref_of(b"<svg/>", "logo.svg", "image/svg+xml"), "an image type providers do not take"),
        (ArtifactRef("a" * 64, "huge.png", "image/png", MAX_IMAGE_BYTES + 1), "too large"),
    ],
)
def test_files_models_cannot_be_shown_stay_placeholders(repo, ref: ArtifactRef, why: str) -> None:
    repo.append(Artifact.reference(ref))

    def read(asked: ArtifactRef) -> bytes:
        raise AssertionError(f"read {asked.name}, which is {why}")

    assert repo.materialize(images=read).messages[-1] == {"role": "user", "content": placeholder(ref)}


def test_an_image_this_machine_lacks_stays_a_placeholder(repo, chart) -> None:
    assert repo.materialize(images=lambda ref: None).messages[-1] == {"role": "user", "content": placeholder(chart)}


def test_images_go_on_user_turns_only() -> None:
    image = ImagePart("image/png", PNG, "chart.png")
    said = Message("assistant", "here is a chart", images=(image,))
    assert to_openai([said]) == [{"role": "assistant", "content": "here is a chart"}]
    assert to_anthropic([Message("user", "hi"), said])["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "here is a chart"}],
    }


def test_an_image_part_takes_only_image_types_providers_accept() -> None:
    with pytest.raises(ValidationError, match="image type"):
        ImagePart("image/svg+xml", b"<svg/>")


def test_the_reference_form_is_checked(content_types) -> None:
    ok = {"content_type": "artifact", "sha256": "b" * 64, "name": "n.png", "mime": "image/png", "size": 3}
    assert content_types.create(ok).ref == ArtifactRef("b" * 64, "n.png", "image/png", 3)
    for broken, message in [
        ({**ok, "sha256": "../../etc"}, "not a SHA-256 hash"),
        ({k: v for k, v in ok.items() if k != "size"}, "all four"),
        ({**ok, "content": "both"}, "not both"),
        ({**ok, "mime": "Image/PNG"}, "lowercase"),
        ({**ok, "size": -1}, "byte count"),
    ]:
        with pytest.raises(ValidationError, match=message):
            content_types.create(broken)
    inline = content_types.create({"content_type": "artifact", "artifact_type": "patch", "content": "diff"})
    assert inline.ref is None and inline.to_dict() == {
        "artifact_type": "patch",
        "content": "diff",
        "content_type": "artifact",
    }
