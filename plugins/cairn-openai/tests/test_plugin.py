"""The plugin as cairn sees it: registration, config tables, lazy imports, cairn.toml end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from openai_testkit import KEY, KEY_ENV

from cairn.config import load_config
from cairn.errors import ConfigError
from cairn.plugins import load_plugins
from cairn.providers import Providers
from cairn.testing.fake_openai import FakeOpenAI
from cairn.testing.fakes import WordTokenizer
from cairn.testing.memory import MemoryStore


def test_importing_the_plugin_module_imports_no_httpx() -> None:
    code = "import sys, cairn_openai.plugin; print('httpx' in sys.modules, 'cairn.providers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_registered_for_both_kinds() -> None:
    plugins = load_plugins(environ={"CAIRN_LOAD_PLUGINS": "openai"})
    assert "openai" in plugins.llm and "openai" in plugins.embeddings
    assert plugins.info["openai"].status == "ok"


def test_a_project_configures_it_in_cairn_toml(cairn_env: Path, server: FakeOpenAI) -> None:
    (cairn_env / "cairn.toml").write_text(f"""
[cairn]
llm = "openai"
embeddings = "openai"

[llm.openai]
base_url = "{server.url}"
api_key_env = "{KEY_ENV}"
model = "llama3"

[llm.openai.prices.llama3]
input = 0
output = 0

[embeddings.openai]
base_url = "{server.url}"
api_key_env = "{KEY_ENV}"
dimensions = 16
""")
    config = load_config(cairn_env, environ={"CAIRN_USER_CONFIG": ""})
    plugins = load_plugins(environ={"CAIRN_LOAD_PLUGINS": "openai"})
    assert [p for p in plugins.check_config(config) if p.table and p.table.startswith(("llm", "embeddings"))] == []
    with Providers(config, plugins, store=MemoryStore(), tokenizer=WordTokenizer()) as providers:
        reply = providers.llm().complete([{"role": "user", "content": "hello"}])
        assert reply.model == "llama3" and reply.cost == 0.0
        assert providers.embeddings().embed(["a"]).dimensions == 16
        infos = {(i.kind, i.name): i for i in providers.describe()}
    assert infos[("llm", "openai")].ready and infos[("llm", "openai")].selected
    assert KEY not in repr(infos)


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ('api_key_env = "sk-live-123456"', "not hold the key itself"),
        ('base_url = "localhost:8000"', "must be an http(s) URL"),
        ("read_timeout_s = 0", "greater than 0"),
        ('max_tokens_field = "tokens"', "max_tokens_field"),
        ("[llm.openai.prices.x]\noutput = 1", "input is required"),
        ("[llm.openai.prices.x]\ninput = 1\ncolour = 2", "unknown key(s) colour"),
        ("colour = 1", "unknown field"),
    ],
)
def test_bad_tables_are_refused_with_the_file_and_table(cairn_env: Path, table: str, words: str) -> None:
    (cairn_env / "cairn.toml").write_text(f"[llm.openai]\n{table}\n")
    config = load_config(cairn_env, environ={"CAIRN_USER_CONFIG": ""})
    plugins = load_plugins(environ={"CAIRN_LOAD_PLUGINS": "openai"})
    with pytest.raises(ConfigError) as info:
        plugins.create("llm", "openai", config)
    assert words in str(info.value) and "cairn.toml" in str(info.value) and "llm.openai" in str(info.value)


@pytest.mark.parametrize("section", ["llm", "embeddings"])
def test_a_base_url_with_user_info_is_refused_without_showing_the_password(cairn_env: Path, section: str) -> None:
    # httpx would send user:password as Basic auth instead of the Bearer key.
    (cairn_env / "cairn.toml").write_text(f'[{section}.openai]\nbase_url = "http://ann:hunter2@localhost:8000/v1"\n')
    config = load_config(cairn_env, environ={"CAIRN_USER_CONFIG": ""})
    plugins = load_plugins(environ={"CAIRN_LOAD_PLUGINS": "openai"})
    with pytest.raises(ConfigError) as info:
        plugins.create(section, "openai", config)
    error = info.value
    assert (error.table, error.key, error.line) == (f"{section}.openai", "base_url", 2)
    assert error.file is not None and error.file.endswith("cairn.toml")
    assert "user name or password" in error.message and "api_key_env" in error.message
    assert "hunter2" not in str(error) and "ann:***@localhost" in str(error)
    problems = [p for p in plugins.check_config(config) if p.key == "base_url"]
    assert len(problems) == 1 and "hunter2" not in str(problems[0])


def test_readiness_names_the_missing_variable(cairn_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = load_config(cairn_env, environ={"CAIRN_USER_CONFIG": ""})
    plugins = load_plugins(environ={"CAIRN_LOAD_PLUGINS": "openai"})
    with Providers(config, plugins, store=MemoryStore(), tokenizer=WordTokenizer()) as providers:
        info = {(i.kind, i.name): i for i in providers.describe()}[("llm", "openai")]
    assert not info.ready and "OPENAI_API_KEY is not set" in info.problem
