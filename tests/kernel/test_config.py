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


# -- hostile values: a located ConfigError, never a Python exception -------------------------


def _only(problems, table, key=None):
    return [p for p in problems if p.table == table and p.key == key]


def test_a_nul_character_in_a_value_is_refused_at_its_line(tmp_path):
    path = write(tmp_path / "cairn.toml", '[cairn]\nstorage = "sqlite"\ndata_dir = "a\\u0000b"\n')
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    error = info.value
    assert (error.file, error.line, error.table, error.key) == (str(path.resolve()), 3, "cairn", "data_dir")
    assert "NUL" in error.problem


@pytest.mark.parametrize("opening", ["[", "{a = "])
def test_values_nested_thousands_deep_are_refused_at_their_line(tmp_path, opening):
    closing = "]" if opening == "[" else "}"
    write(tmp_path / "cairn.toml", "[cairn]\nstorage = 'sqlite'\nx = " + opening * 3000 + closing * 3000 + "\n")
    with pytest.raises(ConfigError, match="nested more than 32 levels deep") as info:
        load(tmp_path)
    assert info.value.line == 3


def test_dotted_keys_nested_too_deep_are_refused(tmp_path):
    write(tmp_path / "cairn.toml", "[cairn]\n" + ".".join(["a"] * 200) + " = 1\n")
    with pytest.raises(ConfigError, match="nested more than 32 levels deep"):
        load(tmp_path)


def test_brackets_inside_strings_and_comments_are_not_nesting(tmp_path):
    deep = "[" * 100
    write(
        tmp_path / "cairn.toml",
        f'[cairn]\ndata_dir = "{deep}"  # {deep}\nstorage = \'{deep}\'\n[context]\ndefault_branch = """x{deep}\n"""\n',
    )
    config = load(tmp_path)  # the values are wrong, but they are read
    assert config.table("cairn")["data_dir"] == deep


@pytest.mark.parametrize("digits", [20, 5000])
def test_a_huge_number_on_the_command_line_is_a_usage_error(tmp_path, digits):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, flags=[f"context.max_tokens={'9' * digits}"])
    assert info.value.command_line and info.value.file == "--set context.max_tokens"
    assert "Traceback" not in str(info.value)


def test_a_huge_number_in_a_file_is_refused_at_its_line(tmp_path):
    write(tmp_path / "cairn.toml", "[context]\n\nmax_tokens = " + "9" * 5000 + "\n")
    with pytest.raises(ConfigError, match="too long") as info:
        load(tmp_path)
    assert info.value.line == 3 and not info.value.command_line


def test_flags_and_variables_cannot_nest_without_limit(tmp_path):
    with pytest.raises(ConfigError, match="nested more than"):
        load(tmp_path, flags=["cairn.x=" + "[" * 3000])
    with pytest.raises(ConfigError, match="SECTION.KEY=VALUE"):
        load(tmp_path, flags=[".".join(["a"] * 3000) + "=1"])
    with pytest.raises(ConfigError, match="does not name a section and a key"):
        load(tmp_path, environ={"CAIRN__" + "__".join(["A"] * 3000): "1"})
    with pytest.raises(ConfigError, match="nested more than") as info:
        load(tmp_path, environ={"CAIRN__CAIRN__X": "[" * 3000})
    assert not info.value.command_line


def test_text_that_is_not_utf8_on_the_command_line_is_refused(tmp_path):
    # What Python makes of the bytes \xff\xfe in argv on POSIX (surrogateescape).
    with pytest.raises(ConfigError, match="not valid UTF-8") as info:
        load(tmp_path, flags=["cairn.data_dir=\udcff\udcfe"])
    assert info.value.command_line


def test_a_missing_config_file_given_with_config_is_a_usage_error(tmp_path):
    with pytest.raises(ConfigError, match="no such config file") as info:
        load(tmp_path, config_file="nope.toml")
    assert info.value.command_line
    with pytest.raises(ConfigError, match="cannot read") as info:
        load(tmp_path, config_file="x" * 5000)
    assert info.value.command_line


@pytest.mark.parametrize("branch", ["../../x", "-x", "a..b", ""])
def test_validate_reports_an_invalid_default_branch_at_its_line(tmp_path, branch):
    path = write(tmp_path / "cairn.toml", f'[cairn]\nstorage = "sqlite"\n\n[context]\ndefault_branch = "{branch}"\n')
    problems = _only(load(tmp_path).validate(), "context", "default_branch")
    assert [(p.file, p.line) for p in problems] == [(str(path.resolve()), 5)]
    assert "must be a valid branch name" in problems[0].problem


@pytest.mark.parametrize("value", ["", "1ABC", "MY VAR", "sk-abc123", "A=B"])
def test_validate_reports_a_key_env_that_names_no_variable(tmp_path, value):
    write(tmp_path / "cairn.toml", f'[chat]\n\nkey_env = "{value}"\n')
    problems = _only(load(tmp_path).validate(), "chat", "key_env")
    assert [p.line for p in problems] == [3]
    assert "must name an environment variable" in problems[0].problem


def test_every_env_key_of_a_backend_table_names_a_variable(tmp_path):
    @attrs.frozen
    class Backend:
        token_env: str = ""

    write(tmp_path / "cairn.toml", '[llm.fake]\ntoken_env = "sk-not-a-name"\n')
    with pytest.raises(ConfigError, match="must name an environment variable") as info:
        load(tmp_path).structure_table(("llm", "fake"), Backend)
    assert (info.value.key, info.value.line) == ("token_env", 2)
    write(tmp_path / "cairn.toml", '[llm.fake]\ntoken_env = ""\n')  # "" is the backend's to allow
    assert load(tmp_path).structure_table(("llm", "fake"), Backend) == Backend("")


def test_validate_reports_a_data_dir_that_cannot_be_created(tmp_path):
    write(tmp_path / "a-file", "x")
    write(tmp_path / "cairn.toml", f'[cairn]\ndata_dir = "{tmp_path / "a-file" / "data"}"\n')
    problems = _only(load(tmp_path).validate(), "cairn", "data_dir")
    assert [p.line for p in problems] == [2]
    assert "is not a directory" in problems[0].problem


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_validate_reports_a_data_dir_under_proc(tmp_path):
    write(tmp_path / "cairn.toml", '[cairn]\ndata_dir = "/proc/nope"\n')
    problems = _only(load(tmp_path).validate(), "cairn", "data_dir")
    assert [p.line for p in problems] == [2] and "cannot be created" in problems[0].problem
    assert not Path("/proc/nope").exists()


def test_validate_accepts_a_data_dir_it_can_create_and_leaves_nothing_behind(tmp_path):
    write(tmp_path / "cairn.toml", '[cairn]\ndata_dir = "deep/er/data"\n')
    assert load(tmp_path).validate() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cairn.toml"]


def test_an_unknown_section_is_reported_at_its_header(tmp_path):
    write(tmp_path / "cairn.toml", '[cairn]\nstorage = "sqlite"\n\n[bogus]\nx = 1\n')
    problems = _only(load(tmp_path).validate(), "bogus")
    assert [p.line for p in problems] == [4]


@pytest.mark.parametrize(
    ("text", "table", "key", "line"),
    [
        ('[storage.sqlite]\npath = "x"\n', ("storage", "sqlite"), "path", 2),
        ('[storage]\nsqlite.path = "x"\n', ("storage", "sqlite"), "path", 2),
        ('storage.sqlite.path = "x"\n', ("storage", "sqlite"), "path", 1),
        ('[ storage . "sqlite" ]  # a comment\n\n"path" = "x"\n', ("storage", "sqlite"), "path", 3),
        ('[cairn]\nstorage = "x"\n[storage.sqlite]\n', ("storage", "sqlite"), None, 3),
        ("[cairn]\n[[bogus]]\n", ("bogus",), None, 2),
        ("[cairn]\nx = 1\n", ("cairn",), "y", None),
    ],
)
def test_find_line_knows_every_way_toml_writes_a_key(tmp_path, text, table, key, line):
    from cairn.config_toml import find_line

    path = write(tmp_path / "cairn.toml", text)
    assert find_line(str(path), table, key) == line


def test_find_line_looks_under_tool_cairn_in_pyproject(tmp_path):
    from cairn.config_toml import find_line

    path = write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n[tool.cairn.cairn]\nstorage = "x"\n')
    assert find_line(str(path), ("cairn",), "storage") == 4


def test_a_pyproject_whose_tool_is_not_a_table_is_no_project(tmp_path):
    write(tmp_path / "pyproject.toml", 'tool = "cairn"\n# [tool.cairn]\n')
    assert find_project(tmp_path) is None
