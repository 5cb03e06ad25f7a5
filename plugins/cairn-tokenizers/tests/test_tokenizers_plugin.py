"""Registration through the entry point, the light plugin module, and config tables refused as they should be."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cairn.errors import ConfigError
from cairn.tokenizers import MessageOverhead, Tokenizer


def test_the_entry_point_registers_three_tokenizers(cairn_env: Path) -> None:
    from cairn.plugins import load_plugins

    plugins = load_plugins(strict=True, environ={"CAIRN_LOAD_PLUGINS": "tokenizers"})
    info = plugins.info["tokenizers"]
    assert info.status == "ok", info.reason
    assert info.module == "cairn_tokenizers.plugin"
    assert info.registers == {"tokenizers": ["approx", "tiktoken", "hf"]}
    assert plugins.tokenizers.names() == ["approx", "hf", "tiktoken"]
    described = {i.name: i for i in plugins.describe()}
    assert described["tokenizers"].distribution == "cairn-tokenizers"


def test_importing_the_plugin_imports_neither_tiktoken_nor_tokenizers() -> None:
    # A fresh interpreter: this test session has long imported both.
    code = textwrap.dedent(
        """
        import sys
        import cairn_tokenizers.plugin
        from cairn.plugins import load_plugins
        plugins = load_plugins(strict=True, environ={"CAIRN_LOAD_PLUGINS": "tokenizers"})
        assert "tiktoken" in plugins.tokenizers and "hf" in plugins.tokenizers
        plugins.create("tokenizers", "approx").count("still light")
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"tiktoken", "tiktoken_ext", "tokenizers"})
        print(",".join(heavy))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_exactness_flags(make_tokenizer, tiny_toml: str, project: Path) -> None:
    approx = make_tokenizer("approx")
    tik = make_tokenizer("tiktoken", tiny_toml)
    assert isinstance(approx, Tokenizer) and isinstance(tik, Tokenizer)
    assert approx.exact is False
    assert tik.exact is True


def test_unknown_keys_are_refused_naming_file_table_and_key(make_tokenizer, project: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        make_tokenizer("tiktoken", '[tokenizer.tiktoken]\nencodingfile = "x.tiktoken"\n')
    err = caught.value
    assert err.table == "tokenizer.tiktoken"
    assert err.key == "encodingfile"
    assert err.file == str(project / "cairn.toml")
    assert err.line == 2
    assert "encoding_file" in (err.hint or "")  # the valid keys are listed


@pytest.mark.parametrize(
    ("name", "toml", "key"),
    [
        ("approx", "[tokenizer.approx]\nscale = 0\n", "scale"),
        ("approx", '[tokenizer.approx]\nscale = "big"\n', "scale"),
        ("approx", "[tokenizer.approx]\nper_message = -1\n", "per_message"),
        ("tiktoken", '[tokenizer.tiktoken]\nverify_hash = "no"\n', "verify_hash"),
        ("tiktoken", "[tokenizer.tiktoken]\nreply_priming = -3\n", "reply_priming"),
        ("hf:t.json", "[tokenizer.hf]\nadd_special_tokens = 1\n", "add_special_tokens"),
    ],
)
def test_bad_values_are_refused(make_tokenizer, project: Path, name: str, toml: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_tokenizer(name, toml)
    err = caught.value
    assert err.file == str(project / "cairn.toml")
    assert err.table == f"tokenizer.{name.partition(':')[0]}"
    # Type errors come back with ``key`` set; for a validator's error the kernel
    # (cairn.config, as of this writing) leaves ``key`` unset but the message names it.
    assert err.key == key or f"{key} must" in err.message


def test_overhead_keys_replace_the_defaults_one_by_one(make_tokenizer) -> None:
    tok = make_tokenizer("approx", "[tokenizer.approx]\nper_name = 0\n")
    assert tok.overhead == MessageOverhead(per_message=3, per_name=0, reply_priming=3)
    # The context engine caches per-message counts under the name: changed figures change it.
    assert tok.name == "approx@overhead=3,0,3"
    assert make_tokenizer("approx", "[tokenizer.approx]\nper_message = 3\n").name == "approx"


def test_environment_variables_configure_a_tokenizer(project: Path) -> None:
    from cairn.config import load_config
    from cairn.plugins import load_plugins

    plugins = load_plugins(strict=True, environ={"CAIRN_LOAD_PLUGINS": "tokenizers"})
    config = load_config(cwd=project, environ={"CAIRN_USER_CONFIG": "", "CAIRN__TOKENIZER__APPROX__SCALE": "2.0"})
    tok = plugins.create("tokenizers", "approx", config)
    assert tok.scale == 2.0
    assert tok.count("hello world") == 4


def test_check_config_reports_problems_in_the_tables(project: Path) -> None:
    from cairn.config import load_config
    from cairn.plugins import load_plugins

    plugins = load_plugins(strict=True, environ={"CAIRN_LOAD_PLUGINS": "tokenizers"})
    (project / "cairn.toml").write_text('[cairn]\ntokenizer = "tiktoken:gpt-4o"\n[tokenizer.hf]\nsurprise = true\n')
    config = load_config(cwd=project, environ={"CAIRN_USER_CONFIG": ""})
    problems = plugins.check_config(config)
    assert [(p.table, p.key) for p in problems if p.table and p.table.startswith("tokenizer")] == [
        ("tokenizer.hf", "surprise")
    ]


@pytest.mark.parametrize(
    ("name", "module", "extra"),
    [("tiktoken:cl100k_base", "tiktoken", "tiktoken"), ("hf:tokenizer.json", "tokenizers", "hf")],
)
def test_an_exact_tokenizer_without_its_package_says_which_extra_to_install(
    project: Path, monkeypatch: pytest.MonkeyPatch, name: str, module: str, extra: str
) -> None:
    """The README's own example value, on a machine without the extra: a located error, never ModuleNotFoundError."""
    from cairn.config import load_config
    from cairn.plugins import load_plugins

    # What Python does for an uninstalled package: find_spec is None and `import` raises ModuleNotFoundError.
    monkeypatch.setitem(sys.modules, module, None)
    (project / "cairn.toml").write_text(f'[cairn]\nstorage = "sqlite"\ntokenizer = "{name}"\n')
    config = load_config(cwd=project, environ={"CAIRN_USER_CONFIG": ""})
    plugins = load_plugins(strict=True, environ={"CAIRN_LOAD_PLUGINS": "tokenizers"})
    with pytest.raises(ConfigError) as caught:
        plugins.create("tokenizers", name, config)
    error = caught.value
    assert (error.table, error.key, error.line) == ("cairn", "tokenizer", 3)
    assert f"needs the Python module {module!r}, which is not installed" in error.problem
    assert error.hint is not None and f"pip install 'cairn-tokenizers[{extra}]'" in error.hint
    reported = [p for p in plugins.check_config(config) if p.key == "tokenizer"]
    assert [p.hint for p in reported] == [error.hint]
