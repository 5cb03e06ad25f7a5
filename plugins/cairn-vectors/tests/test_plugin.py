"""cairn-vectors through cairn: the entry point, cairn_register_vector_indexes, [memory] index and its tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cairn_vectors.exact import ExactIndex

from cairn.config import load_config
from cairn.errors import ConfigError
from cairn.plugins import load_plugins
from cairn.vector_index import EmbedderIdentity, open_vector_index

IDENTITY = EmbedderIdentity("local", "hashing", 8)


def test_the_installed_plugin_registers_both_indexes_through_cairn_register_vector_indexes(cairn_env: Path) -> None:
    plugins = load_plugins()
    info = plugins.info["vectors"]
    assert info.status == "ok", info.reason
    assert info.hooks == ["cairn_register_vector_indexes"]
    assert info.registers == {"vector_indexes": ["exact", "hnsw"]}
    assert "usearch" in plugins.vector_indexes.get("hnsw").description


def test_loading_the_plugin_imports_neither_numpy_nor_usearch() -> None:
    code = (
        "import sys\n"
        "from cairn.plugins import load_plugins\n"
        "plugins = load_plugins()\n"
        "assert 'exact' in plugins.vector_indexes\n"
        "print(sorted(m for m in ('numpy', 'usearch') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def own_problems(problems: list[ConfigError]) -> list[ConfigError]:
    """The problems in this plugin's tables: the env installs no storage backend or tokenizer, which the
    default configuration names (``[cairn] storage = "sqlite"``), and those are reported too."""
    return [p for p in problems if p.table == "memory" or p.table.startswith("vector_index")]


def test_the_configured_index_opens_with_its_table(cairn_env: Path) -> None:
    (cairn_env / "cairn.toml").write_text('[memory]\nindex = "exact"\n[vector_index.exact]\nchunk_rows = 2048\n')
    config = load_config(cairn_env)
    plugins = load_plugins()
    assert own_problems(plugins.check_config(config)) == []
    with open_vector_index(plugins, config, config.data_dir / "vectors", IDENTITY) as index:
        assert isinstance(index, ExactIndex) and index.settings.chunk_rows == 2048
        index.add(["a", "b"], np.eye(8)[:2])
        assert index.search(np.eye(8)[1], 1)[0].id == "b"
        assert index.stats().details["chunk_rows"] == 2048


def test_a_bad_setting_names_the_table_and_the_key(cairn_env: Path) -> None:
    (cairn_env / "cairn.toml").write_text("[vector_index.hnsw]\nconnectivity = 1\n")
    config = load_config(cairn_env)
    problems = own_problems(load_plugins().check_config(config))
    assert [(p.table, p.key) for p in problems] == [("vector_index.hnsw", "connectivity")]
    assert "from 2 to 256" in problems[0].problem and problems[0].line == 2


def test_hnsw_without_usearch_says_which_extra_to_install(cairn_env: Path, tmp_path: Path) -> None:
    # Hide usearch from a fresh interpreter, as if the [hnsw] extra were not installed.
    code = (
        "import sys\n"
        "sys.modules['usearch'] = None\n"
        "sys.modules['usearch.index'] = None\n"
        "from cairn.plugins import load_plugins\n"
        "from cairn.errors import ConfigError\n"
        "try:\n"
        "    load_plugins().create('vector_indexes', 'hnsw')\n"
        "except ConfigError as exc:\n"
        "    print(exc.table, exc.key, '|', exc.problem, '|', exc.hint)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.startswith("memory index | the hnsw vector index needs usearch, which is not installed")
    assert "pip install 'cairn-vectors[hnsw]'" in out.stdout


def test_an_unknown_index_name_in_memory_is_refused(cairn_env: Path) -> None:
    (cairn_env / "cairn.toml").write_text('[memory]\nindex = "faiss"\n')
    problems = own_problems(load_plugins().check_config(load_config(cairn_env)))
    assert [(p.table, p.key, p.problem) for p in problems] == [("memory", "index", "no vector index called 'faiss'")]
    assert "exact, hnsw" in (problems[0].hint or "")
    with pytest.raises(ConfigError):
        _ = load_config(cairn_env, flags=["memory.index=Bad-Name"]).memory
