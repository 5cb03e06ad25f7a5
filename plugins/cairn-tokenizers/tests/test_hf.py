"""``hf:<tokenizer.json>``: tokenizers built here with the ``tokenizers`` library, counted through the kernel."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from cairn.errors import ConfigError
from cairn.model import Message
from cairn.tokenizers import MessageOverhead

SENTENCES = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"]


def word_level(*, with_template: bool = False, truncate_at: int | None = None) -> Tokenizer:
    """One token per word or punctuation run; words not seen in SENTENCES are [UNK]."""
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(SENTENCES, trainers.WordLevelTrainer(special_tokens=["[UNK]", "[CLS]", "[SEP]"]))
    if with_template:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
        )
    if truncate_at is not None:
        tok.enable_truncation(max_length=truncate_at)
    return tok


def byte_level_bpe() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(SENTENCES * 20 + ["counting tokens exactly, with a tokenizer.json"], trainer)
    return tok


@pytest.fixture
def tok_json(project: Path) -> Path:
    path = project / "models" / "tok.json"
    path.parent.mkdir()
    word_level().save(str(path))
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", 0), ("the cat sat", 3), ("the cat, sat.", 5), ("unseen words here", 3), ("a  cat\n\tand   a dog", 5)],
)
def test_counts_by_hand(make_tokenizer, tok_json: Path, text: str, expected: int) -> None:
    tok = make_tokenizer("hf:models/tok.json")
    assert tok.exact is True
    assert tok.count(text) == expected


def test_counts_match_the_library(make_tokenizer, project: Path) -> None:
    bpe = byte_level_bpe()
    bpe.save(str(project / "bpe.json"))
    tok = make_tokenizer("hf:bpe.json")
    texts = ["the cat sat on the mat", "Counting TOKENS exactly!", "naïve café ☕ 你好", "", "x" * 300]
    assert [tok.count(t) for t in texts] == [len(bpe.encode(t, add_special_tokens=False).ids) for t in texts]
    assert tok.count_many(texts) == [tok.count(t) for t in texts]
    assert tok.count_many([]) == []


def test_name_carries_a_hash_of_the_files_content(make_tokenizer, tok_json: Path, project: Path) -> None:
    tok = make_tokenizer("hf:models/tok.json")
    digest = hashlib.sha256(tok_json.read_bytes()).hexdigest()
    assert tok.name == f"hf:models/tok.json@{digest[:12]}"
    assert tok.sha256 == digest
    byte_level_bpe().save(str(tok_json))  # another vocabulary at the same path
    assert make_tokenizer("hf:models/tok.json").name != tok.name


def test_path_is_relative_to_the_project(make_tokenizer, tok_json: Path, project: Path) -> None:
    elsewhere = project / "sub"
    elsewhere.mkdir()
    assert make_tokenizer("hf:models/tok.json", cwd=elsewhere).count("the cat") == 2
    assert make_tokenizer(f"hf:{tok_json}").count("the cat") == 2  # absolute paths too


def test_truncation_saved_in_the_file_never_caps_a_count(make_tokenizer, project: Path) -> None:
    word_level(truncate_at=2).save(str(project / "trunc.json"))
    assert make_tokenizer("hf:trunc.json").count("the cat sat on the mat") == 6


def test_special_tokens_are_counted_only_when_asked(make_tokenizer, project: Path) -> None:
    word_level(with_template=True).save(str(project / "tmpl.json"))
    assert make_tokenizer("hf:tmpl.json").count("the cat") == 2
    with_specials = make_tokenizer("hf:tmpl.json", "[tokenizer.hf]\nadd_special_tokens = true\n")
    assert with_specials.name.endswith("@add_special_tokens")
    assert with_specials.count("the cat") == 4  # [CLS] the cat [SEP]
    assert with_specials.count_many(["the cat", "a dog sat"]) == [4, 5]


def test_message_overhead_defaults_and_overrides(make_tokenizer, tok_json: Path) -> None:
    tok = make_tokenizer("hf:models/tok.json")
    assert tok.overhead == MessageOverhead(3, 1, 3)
    # 3 overhead + "user" ([UNK]) 1 + "the cat" 2, then 3 reply priming
    assert tok.count_messages([Message(role="user", content="the cat")]) == 9
    custom = make_tokenizer("hf:models/tok.json", "[tokenizer.hf]\nper_message = 5\nreply_priming = 4\n")
    assert custom.name == tok.name + "@overhead=5,1,4"
    assert custom.count_messages([Message(role="user", content="the cat")]) == 5 + 1 + 2 + 4


def test_a_missing_file_names_the_path(make_tokenizer, project: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        make_tokenizer("hf:models/missing.json")
    assert caught.value.file == str(project / "models" / "missing.json")
    assert "no such tokenizer file" in str(caught.value)


def test_invalid_json_names_the_path(make_tokenizer, project: Path) -> None:
    (project / "broken.json").write_text('{"version": "1.0", "model": ')
    with pytest.raises(ConfigError) as caught:
        make_tokenizer("hf:broken.json")
    assert caught.value.file == str(project / "broken.json")
    assert "not a valid tokenizer.json" in caught.value.message


def test_json_that_is_not_a_tokenizer_is_refused(make_tokenizer, project: Path) -> None:
    (project / "config.json").write_text('{"hidden_size": 768}')
    with pytest.raises(ConfigError) as caught:
        make_tokenizer("hf:config.json")
    assert caught.value.file == str(project / "config.json")


def test_a_binary_file_is_refused(make_tokenizer, project: Path) -> None:
    (project / "tokenizer.model").write_bytes(b"\x80\x81\xfe\xff binary")
    with pytest.raises(ConfigError) as caught:
        make_tokenizer("hf:tokenizer.model")
    assert "not UTF-8" in caught.value.message


def test_a_path_is_required(make_tokenizer, project: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        make_tokenizer("hf")
    assert "needs the path of a tokenizer.json" in caught.value.message
    with pytest.raises(ConfigError):
        make_tokenizer("hf:")
    # Written in cairn.toml, the error points there.
    with pytest.raises(ConfigError) as caught:
        make_tokenizer("hf", '[cairn]\ntokenizer = "hf"\n')
    err = caught.value
    assert (err.file, err.table, err.key) == (str(project / "cairn.toml"), "cairn", "tokenizer")
