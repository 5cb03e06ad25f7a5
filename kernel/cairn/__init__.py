"""cairn: a plugin microkernel for LLM agent infrastructure.

``import cairn`` stays light: heavy parts load when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Read from the installed metadata on first use (see __getattr__ and cairn._version),
# so ``import cairn`` does not pay for importlib.metadata.
__version__: str

__all__ = ["__version__", "bootstrap", "idempotent", "open"]

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


def bootstrap(path: Any = None, **options: Any) -> dict[str, Any]:
    """The project's bootstrap state (empty, blocked or ready, and why), read with no network.

    See ``cairn.bootstrap_state.bootstrap`` and docs/bootstrap.md for the fields.
    """
    from cairn.bootstrap_state import bootstrap as read_state

    return read_state(path, **options)


def idempotent(key: str, action: Any, *, store: Any = None, path: Any = None, fingerprint: str | None = None) -> Any:
    """``action()``'s result, done at most once per ``key`` across processes and machines sharing the store.

    A repeat returns the result recorded the first time instead of acting
    again. ``store``: a store with the ``nonces`` facet (default: the
    project's at ``path``, found from the working directory). Keys lapse
    after ``[policy] idempotency_ttl``. See ``cairn.idempotency``.
    """
    from cairn.idempotency import Idempotency

    if store is not None:
        return Idempotency(store).run(key, action, fingerprint=fingerprint).result
    from cairn.config import load_config
    from cairn.config_tables import PolicySettings
    from cairn.plugins import load_plugins

    config = load_config(path)
    settings = config.settings("policy", PolicySettings)
    opened = load_plugins(disabled=config.cairn.disabled_plugins).create("storage", config.cairn.storage, config)
    try:
        once = Idempotency(opened, ttl=settings.idempotency_ttl, claim_ttl=settings.claim_ttl)
        return once.run(key, action, fingerprint=fingerprint).result
    finally:
        opened.close()
