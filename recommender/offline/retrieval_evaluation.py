"""Offline retrieval evaluation on any catalog and query files in the shared format.

The catalog is imported into a throwaway namespace through the real importer, indexed with
the real snapshot code, and every query is asked as a one-message conversation through the
same `read_conversation` → embed → `retrieve` steps as the API, so the numbers describe
what is served. BM25 alone and dense alone are computed on the same index for comparison.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from catalog.importers import ToolSpec, parse_tools
from catalog.models import Tool
from catalog.services import tool_import
from recommender.engine.conversation import read_conversation
from recommender.engine.ranking_metrics import complete_at_k, ndcg_at_k, percentiles, recall_at_k
from recommender.engine.retrieval import RetrievalIndex
from recommender.engine.text import tokenize
from recommender.engine.types import ConversationContext, FloatArray
from recommender.indexing.embedders import configured_model_name, get_embedder
from recommender.indexing.snapshots import LoadedSnapshot, embed_tools, retrieval_config, tool_doc
from recommender.indexing.vector_store import open_vector_store
from recommender.serving.candidates import retrieve

log = logging.getLogger(__name__)
SYSTEMS = ("bm25", "dense", "toolrec")


class EvaluationError(ValueError):
    pass


@dataclass(frozen=True)
class Query:
    qid: str
    text: str
    relevant: tuple[str, ...]  # tool keys in the evaluation namespace
    source: str  # the queries file it came from


@dataclass
class QuerySetResult:
    name: str
    queries: int
    skipped: int
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # system -> metric -> value


def load_queries(path: Path, namespace: str, known: set[str], sample: int | None, seed: int) -> tuple[list[Query], int]:
    queries, skipped = [], 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            text, relevant = record["query"], record["relevant"]
            if not isinstance(text, str) or not isinstance(relevant, list):
                raise TypeError
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise EvaluationError(f"{path.name} line {number}: expected query (string) and relevant (list)") from exc
        keys = tuple(f"{namespace}/{r}" for r in relevant if f"{namespace}/{r}" in known)
        if not keys or not text.strip():
            skipped += 1
            continue
        queries.append(Query(str(record.get("qid", number)), text, keys, path.name))
    if sample is not None and sample < len(queries):
        queries = random.Random(seed).sample(queries, sample)
    return queries, skipped


def _score(ranked: Sequence[str], relevant: Sequence[str], k: int) -> dict[str, float]:
    return {
        "recall@5": recall_at_k(ranked, relevant, 5),
        "recall@10": recall_at_k(ranked, relevant, 10),
        f"ndcg@{k}": ndcg_at_k(ranked, relevant, k),
        f"c@{k}": complete_at_k(ranked, relevant, k),
    }


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {name: 100 * float(np.mean([r[name] for r in rows])) for name in rows[0]} if rows else {}


@dataclass
class EvaluationCatalog:
    namespace: str
    snapshot: LoadedSnapshot
    tool_vectors: FloatArray
    embedded: int
    reused: int
    seconds: float


def catalog_load(tool_files: Sequence[Path], namespace: str) -> EvaluationCatalog:
    started = time.perf_counter()
    names: set[str] = set()
    for path in tool_files:
        records = list(parse_tools(path.read_text(encoding="utf-8"), "auto", source=path.name))
        names.update(r.name for r in records if isinstance(r, ToolSpec))
        report = tool_import(records=records, namespace=namespace, schedule_rebuild=False)
        if report.rejected:
            log.warning("%s: %d records rejected, first: %s", path.name, len(report.rejected), report.rejected[0])
    # A namespace kept from an earlier run (--keep) must hold exactly the tools of these files.
    Tool.objects.filter(namespace=namespace).exclude(name__in=names).delete()
    tools = list(Tool.objects.filter(namespace=namespace, enabled=True).order_by("id"))
    if not tools:
        raise EvaluationError("the tool files hold no valid tools")
    vectors, embedded, reused = embed_tools(tools, [tool_doc(t) for t in tools], configured_model_name())
    index = RetrievalIndex.build([tool_doc(t) for t in tools], vectors, retrieval_config())
    return EvaluationCatalog(
        namespace, LoadedSnapshot.in_memory(index, tools), vectors, embedded, reused, time.perf_counter() - started
    )


def catalog_drop(namespace: str) -> None:
    ids = list(Tool.objects.filter(namespace=namespace).values_list("pk", flat=True))
    with open_vector_store(configured_model_name()) as store:
        store.delete(ids)
    Tool.objects.filter(namespace=namespace).delete()


def namespace_for(tool_files: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in tool_files:
        digest.update(path.read_bytes())
    return f"eval-{digest.hexdigest()[:10]}"


def _embed_all(contexts: list[ConversationContext]) -> dict[str, FloatArray]:
    texts = sorted({t for c in contexts for t in c.queries()})
    vectors = get_embedder().embed(texts) if texts else np.zeros((0, 0), dtype=np.float32)
    return dict(zip(texts, vectors, strict=True))


def _evaluate_set(
    catalog: EvaluationCatalog, name: str, queries: list[Query], skipped: int, k: int, engine_ms: list[float]
) -> QuerySetResult:
    snapshot = catalog.snapshot
    index, keys = snapshot.index, snapshot.keys
    contexts = [read_conversation([{"role": "user", "content": q.text}]) for q in queries]
    vectors = _embed_all(contexts)

    def toolrec(i: int) -> list[str]:
        context = contexts[i]
        query_vectors = np.stack([vectors[t] for t in context.queries()])
        started = time.perf_counter()
        candidates = retrieve(snapshot, context, query_vectors, k=k)
        engine_ms.append((time.perf_counter() - started) * 1000)
        return [keys[r] for r in candidates.rows[:k]]

    def bm25(i: int) -> list[str]:
        scores = index.sparse_scores(tokenize(queries[i].text))
        top = np.argsort(-scores, kind="stable")[:k]
        return [keys[r] for r in top if scores[r] > 0]

    def dense(i: int) -> list[str]:
        query_vector = vectors[contexts[i].last_user_message]
        return [keys[r] for r in np.argsort(-(catalog.tool_vectors @ query_vector), kind="stable")[:k]]

    systems: dict[str, Callable[[int], list[str]]] = {"bm25": bm25, "dense": dense, "toolrec": toolrec}
    result = QuerySetResult(name, len(queries), skipped)
    for system, rank in systems.items():
        result.metrics[system] = _mean([_score(rank(i), queries[i].relevant, k) for i in range(len(queries))])
    return result


def evaluate(catalog: EvaluationCatalog, query_sets: list[tuple[str, list[Query], int]], k: int) -> dict[str, Any]:
    engine_ms: list[float] = []
    results = [_evaluate_set(catalog, name, queries, skipped, k, engine_ms) for name, queries, skipped in query_sets]
    index = catalog.snapshot.index
    return {
        "tools": index.size,
        "k": k,
        "index_kind": getattr(index, "ann_kind", type(index).__name__),
        "catalog_seconds": round(catalog.seconds, 1),
        "embedded": catalog.embedded,
        "reused": catalog.reused,
        "results": [r.__dict__ for r in results],
        "engine_latency_ms": percentiles(engine_ms) if engine_ms else {},
        "query_embedding_ms": _embedding_latency([q.text for _, qs, _ in query_sets for q in qs][:100]),
    }


def _embedding_latency(texts: list[str]) -> dict[str, float]:
    """One query at a time, as a request embeds it (uncached)."""
    embedder = get_embedder()
    timings = []
    for text in texts:
        started = time.perf_counter()
        embedder.embed([text])
        timings.append((time.perf_counter() - started) * 1000)
    return percentiles(timings) if timings else {}
