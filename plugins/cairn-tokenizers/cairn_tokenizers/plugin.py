"""cairn's hook module for the tokenizers: registers ``approx``, ``tiktoken`` and ``hf``.

Kept light on purpose: cairn imports it at start-up, so it imports only the
config classes. tiktoken and tokenizers are imported by the factories, the
first time a tokenizer that needs them is created.
"""

from __future__ import annotations

from collections.abc import Callable

from cairn.hookspecs import hookimpl
from cairn.plugins import FactoryContext
from cairn.tokenizers import Tokenizer
from cairn_tokenizers.config import ApproxConfig, HfConfig, TiktokenConfig

__all__ = ["cairn_register_tokenizers"]


def _approx(config: ApproxConfig, context: FactoryContext) -> Tokenizer:
    from cairn.tokenizers import MessageOverhead
    from cairn_tokenizers.approx import ApproxTokenizer

    return ApproxTokenizer(scale=config.scale, overhead=config.overhead(MessageOverhead()))


def _tiktoken(config: TiktokenConfig, context: FactoryContext) -> Tokenizer:
    from cairn_tokenizers.tiktoken_tokenizer import create

    return create(config, context)


def _hf(config: HfConfig, context: FactoryContext) -> Tokenizer:
    from cairn_tokenizers.hf import create

    return create(config, context)


@hookimpl
def cairn_register_tokenizers(register: Callable[..., None]) -> None:
    """Register the three tokenizers with their config classes."""
    register(
        "approx",
        _approx,
        ApproxConfig,
        description="estimate of cl100k_base counts with one regular expression; no dependencies",
    )
    register(
        "tiktoken",
        _tiktoken,
        TiktokenConfig,
        description="exact counts for OpenAI encodings (tiktoken:<encoding or model>), loaded offline",
        requires={"tiktoken": "cairn-tokenizers[tiktoken]"},
    )
    register(
        "hf",
        _hf,
        HfConfig,
        description="exact counts from a Hugging Face tokenizer.json (hf:<path>)",
        requires={"tokenizers": "cairn-tokenizers[hf]"},
    )
