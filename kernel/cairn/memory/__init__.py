"""Memory: stored embeddings, search, memory tiers, recall, and a read-only reader.

=============================== =============================================
module                          holds
=============================== =============================================
``cairn.memory.sources``        documents gathered from context, runs, chat
                                and the memory branch
``cairn.memory.indexing``       embedding what is not embedded yet, the index
``cairn.memory.search``         semantic, lexical and hybrid search
``cairn.memory.tiers``          facts and episodes on the ``memory`` branch
``cairn.memory.recall``         recalled memory as one block in materialize
``cairn.memory.reader``         ``MemoryReader``: bounded, read-only queries
``cairn.memory._memory``        ``Memory``: all of it for one project
=============================== =============================================
"""

from __future__ import annotations

from cairn.memory._memory import Memory
from cairn.memory.indexing import IndexReport
from cairn.memory.reader import MemoryReader
from cairn.memory.search import MODES, Result
from cairn.memory.sources import MEMORY_BRANCH
from cairn.memory.tiers import MemoryBranch, MemoryItem

__all__ = ["MEMORY_BRANCH", "MODES", "IndexReport", "Memory", "MemoryBranch", "MemoryItem", "MemoryReader", "Result"]
