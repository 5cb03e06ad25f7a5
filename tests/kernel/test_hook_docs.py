"""Every hookspec is documented in docs/hooks.md with its exact signature, and has a test.

"Documented": a heading whose text is the hook name, and in that section a
code block with the line ``name(arg, ...)``, built from ``inspect.signature``.
"Has a test": the hook name appears in a Python file under ``tests/``,
``plugins/*/tests/`` or ``contrib/*/tests/`` other than this one.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from cairn import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS_DOC = ROOT / "docs" / "hooks.md"
SPEC_MARK = f"{hookspecs.PROJECT_NAME}_spec"  # the attribute pluggy's HookspecMarker sets


def hook_specs() -> dict[str, object]:
    """Every function in ``cairn.hookspecs`` marked as a hookspec, by name."""
    return {
        name: function
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, SPEC_MARK)
    }


HOOKS = hook_specs()


def call_signature(function: object) -> str:
    """``name(arg, ...)``: the signature as a plugin author writes the implementation, no annotations."""
    signature = inspect.signature(function)  # type: ignore[arg-type]
    bare = signature.replace(
        parameters=[p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()],
        return_annotation=inspect.Signature.empty,
    )
    return f"{function.__name__}{bare}"  # type: ignore[attr-defined]


def doc_sections(text: str) -> dict[str, str]:
    """Markdown sections by heading text (backticks stripped): ``{"cairn_register_storage": body}``."""
    sections: dict[str, str] = {}
    matches = list(re.finditer(r"^(#{1,6})\s+`?([^`\n]+?)`?\s*$", text, flags=re.MULTILINE))
    for index, match in enumerate(matches):
        level = len(match.group(1))
        end = len(text)
        for later in matches[index + 1 :]:
            if len(later.group(1)) <= level:
                end = later.start()
                break
        sections[match.group(2).strip()] = text[match.end() : end]
    return sections


def code_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)


def test_the_hookspecs_are_found() -> None:
    # Guards the tests below against passing vacuously if discovery found nothing.
    assert "cairn_register_storage" in HOOKS
    assert "cairn_register_content_types" in HOOKS
    assert all(name.startswith("cairn_") for name in HOOKS)


def test_call_signature_drops_annotations() -> None:
    assert call_signature(hookspecs.cairn_register_storage) == "cairn_register_storage(register)"
    assert call_signature(hookspecs.cairn_commit_created) == "cairn_commit_created(commit, branch)"


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_is_documented_with_its_signature(name: str) -> None:
    assert HOOKS_DOC.is_file(), f"{HOOKS_DOC} is missing"
    sections = doc_sections(HOOKS_DOC.read_text(encoding="utf-8"))
    assert name in sections, f"docs/hooks.md has no section headed {name}"
    signature = call_signature(HOOKS[name])
    blocks = code_blocks(sections[name])
    # A line of its own, so a `def` in an example cannot stand in for the signature.
    lines = {line.strip() for block in blocks for line in block.splitlines()}
    assert signature in lines, (
        f"the {name} section of docs/hooks.md shows no code block with the exact signature {signature} on a line"
    )


def test_docs_describe_no_hook_that_does_not_exist() -> None:
    sections = doc_sections(HOOKS_DOC.read_text(encoding="utf-8"))
    stale = [title for title in sections if re.fullmatch(r"cairn_\w+", title) and title not in HOOKS]
    assert stale == [], f"docs/hooks.md documents hooks that cairn.hookspecs does not define: {stale}"


def candidate_test_files() -> list[Path]:
    """Python files under the test directories of the kernel, the plugins and contrib, this one excluded."""
    roots = [ROOT / "tests", *ROOT.glob("plugins/*/tests"), *ROOT.glob("contrib/*/tests")]
    me = Path(__file__).resolve()
    return [
        path
        for root in roots
        for path in sorted(root.rglob("*.py"))
        if path.resolve() != me and "__pycache__" not in path.parts
    ]


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_has_a_test(name: str) -> None:
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    users = [p for p in candidate_test_files() if pattern.search(p.read_text(encoding="utf-8", errors="replace"))]
    assert users, f"no test file under tests/, plugins/*/tests/ or contrib/*/tests/ mentions {name}"
