"""The kernel's version: one source, ``version`` in the distribution's pyproject.toml.

Read from the installed metadata on first use and kept, so ``import cairn``
never pays for ``importlib.metadata``. Kernel modules ask here rather than
``from cairn import __version__``: the package ``cairn`` imports the context
engine (``cairn.open``), and a module that imported the package back would
close an import cycle.
"""

from __future__ import annotations

__all__ = ["kernel_version"]

_version: str | None = None


def kernel_version() -> str:
    """The installed ``cairn`` distribution's version."""
    global _version
    if _version is None:
        import importlib.metadata

        _version = importlib.metadata.version("cairn")
    return _version
