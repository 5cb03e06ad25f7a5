"""The vector-index contract in the kernel: identities, the shared input checks, the hook, ``[memory] index``.

The indexes themselves are tested in plugins/cairn-vectors with the
conformance suite (``cairn.testing.index_suite``); the kernel has no NumPy,
so the checks that need it skip here when it is absent.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.config import MemorySettings, load_config
from cairn.errors import ConfigError, EmbedderMismatchError, PluginError, ValidationError
from cairn.hookspecs import hookimpl
from cairn.plugins import FactoryContext, load_plugins
from cairn.vector_index import (
    MAX_ID_LENGTH,
    MAX_K,
    REINDEX_COMMAND,
    EmbedderIdentity,
    VectorIndex,
    VectorIndexOpener,
    check_filter,
    check_identity,
    check_ids,
    check_k,
    open_vector_index,
)

IDENTITY = EmbedderIdentity("local", "hashing", 512)


def test_importing_the_contract_imports_no_numpy() -> None:
    code = "import sys, cairn.vector_index, cairn.plugins; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- identities ----------------------------------------------------------------------------


def test_an_identity_round_trips_and_describes_itself() -> None:
    assert EmbedderIdentity.from_dict(IDENTITY.to_dict()) == IDENTITY
    assert IDENTITY.describe() == "local/hashing (512 dimensions)"


@pytest.mark.parametrize(
    ("provider", "model", "dimensions"),
    [
        ("", "m", 3),
        ("p", "  ", 3),
        ("p", "m", 0),
        ("p", "m", True),
        ("p", "m", 3.0),
        ("p", "m", 70_000),
        (None, "m", 3),
    ],
)
def test_a_bad_identity_is_refused(provider: Any, model: Any, dimensions: Any) -> None:
    with pytest.raises(ValidationError, match="embedder identity"):
        EmbedderIdentity(provider, model, dimensions)


def test_an_incomplete_stored_identity_is_refused() -> None:
    with pytest.raises(ValidationError, match="incomplete"):
        EmbedderIdentity.from_dict({"provider": "local", "model": "hashing"})


def test_a_mismatch_names_both_embedders_the_path_and_the_reindex_command() -> None:
    check_identity(IDENTITY, EmbedderIdentity("local", "hashing", 512), "/p")  # equal: no error
    with pytest.raises(EmbedderMismatchError) as info:
        check_identity(IDENTITY, EmbedderIdentity("openai", "text-embedding-3-small", 1536), "/data/index")
    error = info.value
    assert isinstance(error, ValidationError)
    assert "/data/index" in str(error) and "local/hashing (512 dimensions)" in str(error)
    assert "openai/text-embedding-3-small (1536 dimensions)" in str(error)
    assert REINDEX_COMMAND in (error.hint or "") and REINDEX_COMMAND == "cairn memory reindex"


# -- the shared checks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "problem"),
    [
        (["a", ""], "id 1 ('') is empty"),
        (["a", 3], "id 1 (3) is int, not a string"),
        (["a", "b", "a"], "appears twice in one batch (at 0 and 2)"),
        (["tab\there"], "control or surrogate character"),
        (["\ud800"], "control or surrogate character"),
        (["x" * (MAX_ID_LENGTH + 1)], f"over the limit of {MAX_ID_LENGTH}"),
        ("abc", "a single string"),
    ],
)
def test_bad_ids_are_refused_naming_the_first(ids: Any, problem: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_ids(ids)
    assert problem in str(info.value)


@given(st.lists(st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40), unique=True))
def test_any_distinct_printable_ids_pass(ids: list[str]) -> None:
    assert check_ids(iter(ids)) == ids


@pytest.mark.parametrize("k", [0, -3, MAX_K + 1, True, 1.0, "5", None])
def test_k_out_of_range_is_refused(k: Any) -> None:
    with pytest.raises(ValidationError, match="k must"):
        check_k(k)


def test_k_in_range_passes() -> None:
    assert check_k(1) == 1 and check_k(MAX_K) == MAX_K


def test_a_filter_is_a_collection_of_string_ids() -> None:
    assert check_filter(None) is None
    allowed = {"a", "b"}
    assert check_filter(allowed) is allowed  # a set is used as it is, not copied
    assert check_filter(["a", "a"]) == {"a"}
    for bad in ("ab", b"ab", 5, lambda i: True, {1}):
        with pytest.raises(ValidationError, match="filter"):
            check_filter(bad)  # type: ignore[arg-type]


def test_vectors_are_checked_and_normalised_in_float64() -> None:
    np = pytest.importorskip("numpy")
    from cairn.vector_index import prepare_query, prepare_vectors

    ids, matrix = prepare_vectors(["a", "b"], [[3e38, 3e38], [0, 5]], 2)
    assert ids == ["a", "b"] and matrix.dtype == np.float32 and matrix.flags.c_contiguous
    assert np.allclose(matrix, [[2**-0.5, 2**-0.5], [0, 1]])  # no overflow to inf, no NaN
    assert np.allclose(prepare_query([1e-310, 0.0], 2), [1.0, 0.0])  # subnormal, still a direction
    with pytest.raises(ValidationError, match="component \\(1, 0\\) is nan"):
        prepare_vectors(["a", "b"], [[1, 1], [float("nan"), 1]], 2)
    with pytest.raises(ValidationError, match="row 1\\) is all zeros"):
        prepare_vectors(["a", "b"], [[1, 1], [0, 0]], 2)
    with pytest.raises(ValidationError, match="3 dimensions, the index holds 2"):
        prepare_vectors(["a"], [[1, 1, 1]], 2)
    with pytest.raises(ValidationError, match="the query has 3 dimensions"):
        prepare_query([1, 1, 1], 2)


# -- [memory] index ------------------------------------------------------------------------


def test_memory_index_defaults_to_exact_and_refuses_a_bad_name(tmp_path: Path) -> None:
    assert load_config(tmp_path, environ={"CAIRN_USER_CONFIG": ""}).memory == MemorySettings(index="exact")
    (tmp_path / "cairn.toml").write_text('[memory]\nindex = "Not A Name"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        _ = load_config(tmp_path, environ={"CAIRN_USER_CONFIG": ""}).memory
    assert (info.value.table, info.value.key, info.value.line) == ("memory", "index", 2)
    (tmp_path / "cairn.toml").write_text("[memory]\nsize = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="valid keys: index"):
        _ = load_config(tmp_path, environ={"CAIRN_USER_CONFIG": ""}).memory


# -- the hook ----------------------------------------------------------------------------------


@attrs.frozen
class GridConfig:
    cells: int = 8


class GridOpener(VectorIndexOpener):
    """A stand-in plugin's opener: records what the kernel asked it to open."""

    kind = "grid"

    def __init__(self, config: GridConfig) -> None:
        self.config = config
        self.opened: list[tuple[Path, EmbedderIdentity]] = []

    def open(self, path: Path, identity: EmbedderIdentity) -> VectorIndex:
        self.opened.append((path, identity))
        raise ValidationError(f"grid opened {path} for {identity.describe()} with {self.config.cells} cells")


def _grid_plugin(factory: Callable[[Any, FactoryContext], Any]) -> object:
    class GridPlugin:
        @staticmethod
        @hookimpl
        def cairn_register_vector_indexes(register: Callable[..., None]) -> None:
            register("grid", factory, GridConfig, description="a grid index")

    return GridPlugin()


def test_cairn_register_vector_indexes_fills_the_registry_and_the_table_configures_it(cairn_env: Path) -> None:
    (cairn_env / "cairn.toml").write_text(
        '[memory]\nindex = "grid"\n[vector_index.grid]\ncells = 3\n', encoding="utf-8"
    )
    config = load_config(cairn_env, environ={"CAIRN_USER_CONFIG": ""})
    plugins = load_plugins(entry_points=False)
    assert plugins.register(_grid_plugin(lambda config, context: GridOpener(config)), "grid_plugin")
    assert plugins.vector_indexes.names() == ["grid"]
    assert plugins.info["grid_plugin"].registers == {"vector_indexes": ["grid"]}
    # Without entry points only the built-ins load: the default storage and the rest are missing, not the index.
    assert [p for p in plugins.check_config(config) if p.table in ("memory", "vector_index.grid")] == []
    with pytest.raises(ValidationError, match=r"grid opened .*idx for local/hashing \(512 dimensions\) with 3 cells"):
        open_vector_index(plugins, config, cairn_env / "idx", IDENTITY)


def test_an_unknown_index_name_is_reported_by_validation(cairn_env: Path) -> None:
    (cairn_env / "cairn.toml").write_text('[memory]\nindex = "nosuch"\n[vector_index.ghost]\na = 1\n', encoding="utf-8")
    config = load_config(cairn_env, environ={"CAIRN_USER_CONFIG": ""})
    problems = load_plugins(entry_points=False).check_config(config)
    described = sorted((p.table, p.key, p.problem) for p in problems)
    assert ("memory", "index", "no vector index called 'nosuch'") in described
    assert ("vector_index.ghost", None, "no vector index called 'ghost'") in described


def test_a_factory_that_returns_no_opener_is_the_plugins_fault(cairn_env: Path) -> None:
    plugins = load_plugins(entry_points=False)
    assert plugins.register(_grid_plugin(lambda config, context: "not an opener"), "sloppy")
    with pytest.raises(PluginError, match="plugin 'sloppy'.*not a VectorIndexOpener"):
        open_vector_index(plugins, None, cairn_env / "idx", IDENTITY, name="grid")
