"""What every facet shares: the ``Facet`` base, declaring facets, and asking for one.

A backend is one class that inherits the facet contracts it implements
(``class MyStore(ObjectStore, RefStore, AnnotationStore)``). Inheriting a
contract *is* the declaration: ``facets_of(store)`` lists them, and
``require(store, RunStore)`` hands back the store typed as that facet, or
raises ``MissingFacetError`` naming the backend and what it lacks.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from cairn.errors import MissingFacetError

__all__ = ["Facet", "backend_name", "facets_of", "require"]

F = TypeVar("F", bound="Facet")


class Facet:
    """Base of every storage contract: lifecycle and the backend's name.

    ``facet`` names the contract (``"objects"``, ``"ledger"`` ...) and
    ``holds`` says in a few words what it keeps, for error messages. A
    backend sets ``name`` to the name it registers under, so errors can say
    which backend lacks a facet.
    """

    facet: ClassVar[str] = ""
    holds: ClassVar[str] = ""
    #: How an error says a backend lacks it, when "does not keep <holds>" reads badly.
    lacks: ClassVar[str] = ""
    #: The name the backend registers under (``"sqlite"``); errors use it.
    name: ClassVar[str] = ""
    #: False for a backend that keeps nothing once closed (an in-process store).
    persistent: ClassVar[bool] = True

    def close(self) -> None:  # optional: a backend holding nothing keeps this no-op
        """Release connections and locks. The store is unusable afterwards."""
        return None

    def __enter__(self: F) -> F:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def facets_of(store: Any) -> frozenset[str]:
    """The names of the facets ``store`` (an instance or a class) provides."""
    cls = store if isinstance(store, type) else type(store)
    return frozenset(vars(c)["facet"] for c in cls.__mro__ if vars(c).get("facet"))


def backend_name(store: Any) -> str:
    """The name a store's errors use: its registered ``name``, else its class name."""
    cls = store if isinstance(store, type) else type(store)
    return getattr(cls, "name", "") or cls.__name__


def require(store: Any, facet: type[F], *, doing: str | None = None) -> F:
    """``store`` as the ``facet`` contract, or ``MissingFacetError`` naming the backend and the facet.

    ``doing`` says what needed it (``"cairn runs list"``), for the message.
    """
    if isinstance(store, facet):
        return store
    raise MissingFacetError(backend_name(store), facet.facet, facet.holds, doing=doing, lacks=facet.lacks or None)
