"""Layered configuration: discovery, precedence, structuring, errors that say where."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from cairn.config import CairnSettings, ContextSettings, find_project, load_config, redact
from cairn.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(cwd: Path, environ: dict[str, str] | None = None, **kwargs):
    env = {"CAIRN_USER_CONFIG": ""}
    env.update(environ or {})
    return load_config(cwd, environ=env, **kwargs)


def test_defaults_without_any_file(tmp_path):
    config = load(tmp_path)
    assert config.project_file is None
    assert config.cairn == CairnSettings()
    assert config.context == ContextSettings()
    assert config.source_of(("cairn", "storage")) == "default"
    assert config.data_dir == (tmp_path / ".cairn").resolve()


def test_project_file_found_by_walking_up(tmp_path):
    write(tmp_path / "cairn.toml", '[cairn]\nstorage = "other"\n')
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    config = load(deep)
    assert config.project_dir == tmp_path.resolve()
    assert config.cairn.storage == "other"
    assert config.data_dir == (tmp_path / ".cairn").resolve()


def test_pyproject_tool_cairn_counts_only_with_the_table(tmp_path):
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    assert find_project(tmp_path) is None
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n[tool.cairn.cairn]\ntokenizer = "t"\n')
    config = load(tmp_path)
    assert config.project_file == (tmp_path / "pyproject.toml").resolve()
    assert config.cairn.tokenizer == "t"


def test_precedence_flags_env_project_user_defaults(tmp_path):
    user = write(tmp_path / "user" / "cairn.toml", '[cairn]\nstorage = "u"\ntokenizer = "u"\ndata_dir = "u"\n')
    project = tmp_path / "p"
    write(project / "cairn.toml", '[cairn]\nstorage = "p"\ntokenizer = "p"\n')
    config = load(
        project,
        environ={"CAIRN_USER_CONFIG": str(user), "CAIRN__CAIRN__TOKENIZER": "e", "CAIRN__CAIRN__STORAGE": "e"},
        flags=["cairn.storage=f"],
    )
    assert config.cairn.storage == "f"
    assert config.cairn.tokenizer == "e"
    assert config.cairn.data_dir == "u"
    assert config.source_of(("cairn", "storage")) == "--set cairn.storage"
    assert config.source_of(("cairn", "tokenizer")) == "CAIRN__CAIRN__TOKENIZER"
    assert config.source_of(("cairn", "data_dir")) == str(user)


def test_tables_merge_key_by_key(tmp_path):
    user = write(tmp_path / "u.toml", "[storage.x]\na = 1\nb = 2\n")
    write(tmp_path / "p" / "cairn.toml", "[storage.x]\nb = 3\n")
    config = load(tmp_path / "p", environ={"CAIRN_USER_CONFIG": str(user)})
    assert config.table("storage", "x") == {"a": 1, "b": 3}


def test_env_values_are_read_as_toml_values(tmp_path):
    config = load(
        tmp_path,
        environ={
            "CAIRN__CONTEXT__MAX_TOKENS": "500",
            "CAIRN__CAIRN__DISABLED_PLUGINS": '["a", "b"]',
            "CAIRN__STORAGE__SQLITE__PATH": "/tmp/x.db",
        },
    )
    assert config.context.max_tokens == 500
    assert config.cairn.disabled_plugins == ["a", "b"]
    assert config.table("storage", "sqlite") == {"path": "/tmp/x.db"}


def test_bad_env_name_is_explained(tmp_path):
    with pytest.raises(ConfigError, match="CAIRN__SECTION__KEY"):
        load(tmp_path, environ={"CAIRN__ONLYONE": "x"})


def test_bad_flag_is_explained(tmp_path):
    with pytest.raises(ConfigError, match="SECTION.KEY=VALUE"):
        load(tmp_path, flags=["nokey"])


def test_toml_syntax_error_names_file_line_and_column(tmp_path):
    path = write(tmp_path / "cairn.toml", '[cairn]\nstorage = "x"\ntokenizer = = 1\n')
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    error = info.value
    assert error.file == str(path.resolve()) and error.line == 3 and error.column is not None
    assert f"{path.resolve()}:3:" in str(error)


def test_unknown_key_names_file_table_key_line_and_valid_keys(tmp_path):
    path = write(tmp_path / "cairn.toml", '[cairn]\nstorage = "x"\n\nstorag = "typo"\n')
    config = load(tmp_path)
    with pytest.raises(ConfigError) as info:
        _ = config.cairn
    error = info.value
    assert error.key == "storag" and error.table == "cairn" and error.line == 4
    assert error.file == str(path.resolve())
    assert "valid keys" in str(error) and "storage" in error.hint


def test_wrong_type_names_the_key(tmp_path):
    write(tmp_path / "cairn.toml", '[context]\nmax_tokens = "lots"\n')
    with pytest.raises(ConfigError) as info:
        _ = load(tmp_path).context
    assert info.value.key == "max_tokens" and "expected an integer" in str(info.value)


def test_invalid_choice_and_range(tmp_path):
    write(tmp_path / "cairn.toml", '[context]\nbudget_action = "explode"\n')
    with pytest.raises(ConfigError, match="budget_action"):
        _ = load(tmp_path).context
    write(tmp_path / "cairn.toml", "[context]\nmax_tokens = -5\n")
    with pytest.raises(ConfigError, match="positive"):
        _ = load(tmp_path).context


def test_validate_lists_every_problem(tmp_path):
    write(tmp_path / "cairn.toml", '[cairn]\nbogus = 1\n[context]\nmax_tokens = "x"\n[weird]\na = 1\n')
    problems = load(tmp_path).validate()
    text = "\n".join(map(str, problems))
    assert len(problems) == 3
    assert "bogus" in text and "max_tokens" in text and "unknown section [weird]" in text


def test_structure_table_for_backend_config(tmp_path):
    @attrs.frozen
    class Backend:
        path: str = "x"
        retries: int = 3

    write(tmp_path / "cairn.toml", '[storage.fake]\npath = "y"\n')
    config = load(tmp_path)
    assert config.structure_table(("storage", "fake"), Backend) == Backend("y", 3)
    write(tmp_path / "cairn.toml", '[storage.fake]\nretries = "three"\nextra = 1\n')
    with pytest.raises(ConfigError) as info:
        load(tmp_path).structure_table(("storage", "fake"), Backend)
    assert info.value.table == "storage.fake"


@pytest.mark.parametrize(
    ("key", "value", "hidden"),
    [
        ("api_key", "abc", True),
        ("token", "abc", True),
        ("password", "abc", True),
        ("api_key_env", "OPENAI_API_KEY", False),
        ("max_tokens", 5, False),
        ("base_url", "sk-looks-like-a-key", True),
        ("path", "cairn.db", False),
    ],
)
def test_redaction(key, value, hidden):
    assert (redact(key, value) == "***") is hidden


def test_flat_redacts_and_names_sources(tmp_path):
    write(tmp_path / "cairn.toml", '[llm.x]\napi_key = "sk-secret"\napi_key_env = "KEY"\n')
    flat = {k: (v, s) for k, v, s in load(tmp_path).flat()}
    assert flat["llm.x.api_key"][0] == "***"
    assert flat["llm.x.api_key_env"][0] == "KEY"
    assert flat["cairn.storage"][1] == "default"
