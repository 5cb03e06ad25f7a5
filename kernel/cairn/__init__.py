"""cairn: a plugin microkernel for LLM agent infrastructure.

``import cairn`` stays light: heavy parts load when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "open"]

if TYPE_CHECKING:  # pragma: no cover
    from cairn.repo import Repo


def open(path: Any = None, **options: Any) -> Repo:
    """Open the project's context repository over its configured store and tokenizer.

    See ``cairn.repo.open_repo`` for the options.
    """
    from cairn.repo import open_repo

    return open_repo(path, **options)
