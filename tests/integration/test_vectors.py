"""cairn-vectors installed with everything else: listed by `cairn plugins`, checked by `cairn config validate`."""

from __future__ import annotations


def test_the_vector_indexes_are_listed_and_the_default_is_exact(cairn):
    plugins = {p["name"]: p for p in cairn.json("plugins")}
    assert plugins["vectors"]["status"] == "ok" and plugins["vectors"]["distribution"] == "cairn-vectors"
    assert plugins["vectors"]["registers"] == {"vector_indexes": ["exact", "hnsw"]}
    keys = {s["key"]: s for s in cairn.json("config", "show")["settings"]}
    assert keys["memory.index"] == {"key": "memory.index", "value": "exact", "source": "default"}


def test_config_validate_reports_a_bad_index_choice_and_a_bad_index_setting(cairn):
    (cairn.project / "cairn.toml").write_text('[memory]\nindex = "annoy"\n[vector_index.hnsw]\nexpansion_search = 2\n')
    proc = cairn.run("config", "validate", check=False)
    assert proc.returncode == 1, proc.stderr
    assert "[memory] index: no vector index called 'annoy'" in proc.stderr and "known: exact, hnsw" in proc.stderr
    assert "cairn.toml:4: [vector_index.hnsw] expansion_search" in proc.stderr
    assert "traceback" not in proc.stderr.lower()
