"""cairn-tokenizers: ``approx`` (no dependencies), ``tiktoken:<encoding or model>`` and ``hf:<tokenizer.json>``.

Importing this package imports nothing heavy; tiktoken and tokenizers load
when a tokenizer that needs them is created through ``cairn.plugins``.
"""
