"""cairn-noop: the default ``noop`` LLM and embedding providers, which refuse every call.

They make ``[cairn] llm = "noop"`` and ``embeddings = "noop"`` safe defaults:
nothing reaches a network and no key is needed, and every call fails with a
``disabled`` error that says which plugin to install, which line to set and
which key to export.
"""
