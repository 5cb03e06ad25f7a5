"""cairn-vectors: the ``exact`` and ``hnsw`` vector indexes for cairn.

Import the indexes from their modules (``cairn_vectors.exact``,
``cairn_vectors.hnsw``); cairn itself finds them through the
``cairn_register_vector_indexes`` hook in ``cairn_vectors.plugin``.
"""
