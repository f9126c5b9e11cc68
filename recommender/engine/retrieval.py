"""Hybrid candidate retrieval: dense ANN + BM25, fused per query, family-aware.

``search`` for a conversation:

1. per query text (last message, sub-queries, context): the dense top list (faiss; the
   cosine minus a hubness penalty) and the BM25 score of every tool; the candidates are
   the union of both top lists;
2. exact dense and sparse scores of every candidate, z-scored against each retriever's
   own top list and summed with weights that grow with how peaked that list is
   (``fusion.py``);
3. queries combined: the last message counts fully, the best sub-query adds
   ``sub_query_weight`` x its score, the context ``context_weight`` x its score;
4. family awareness: every candidate gains ``family_boost`` x the best score in its
   family (a request for one API usually needs several of its endpoints);
5. sort by the fused score and keep ``n_candidates``.

Why these choices, with numbers: the docstring of bench/tune_retrieval.py.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from recommender.engine.ann import AnnConfig, DenseIndex
from recommender.engine.fusion import FusionMethod, fuse
from recommender.engine.rowmeta import RowLookup, RowMeta
from recommender.engine.sparse import SparseIndex
from recommender.engine.text import FieldWeights, sparse_tokens, tokenize
from recommender.engine.types import (
    BoolArray,
    Candidates,
    ConversationContext,
    FloatArray,
    IntArray,
    ToolDoc,
    ToolFilter,
)

FORMAT_VERSION = 1
_META_FILE = "index.json"


@dataclass(frozen=True)
class RetrievalConfig:
    """Every retrieval knob; the defaults are the values tuned in bench/tune_retrieval.py."""

    # Build time: the BM25 document of a tool (fields repeated by weight) and BM25 params.
    field_weights: FieldWeights = field(default_factory=FieldWeights)
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    # Candidate generation: per query, the dense and sparse top lists united. They also
    # set the scale of each retriever's z-scores.
    n_dense: int = 200
    n_sparse: int = 200
    # Fusion of the two retrievers for one query: z-scores against each retriever's own
    # top list, weighted; each weight scaled by how peaked that retriever's top list is
    # (peak_exponent; 0 turns it off).
    fusion: FusionMethod = "zscore"
    dense_weight: float = 1.5
    sparse_weight: float = 1.0
    rrf_k: float = 60.0  # only for fusion="rrf"
    peak_exponent: float = 1.0
    # Several queries of one conversation: the last message counts fully, the best
    # sub-query adds sub_query_weight times its score, the context context_weight times.
    use_sub_queries: bool = True
    sub_query_weight: float = 0.75
    context_weight: float = 0.3
    # Tool families (the API / MCP server a tool belongs to): every candidate gains
    # family_boost x the best fused score in its family (a family-less tool: its own),
    # which lifts the siblings of a strong endpoint. (Pulling missing siblings of the best
    # families into the candidates, and query expansion by pseudo-relevance feedback, both
    # scored lower in bench/tune_retrieval.py and were removed.)
    family_boost: float = 0.5
    # Hubness correction of dense scores: cos(q, t) - hub_weight * (mean cos of t to its
    # hub_k nearest tools). A tool with many near-duplicates is near every query about
    # its topic and crowds the list (CSLS, Conneau et al. 2018).
    hub_k: int = 5
    hub_weight: float = 0.35
    # Nearest-neighbour index by catalog size.
    ann: AnnConfig = field(default_factory=AnnConfig)


@dataclass(frozen=True)
class _Evidence:
    """What one search knows about its queries before scoring candidates."""

    vectors: FloatArray  # (q, dim) query vectors
    roles: list[str]  # main / sub / context per query
    bias: FloatArray | None  # per-row hubness penalty on cosine, None when off
    sparse_all: FloatArray  # (q, n) BM25 score of every row, 0 where not allowed
    dense_tops: FloatArray  # (q, <=n_dense) each query's dense top-list scores
    sparse_tops: list[FloatArray]  # each query's BM25 top-list scores


def query_roles(ctx: ConversationContext) -> list[str]:
    """Role of each text of ``ctx.queries()``, in the same order: main/sub/context."""
    texts = [(ctx.last_user_message, "main")]
    texts += [(q, "sub") for q in ctx.sub_queries]
    if ctx.context and ctx.context != ctx.last_user_message:
        texts.append((ctx.context, "context"))
    roles = [role for text, role in texts if text]
    if roles and "main" not in roles:
        # No user message (e.g. only assistant turns): the first text stands in for it.
        roles[0] = "main"
    return roles


class RetrievalIndex:
    def __init__(
        self,
        meta: RowMeta,
        dense: DenseIndex,
        sparse: SparseIndex,
        hubness: FloatArray,
        config: RetrievalConfig,
    ) -> None:
        self.meta = meta
        self._hubness = hubness
        self.keys: list[str] = meta.keys
        self.config = config
        self._dense = dense
        self._sparse = sparse
        self._lookup = RowLookup(meta)
        # Computed once: the dense index keys its fp16 scan copy on this very array.
        self._bias = self._dense_bias()
        dense.prepare(self._bias)

    @property
    def size(self) -> int:
        return len(self.keys)

    @property
    def dim(self) -> int:
        """Dimension of the tool vectors (and of the query vectors `search` takes)."""
        return self._dense.dim

    @property
    def ann_kind(self) -> str:
        return self._dense.kind

    @classmethod
    def build(
        cls,
        docs: Sequence[ToolDoc],
        vectors: FloatArray,
        config: RetrievalConfig = RetrievalConfig(),
    ) -> RetrievalIndex:
        if vectors.ndim != 2 or vectors.shape[0] != len(docs):
            raise ValueError(f"vectors shape {vectors.shape} does not match {len(docs)} docs")
        sparse = SparseIndex.build(
            [sparse_tokens(d, config.field_weights) for d in docs],
            k1=config.bm25_k1,
            b=config.bm25_b,
        )
        dense = DenseIndex.build(vectors, config.ann)
        hubness = dense.neighbour_similarity(config.hub_k)
        return cls(RowMeta.from_docs(docs), dense, sparse, hubness, config)

    def save(self, directory: pathlib.Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._dense.save(directory)
        self._sparse.save(directory)
        np.save(directory / "hubness.npy", self._hubness, allow_pickle=False)
        build = {
            "field_weights": dataclasses.asdict(self.config.field_weights),
            "bm25_k1": self.config.bm25_k1,
            "bm25_b": self.config.bm25_b,
            "hub_k": self.config.hub_k,
        }
        payload = {"format": FORMAT_VERSION, "build": build, "rows": self.meta.to_json()}
        (directory / _META_FILE).write_text(json.dumps(payload), encoding="utf-8")

    @classmethod
    def load(cls, directory: pathlib.Path, config: RetrievalConfig = RetrievalConfig()) -> RetrievalIndex:
        """Load a saved index; query-time knobs come from ``config``.

        Build-time knobs (field weights, BM25 k1/b) are baked into the saved BM25 matrix;
        the returned index reports the ones it was built with.
        """
        payload = json.loads((directory / _META_FILE).read_text(encoding="utf-8"))
        if payload.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported index format {payload.get('format')!r}")
        build = payload["build"]
        config = dataclasses.replace(
            config,
            field_weights=FieldWeights(**build["field_weights"]),
            bm25_k1=float(build["bm25_k1"]),
            bm25_b=float(build["bm25_b"]),
            hub_k=int(build["hub_k"]),
        )
        return cls(
            RowMeta.from_json(payload["rows"]),
            DenseIndex.load(directory, config.ann),
            SparseIndex.load(directory),
            np.load(directory / "hubness.npy", allow_pickle=False),
            config,
        )

    def with_config(self, config: RetrievalConfig) -> RetrievalIndex:
        """The same index searched with other query-time knobs (no rebuild).

        Build-time knobs (field weights, BM25 k1/b, ANN kind) stay those of this index.
        """
        config = dataclasses.replace(
            config,
            field_weights=self.config.field_weights,
            bm25_k1=self.config.bm25_k1,
            bm25_b=self.config.bm25_b,
            hub_k=self.config.hub_k,
        )
        return RetrievalIndex(self.meta, self._dense, self._sparse, self._hubness, config)

    def sparse_scores(self, tokens: Sequence[str]) -> FloatArray:
        """BM25 score of every row for already tokenised text (``text.tokenize``)."""
        return self._sparse.scores(tokens)

    def row_of(self, key: str) -> int | None:
        return self._lookup.row_by_key.get(key)

    def mask(self, flt: ToolFilter) -> BoolArray | None:
        return self._lookup.mask(flt)

    # -- search -------------------------------------------------------------------------

    def search(
        self,
        ctx: ConversationContext,
        query_vectors: FloatArray,
        *,
        n_candidates: int = 200,
        allowed: BoolArray | None = None,
        keep_rows: IntArray | None = None,
    ) -> Candidates:
        """The n_candidates best rows by fused score, plus the allowed `keep_rows` wherever
        they rank (scored like any candidate, after the others): the caller's own candidates,
        such as the tools that similar past requests used (`ContextMemory.similar_tools`)."""
        cfg = self.config
        texts, roles = ctx.queries(), query_roles(ctx)
        if query_vectors.ndim != 2 or query_vectors.shape[0] != len(texts):
            raise ValueError(f"query_vectors shape {query_vectors.shape} != ({len(texts)}, dim) queries")
        if allowed is not None and allowed.shape != (self.size,):
            raise ValueError(f"allowed mask shape {allowed.shape} != ({self.size},)")
        keep = [i for i, r in enumerate(roles) if r != "sub" or cfg.use_sub_queries]
        texts = [texts[i] for i in keep]
        roles = [roles[i] for i in keep]
        vectors = np.ascontiguousarray(query_vectors[keep], dtype=np.float32)
        n_allowed = self.size if allowed is None else int(np.count_nonzero(allowed))
        if not texts or n_allowed == 0 or n_candidates <= 0:
            return _empty()

        # 1. candidates: dense top lists and BM25 top lists of every query, united.
        evidence, rows = self._first_pass(texts, roles, vectors, allowed, depth=max(cfg.n_dense, n_candidates))
        kept = self._allowed_rows(keep_rows, allowed)
        rows = np.union1d(rows, kept)
        sparse_all = evidence.sparse_all

        # 2-3. fused score of each candidate over the queries.
        cosine = self._dense.scores_of(rows, vectors)
        fused = self._fuse_queries(rows, cosine, evidence)

        # 4. family awareness.
        if cfg.family_boost > 0 and self._lookup.n_families:
            fused = fused + cfg.family_boost * self._lookup.family_best(rows, fused)

        # 5. order and cut; kept rows below the cut stay, in the same order.
        order = np.lexsort((rows, -fused))
        below = order[n_candidates:]
        order = order[:n_candidates]
        if kept.size:
            order = np.concatenate([order, below[np.isin(rows[below], kept)]])
        rows = rows[order]
        return Candidates(
            rows=rows.astype(np.int64),
            dense=cosine[:, order].max(axis=0).astype(np.float32),
            sparse=sparse_all[:, rows].max(axis=0).astype(np.float32),
            fused=fused[order].astype(np.float32),
        )

    def _first_pass(
        self, texts: list[str], roles: list[str], vectors: FloatArray, allowed: BoolArray | None, *, depth: int
    ) -> tuple[_Evidence, IntArray]:
        """What every query finds on its own (dense and BM25 top lists), and their union."""
        cfg = self.config
        dense_top_scores, dense_top_rows = self._dense.search(vectors, depth, allowed, self._bias)
        sparse_all = np.stack([self._sparse.scores(tokenize(t)) for t in texts])
        if allowed is not None:
            sparse_all[:, ~allowed] = 0.0
        sparse_top_rows = _top_positive(sparse_all, cfg.n_sparse)
        evidence = _Evidence(
            vectors=vectors,
            roles=roles,
            bias=self._bias,
            sparse_all=sparse_all,
            dense_tops=dense_top_scores[:, : cfg.n_dense],
            sparse_tops=[sparse_all[j, r] for j, r in enumerate(sparse_top_rows)],
        )
        rows = np.unique(np.concatenate([dense_top_rows.ravel(), *sparse_top_rows]))
        return evidence, rows[rows >= 0].astype(np.int64)

    def _allowed_rows(self, rows: IntArray | None, allowed: BoolArray | None) -> IntArray:
        if rows is None or rows.size == 0:
            return np.zeros(0, dtype=np.int64)
        rows = np.asarray(rows, dtype=np.int64)
        rows = rows[(rows >= 0) & (rows < self.size)]
        return rows if allowed is None else rows[allowed[rows]]

    def _fuse_queries(self, rows: IntArray, cosine: FloatArray, evidence: _Evidence) -> FloatArray:
        """One score per candidate: per-query fusion, then the queries combined by role."""
        cfg = self.config
        dense = cosine if evidence.bias is None else cosine - evidence.bias[rows]
        roles = evidence.roles
        per_query = [
            fuse(
                dense[j],
                evidence.sparse_all[j, rows],
                evidence.dense_tops[j],
                evidence.sparse_tops[j],
                method=cfg.fusion,
                dense_weight=cfg.dense_weight,
                sparse_weight=cfg.sparse_weight,
                rrf_k=cfg.rrf_k,
                peak_exponent=cfg.peak_exponent,
            )
            for j in range(len(roles))
        ]
        total = np.zeros(rows.shape[0], dtype=np.float32)
        subs = [s for s, r in zip(per_query, roles, strict=True) if r == "sub"]
        for score, role in zip(per_query, roles, strict=True):
            if role == "main":
                total += score
            elif role == "context":
                total += cfg.context_weight * score
        if subs:
            total += cfg.sub_query_weight * np.max(np.stack(subs), axis=0)
        return total

    def _dense_bias(self) -> FloatArray | None:
        if self.config.hub_weight == 0.0:
            return None
        bias: FloatArray = (self.config.hub_weight * self._hubness).astype(np.float32)
        return bias


def _top_positive(scores: FloatArray, k: int) -> list[IntArray]:
    """Per row of scores, the indices of the k largest positive entries."""
    tops: list[IntArray] = []
    for row in scores:
        hits = np.flatnonzero(row > 0)
        if hits.size > k:
            hits = hits[np.argpartition(-row[hits], k - 1)[:k]]
        tops.append(hits.astype(np.int64))
    return tops


def _empty() -> Candidates:
    return Candidates(
        rows=np.zeros(0, dtype=np.int64),
        dense=np.zeros(0, dtype=np.float32),
        sparse=np.zeros(0, dtype=np.float32),
        fused=np.zeros(0, dtype=np.float32),
    )
