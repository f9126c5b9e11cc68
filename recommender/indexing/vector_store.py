"""Tool vectors and their payload in Qdrant, so a rebuild re-embeds only changed tools.

Local mode (a folder under ``var/``) by default, a Qdrant server with ``QDRANT_URL``.
Local mode allows one process at a time on the folder, so a client is opened for the
duration of one rebuild and closed after, never held by a web process.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings

from recommender.engine.types import FloatArray

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredVector:
    tool_id: int
    text_hash: str
    vector: FloatArray


def collection_name(model_name: str) -> str:
    # One collection per embedding model: vectors of two models never mix.
    return f"{settings.QDRANT_COLLECTION_PREFIX}_{hashlib.sha1(model_name.encode()).hexdigest()[:10]}"


class VectorStore:
    def __init__(self, client: Any, model_name: str) -> None:
        self._client = client
        self.collection = collection_name(model_name)

    def ensure_collection(self, dim: int) -> None:
        from qdrant_client import models

        if not self._client.collection_exists(self.collection):
            self._client.create_collection(
                self.collection, vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE)
            )

    def fetch(self, tool_ids: Sequence[int]) -> dict[int, StoredVector]:
        if not tool_ids or not self._client.collection_exists(self.collection):
            return {}
        found: dict[int, StoredVector] = {}
        for start in range(0, len(tool_ids), 1000):
            points = self._client.retrieve(
                self.collection, ids=list(tool_ids[start : start + 1000]), with_vectors=True, with_payload=True
            )
            for point in points:
                found[int(point.id)] = StoredVector(
                    tool_id=int(point.id),
                    text_hash=str((point.payload or {}).get("text_hash", "")),
                    vector=np.asarray(point.vector, dtype=np.float32),
                )
        return found

    def delete(self, tool_ids: Sequence[int]) -> None:
        from qdrant_client import models

        if tool_ids and self._client.collection_exists(self.collection):
            self._client.delete(self.collection, points_selector=models.PointIdsList(points=list(tool_ids)))

    def upsert(self, tool_ids: Sequence[int], vectors: FloatArray, payloads: Sequence[dict[str, Any]]) -> None:
        from qdrant_client import models

        if not tool_ids:
            return
        self.ensure_collection(int(vectors.shape[1]))
        for start in range(0, len(tool_ids), 256):
            stop = start + 256
            self._client.upsert(
                self.collection,
                points=[
                    models.PointStruct(id=int(tid), vector=vec.tolist(), payload=payload)
                    for tid, vec, payload in zip(tool_ids[start:stop], vectors[start:stop], payloads[start:stop])
                ],
            )


def _client() -> Any:
    from qdrant_client import QdrantClient

    if settings.QDRANT_URL:
        return QdrantClient(url=settings.QDRANT_URL, api_key=settings.QDRANT_API_KEY or None, timeout=10)
    settings.QDRANT_PATH.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(settings.QDRANT_PATH))


@contextlib.contextmanager
def open_vector_store(model_name: str) -> Iterator[VectorStore]:
    client = _client()
    try:
        yield VectorStore(client, model_name)
    finally:
        with contextlib.suppress(Exception):
            client.close()


def vector_store_health() -> str:
    """ "ok" or the reason it is not; never opens local mode's folder (a rebuild may hold it)."""
    if not settings.QDRANT_URL:
        return "ok (local mode)" if settings.QDRANT_PATH.parent.exists() else "local folder missing"
    try:
        client = _client()
        try:
            client.get_collections()
        finally:
            client.close()
        return "ok"
    except Exception as exc:  # report any failure as a health status, never raise
        return f"error: {type(exc).__name__}"
