"""The vector-index contract: top-k cosine search over vectors keyed by string ids.

An index plugin registers a factory through ``cairn_register_vector_indexes``;
the factory, called as ``factory(config, context)`` like every backend's,
returns a ``VectorIndexOpener``. The kernel then opens (or creates) the index
at a path it chooses, naming the embedder that made the vectors::

    opener = plugins.create("vector_indexes", "exact", config)
    with opener.open(path, EmbedderIdentity("local", "hashing", 512)) as index:
        index.add(["a", "b"], [[...], [...]])
        index.persist()
        index.search(query, k=10)          # [Hit(id="b", score=0.83), ...]

The rules every index keeps (``cairn.testing.index_suite`` checks each one):

- Vectors are compared by cosine similarity. An index normalises what it is
  given (at insert and for the query), so callers need not; a zero vector
  has no direction and is refused.
- ``add`` with an id the index already holds *replaces* its vector (a
  re-embedded document keeps its id). Ids in one batch must be distinct.
- Changes are durable once ``persist()`` returns; ``close()`` persists too.
  A process killed during ``add`` or ``persist`` never leaves an index that
  fails to open: it opens as of the last completed ``persist``.
- Bad input (NaN or infinite components, wrong dimensions, empty or
  duplicate ids, ``k`` out of range, a query of the wrong size) raises
  ``ValidationError`` and changes nothing.
- An index remembers the ``EmbedderIdentity`` it was built with. Opening it
  for another (a different provider, model or dimension count) raises
  ``EmbedderMismatchError``, whose hint names ``cairn memory reindex``.
- ``search`` returns at most ``k`` hits, best first, each with the cosine of
  the stored vector and the query: ``min(k, candidates)`` hits, where the
  candidates are the ids held (and allowed by the filter). An exact index
  returns the true top ``k``; an approximate one says what recall it
  promises (see docs/vector-indexes.md).
- The filter is a collection of allowed ids (a ``set``, ``frozenset`` or
  ``dict`` keys): what both a brute-force scan (score only those rows) and a
  graph index (search, then keep the allowed) can honour without calling
  back into Python once per stored vector. Ids it names that the index does
  not hold are ignored.

The helpers below (``check_ids``, ``prepare_vectors``, ``prepare_query``,
``check_k``, ``check_filter``) implement these checks once so every index
refuses the same input with the same words. They import NumPy when called,
never at import: index plugins depend on NumPy, the kernel does not.
"""

from __future__ import annotations

import abc
import unicodedata
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import attrs

from cairn.errors import EmbedderMismatchError, ValidationError
from cairn.model.embedding import MAX_DIMENSIONS, EmbedderIdentity

if TYPE_CHECKING:  # numpy is imported by the helpers that use it, when they run
    import numpy as np
    import numpy.typing as npt

    from cairn.config import Config
    from cairn.plugins import Plugins

__all__ = [
    "MAX_DIMENSIONS",
    "MAX_ID_LENGTH",
    "MAX_K",
    "REINDEX_COMMAND",
    "EmbedderIdentity",
    "EmbedderMismatchError",
    "Hit",
    "IndexStats",
    "VectorIndex",
    "VectorIndexOpener",
    "check_filter",
    "check_identity",
    "check_ids",
    "check_k",
    "open_vector_index",
    "prepare_query",
    "prepare_vectors",
]

#: The command that rebuilds indexes from the stored texts with the configured embedder.
REINDEX_COMMAND = "cairn memory reindex"
#: Largest ``k`` a search accepts: more is a mistake (a listing, not a search).
MAX_K = 10_000
#: Longest id, in characters.
MAX_ID_LENGTH = 1024


class Hit(NamedTuple):
    """One search result: the id and the cosine similarity of its vector to the query, in [-1, 1]."""

    id: str
    score: float


@attrs.frozen
class IndexStats:
    """What an index holds: live vectors, their size, bytes on disk, and who embedded them."""

    #: The index implementation's registered name (``exact``, ``hnsw``).
    kind: str
    #: Ids held (replaced and removed ones not counted).
    count: int
    dimensions: int
    #: Bytes the index takes on disk (after the last ``persist``).
    bytes: int
    identity: EmbedderIdentity
    path: str
    #: Implementation details worth showing (graph parameters, dead rows awaiting compaction).
    details: Mapping[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "count": self.count,
            "dimensions": self.dimensions,
            "bytes": self.bytes,
            "identity": self.identity.to_dict(),
            "path": self.path,
            "details": dict(self.details),
        }


class VectorIndex(abc.ABC):
    """An open index.

    One index object may be called from several threads (an implementation
    serialises calls with a lock, or is safe without). Two processes may open
    the same index; a ``persist`` that would overwrite changes another
    process persisted since this one opened it raises ``ConflictError``
    instead (reopen and apply the changes again).
    """

    #: The implementation's registered name.
    kind: ClassVar[str]
    #: The embedder the index was built with.
    identity: EmbedderIdentity
    #: Where the index lives (a directory the index owns).
    path: Path

    @abc.abstractmethod
    def add(self, ids: Sequence[str], vectors: Any) -> None:
        """Add one vector per id (a 2-D array-like, one row per id); an id already held is replaced."""

    @abc.abstractmethod
    def remove(self, ids: Sequence[str]) -> int:
        """Remove these ids; ids the index does not hold are ignored. Returns how many were removed."""

    @abc.abstractmethod
    def search(self, query: Any, k: int, *, filter: Collection[str] | None = None) -> list[Hit]:
        """The ``k`` ids most similar to ``query``, best first; only ids in ``filter`` when given."""

    @abc.abstractmethod
    def persist(self) -> None:
        """Make every change so far durable, atomically: after a crash the index opens as before or after."""

    @abc.abstractmethod
    def stats(self) -> IndexStats:
        """Count, dimensions, bytes on disk, embedder identity."""

    @abc.abstractmethod
    def close(self) -> None:
        """Persist pending changes and release files and memory; further calls raise ``StorageError``."""

    @abc.abstractmethod
    def __contains__(self, id: object) -> bool:
        """Whether the index holds ``id``."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """How many ids the index holds."""

    def __enter__(self) -> VectorIndex:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


class VectorIndexOpener(abc.ABC):
    """What a vector-index factory returns: opens or creates indexes with the backend's settings."""

    #: The implementation's registered name.
    kind: ClassVar[str]

    @abc.abstractmethod
    def open(self, path: Path, identity: EmbedderIdentity) -> VectorIndex:
        """Open the index at ``path``, creating it (and its directory) when nothing is there.

        Raises ``EmbedderMismatchError`` when the index there was built with
        another identity, ``ValidationError`` when ``path`` holds an index of
        another kind or something that is not an index, and ``IntegrityError``
        when its files are damaged (not by a crash: those are recovered).
        """


# -- the checks every index applies ----------------------------------------------------


def check_identity(stored: EmbedderIdentity, wanted: EmbedderIdentity, path: Path | str) -> None:
    """Raise ``EmbedderMismatchError`` unless the index at ``path`` was built by ``wanted``."""
    if stored != wanted:
        raise EmbedderMismatchError(str(path), stored.describe(), wanted.describe(), REINDEX_COMMAND)


def _bad_id_reason(value: object) -> str | None:
    if not isinstance(value, str):
        return f"is {type(value).__name__}, not a string"
    if not value:
        return "is empty"
    if len(value) > MAX_ID_LENGTH:
        return f"is {len(value)} characters long, over the limit of {MAX_ID_LENGTH}"
    if value.isascii() and value.isprintable():
        return None  # the common case (hashes, slugs), without a look-up per character
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs"):
            return f"holds the control or surrogate character {char!r}"
    return None


def check_ids(ids: Iterable[str], *, what: str = "ids") -> list[str]:
    """The ids as a list, after checking each is a non-empty string without control characters and
    that none repeats; ``ValidationError`` names the first bad one and its position."""
    if isinstance(ids, (str, bytes)):
        raise ValidationError("expected a list of ids, got a single string", what=what, hint="wrap it: [id]")
    out = list(ids)
    seen: dict[str, int] = {}
    for position, value in enumerate(out):
        reason = _bad_id_reason(value)
        if reason is not None:
            raise ValidationError(
                f"id {position} ({value!r:.60}) {reason}",
                what=what,
                hint=f"ids are 1 to {MAX_ID_LENGTH} characters, without control characters",
            )
        first = seen.setdefault(value, position)
        if first != position:
            raise ValidationError(f"id {value!r:.60} appears twice in one batch (at {first} and {position})", what=what)
    return out


def check_k(k: object) -> int:
    """``k`` as an int from 1 to ``MAX_K``."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValidationError(f"k must be a whole number, got {k!r}", what="search")
    if k <= 0:
        raise ValidationError(f"k must be at least 1, got {k}", what="search")
    if k > MAX_K:
        raise ValidationError(
            f"k must be at most {MAX_K}, got {k}", what="search", hint="page through results instead of one huge k"
        )
    return k


def check_filter(allowed: Collection[str] | None) -> frozenset[str] | set[str] | None:
    """The allowed ids as a set (None: everything is allowed)."""
    if allowed is None:
        return None
    if isinstance(allowed, (str, bytes)) or not isinstance(allowed, Collection):
        raise ValidationError(
            f"filter must be a collection of ids (a set), got {type(allowed).__name__}",
            what="search",
            hint="pass filter={id1, id2}; predicates are not supported, see docs/vector-indexes.md",
        )
    out = allowed if isinstance(allowed, (set, frozenset)) else set(allowed)
    for value in out:
        if not isinstance(value, str):
            raise ValidationError(f"filter holds {value!r}, which is not a string id", what="search")
    return out


def _as_float64(vectors: Any, what: str) -> np.ndarray:
    """The numbers as a float64 array (norms are taken in float64: squaring a large float32 overflows)."""
    import numpy as np

    try:
        raw = np.asarray(vectors)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise ValidationError(f"cannot read the vectors as a matrix: {exc}", what=what) from None
    if not (np.issubdtype(raw.dtype, np.floating) or np.issubdtype(raw.dtype, np.integer)):
        raise ValidationError(f"vectors must hold numbers, got an array of {raw.dtype}", what=what)
    wide = raw.astype(np.float64, copy=False)
    if not np.isfinite(wide).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(wide))[0])
        raise ValidationError(
            f"component {bad} is {float(wide[bad])!r}: vectors must be finite (no NaN or infinity)",
            what=what,
            hint="check the embedder's output; nothing was stored",
        )
    return wide


def _normalised(wide: np.ndarray, what: str, label: str) -> npt.NDArray[np.float32]:
    """Unit rows in float32; a zero row is refused."""
    import numpy as np

    # Scale by the largest component first, so the norm cannot overflow or underflow.
    scale = np.abs(wide).max(axis=-1, keepdims=True)
    zero = scale[..., 0] == 0
    if np.any(zero):
        where = f" (row {int(np.argwhere(zero)[0][0])})" if wide.ndim == 2 else ""
        raise ValidationError(
            f"{label}{where} is all zeros: it has no direction, so it has no cosine with anything",
            what=what,
            hint="skip texts the embedder cannot represent (for example, with no words)",
        )
    scaled = wide / scale
    unit = scaled / np.linalg.norm(scaled, axis=-1, keepdims=True)
    return np.ascontiguousarray(unit, dtype=np.float32)


def prepare_vectors(ids: Iterable[str], vectors: Any, dimensions: int) -> tuple[list[str], npt.NDArray[np.float32]]:
    """Checked ids and their vectors as a C-contiguous float32 matrix of unit rows.

    Refuses (``ValidationError``, before anything is stored) a batch whose
    ids are bad, whose vectors are not a 2-D numeric matrix with one row per
    id and ``dimensions`` columns, hold NaN or infinity, or hold a zero row.
    """
    checked = check_ids(ids)
    what = "add"
    import numpy as np

    if not checked:
        if np.asarray(vectors).size != 0:
            raise ValidationError("vectors were given but no ids", what=what)
        return checked, np.empty((0, dimensions), dtype=np.float32)
    wide = _as_float64(vectors, what)
    if wide.ndim != 2:
        raise ValidationError(
            f"vectors must be a 2-D matrix (one row per id), got {wide.ndim} dimension(s) of shape {wide.shape}",
            what=what,
            hint="for one vector, pass [vector]",
        )
    rows, columns = wide.shape
    if rows != len(checked):
        raise ValidationError(f"{len(checked)} ids but {rows} vectors", what=what)
    if columns != dimensions:
        raise ValidationError(
            f"vectors have {columns} dimensions, the index holds {dimensions}",
            what=what,
            hint=f"embed with the index's embedder, or rebuild the index with `{REINDEX_COMMAND}`",
        )
    return checked, _normalised(wide, what, "vector")


def prepare_query(query: Any, dimensions: int) -> npt.NDArray[np.float32]:
    """The query as a C-contiguous float32 unit vector of ``dimensions`` components."""
    what = "search"
    wide = _as_float64(query, what)
    if wide.ndim != 1:
        raise ValidationError(f"the query must be one vector, got shape {wide.shape}", what=what)
    if wide.shape[0] != dimensions:
        raise ValidationError(
            f"the query has {wide.shape[0]} dimensions, the index holds {dimensions}",
            what=what,
            hint=f"embed the query with the index's embedder, or rebuild the index with `{REINDEX_COMMAND}`",
        )
    return _normalised(wide, what, "the query")


def open_vector_index(
    plugins: Plugins,
    config: Config | None,
    path: Path | str,
    identity: EmbedderIdentity,
    *,
    name: str | None = None,
) -> VectorIndex:
    """Open (or create) the vector index at ``path`` with the implementation ``[memory] index`` names.

    ``name`` overrides the configured one. The index's settings come from
    ``[vector_index.<name>]``.
    """
    from cairn.errors import PluginError

    chosen = name or (config.memory.index if config is not None else "exact")
    registration = plugins.vector_indexes.get(chosen)
    opener = plugins.create("vector_indexes", chosen, config)
    if not isinstance(opener, VectorIndexOpener):
        raise PluginError(
            f"the factory of vector index {chosen!r} returned {type(opener).__name__}, not a VectorIndexOpener",
            plugin=registration.plugin,
        )
    return opener.open(Path(path), identity)
