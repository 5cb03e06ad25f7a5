"""cairn: a plugin microkernel for LLM agent infrastructure.

``import cairn`` stays light: heavy parts load when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Read from the installed metadata on first use (see __getattr__ and cairn._version),
# so ``import cairn`` does not pay for importlib.metadata.
__version__: str

__all__ = ["__version__", "open"]

if TYPE_CHECKING:  # pragma: no cover
    from cairn.repo import Repo


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from cairn._version import kernel_version

        version = kernel_version()
        globals()["__version__"] = version  # later reads are a plain attribute
        return version
    raise AttributeError(f"module 'cairn' has no attribute {name!r}")


def open(path: Any = None, **options: Any) -> Repo:
    """Open the project's context repository over its configured store and tokenizer.

    See ``cairn.repo.open_repo`` for the options.
    """
    from cairn.repo import open_repo

    return open_repo(path, **options)
