"""The data model: attrs frozen classes, one cattrs converter, canonical hashing.

This package imports nothing of cairn but ``cairn.errors`` (a leaf), so any
layer can use it.
"""

from cairn.model.artifacts import ArtifactRecord, ArtifactRef, SnapshotRecord
from cairn.model.canonical import (
    canonical_json,
    format_time,
    is_hash,
    now,
    parse_time,
    sha256_hex,
    value_hash,
)
from cairn.model.commit import (
    MAX_COUNT,
    Annotation,
    Commit,
    Operation,
    skip_depth,
    validate_branch_name,
    validate_name,
    validate_ref_text,
)
from cairn.model.content import (
    BUILTIN_CONTENT_TYPES,
    Artifact,
    Content,
    ContentHints,
    ContentTypes,
    Dialogue,
    Freeform,
    Image,
    ImagePart,
    Instruction,
    Message,
    Output,
    Priority,
    Reasoning,
    ToolCall,
    ToolIO,
    UnknownContent,
)
from cairn.model.convert import converter, structure, unstructure
from cairn.model.ledger import RUN_STATUSES, Run, RunEvent, SpendRecord, new_run_id, validate_run_id

__all__ = [
    "MAX_COUNT",
    "RUN_STATUSES",
    "Run",
    "RunEvent",
    "SpendRecord",
    "new_run_id",
    "validate_run_id",
    "Annotation",
    "Artifact",
    "ArtifactRecord",
    "ArtifactRef",
    "BUILTIN_CONTENT_TYPES",
    "Commit",
    "Content",
    "ContentHints",
    "ContentTypes",
    "Dialogue",
    "Freeform",
    "Image",
    "ImagePart",
    "Instruction",
    "Message",
    "Operation",
    "Output",
    "Priority",
    "Reasoning",
    "SnapshotRecord",
    "ToolCall",
    "ToolIO",
    "UnknownContent",
    "canonical_json",
    "converter",
    "format_time",
    "is_hash",
    "now",
    "parse_time",
    "sha256_hex",
    "skip_depth",
    "structure",
    "unstructure",
    "validate_branch_name",
    "validate_name",
    "validate_ref_text",
    "value_hash",
]
