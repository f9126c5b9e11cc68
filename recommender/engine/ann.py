"""Dense nearest neighbours by inner product (vectors are L2-normalised: cosine).

Exhaustive scan up to ``flat_max_tools``: every row is scored, over an fp16 copy of the
vectors (a faiss scalar-quantizer index) with the per-row bias folded in as one more
dimension, and the candidates' scores are then recomputed exactly in float32 by the caller
(``scores_of``). Why fp16: the scan is bound by memory bandwidth once the embedder has run
and evicted the caches, and half the bytes is about half the time. Its relative error
(~1e-4) only matters for rows tied at the cut, and the exact rescoring settles those.
(Figures: bench/results/design_notes.json.)

Beyond, ``IndexHNSWFlat``: sub-linear, with efSearch tuned for recall@50 >= 0.98 against
exact. Filters never post-filter ANN hits (a selective filter would leave fewer than k):
few allowed rows are scanned exactly, many go through a faiss ``IDSelectorBitmap``, and a
short HNSW answer falls back to exact.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from recommender.engine.types import BoolArray, FloatArray, IntArray

_FAISS_FILE = "dense.faiss"
_faiss: Any = faiss


@dataclass(frozen=True)
class AnnConfig:
    flat_max_tools: int = 20_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 256  # recall@50 0.995 on 50k vectors near real tool embeddings
    # With at most this many allowed rows, filtered search is an exact scan of just them
    # (a gather plus a small matmul, cheaper than walking a graph that mostly rejects).
    exact_filter_max_rows: int = 4096


class DenseIndex:
    def __init__(self, index: Any, config: AnnConfig) -> None:
        # faiss' SWIG objects are typed loosely by its stubs (no downcasts, no
        # SearchParametersHNSW), so the index is handled as Any inside this class.
        self._index: Any = index
        self.config = config
        self.kind = "hnsw" if isinstance(index, faiss.IndexHNSWFlat) else "flat"
        self._scan: tuple[FloatArray | None, Any] | None = None  # (bias, fp16 scan index) of the last bias
        flat: Any = _faiss.downcast_index(index.storage) if self.kind == "hnsw" else index
        self.n = int(index.ntotal)
        self.dim = int(index.d)
        # A zero-copy view of the vectors faiss holds, for exact scores of any rows.
        if self.n:
            view = faiss.rev_swig_ptr(flat.get_xb(), self.n * self.dim)
            self.vectors: FloatArray = np.asarray(view).reshape(self.n, self.dim)
        else:
            self.vectors = np.zeros((0, self.dim), dtype=np.float32)

    @classmethod
    def build(cls, vectors: FloatArray, config: AnnConfig) -> DenseIndex:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        index: Any
        if n > config.flat_max_tools:
            index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = config.hnsw_ef_construction
        else:
            index = faiss.IndexFlatIP(dim)
        if n:
            index.add(vectors)
        return cls(index, config)

    def save(self, directory: pathlib.Path) -> None:
        faiss.write_index(self._index, str(directory / _FAISS_FILE))

    @classmethod
    def load(cls, directory: pathlib.Path, config: AnnConfig) -> DenseIndex:
        return cls(faiss.read_index(str(directory / _FAISS_FILE)), config)

    def scores_of(self, rows: IntArray, queries: FloatArray, bias: FloatArray | None = None) -> FloatArray:
        """Exact inner products minus the per-row bias, shape (len(queries), len(rows))."""
        # (rows x dim) @ (dim x q) walks the row-major vectors in order: faster than the
        # transposed product for a handful of queries.
        result: FloatArray = np.ascontiguousarray((self.vectors[rows] @ queries.T).T)
        if bias is not None:
            result -= bias[rows]
        return result

    def search(
        self,
        queries: FloatArray,
        k: int,
        allowed: BoolArray | None = None,
        bias: FloatArray | None = None,
    ) -> tuple[FloatArray, IntArray]:
        """Top-k rows per query by inner product minus ``bias[row]``: (scores, rows), (q, k').

        k' = min(k, allowed rows), always filled: a flat index is scanned exactly (one
        matmul, the filter applied as -inf), HNSW searches with a bitmap selector and
        falls back to an exact scan of the allowed rows when the graph walk comes back
        short. HNSW ranks by raw similarity; the bias only re-orders what it returns.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        n_allowed = self.n if allowed is None else int(np.count_nonzero(allowed))
        k = min(k, n_allowed)
        if k <= 0 or queries.shape[0] == 0:
            return (np.zeros((queries.shape[0], 0), np.float32), np.zeros((queries.shape[0], 0), np.int64))
        if self.kind == "flat":
            return self._scan_all(queries, k, allowed, bias)
        if allowed is not None and n_allowed <= self.config.exact_filter_max_rows:
            return self._scan_rows(queries, k, np.flatnonzero(allowed), bias)
        params: Any = _faiss.SearchParametersHNSW()
        bitmap: Any = None
        selector: Any = None
        if allowed is not None:
            bitmap = np.packbits(allowed.astype(np.uint8), bitorder="little")
            selector = _faiss.IDSelectorBitmap(self.n, _faiss.swig_ptr(bitmap))
            params.sel = selector
        params.efSearch = max(self.config.hnsw_ef_search, k)
        scores, rows = self._index.search(queries, k, params=params)
        # faiss reads the selector and bitmap through raw pointers: both must outlive
        # the search, so drop them only now.
        del selector, bitmap
        if (rows < 0).any():
            # HNSW under a selective filter can run out of reachable allowed nodes.
            where = np.arange(self.n) if allowed is None else np.flatnonzero(allowed)
            return self._scan_rows(queries, k, where, bias)
        rows = rows.astype(np.int64)
        if bias is not None:
            scores = scores - bias[rows]
            order = np.argsort(-scores, axis=1, kind="stable")
            scores = np.take_along_axis(scores, order, axis=1)
            rows = np.take_along_axis(rows, order, axis=1)
        return scores.astype(np.float32), rows

    def _scan_all(
        self, queries: FloatArray, k: int, allowed: BoolArray | None, bias: FloatArray | None
    ) -> tuple[FloatArray, IntArray]:
        scan = self._fp16_scan(bias)
        extended = np.zeros((queries.shape[0], scan.d), dtype=np.float32)
        extended[:, : self.dim], extended[:, self.dim] = queries, 1.0
        params: Any = None
        bitmap: Any = None
        if allowed is not None:
            bitmap = np.packbits(allowed.astype(np.uint8), bitorder="little")
            params = _faiss.SearchParameters()
            params.sel = _faiss.IDSelectorBitmap(self.n, _faiss.swig_ptr(bitmap))
        scores, rows = scan.search(extended, k, params=params)
        del params, bitmap  # faiss reads both through raw pointers: drop them only after the search
        return scores.astype(np.float32), rows.astype(np.int64)

    def prepare(self, bias: FloatArray | None) -> None:
        """Build what searches with this bias need now, not on the first request."""
        if self.kind == "flat" and self.n:
            self._fp16_scan(bias)

    def _fp16_scan(self, bias: FloatArray | None) -> Any:
        """[vectors | -bias | 0...] in fp16, so that [q | 1 | 0...] . row = q . v - bias. Zero
        padding to a multiple of 16 dimensions keeps faiss on its SIMD path (385 dimensions
        fall back to its scalar code). Built once per bias array (the retrieval
        index passes the same one on every search)."""
        cached = self._scan
        if cached is not None and cached[0] is bias:
            return cached[1]
        width = -(-(self.dim + 1) // 16) * 16
        rows = np.zeros((self.n, width), dtype=np.float32)
        rows[:, : self.dim] = self.vectors
        if bias is not None:
            rows[:, self.dim] = -bias
        scan = faiss.IndexScalarQuantizer(width, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        scan.add(rows)
        self._scan = (bias, scan)  # one assignment: a concurrent search uses the old or the new pair
        return scan

    def _scan_rows(
        self, queries: FloatArray, k: int, where: IntArray, bias: FloatArray | None
    ) -> tuple[FloatArray, IntArray]:
        return _top_k(self.scores_of(where, queries, bias), k, where.astype(np.int64))

    def neighbour_similarity(self, k: int, batch: int = 1024) -> FloatArray:
        """Mean similarity of each row to its k nearest other rows (its "hubness").

        Exact in blocks for a flat index, through the graph for HNSW (build time only).
        """
        k = min(k, self.n - 1)
        result = np.zeros(self.n, dtype=np.float32)
        if k <= 0:
            return result
        for start in range(0, self.n, batch):
            block = np.ascontiguousarray(self.vectors[start : start + batch])
            if self.kind == "flat":
                sims: FloatArray = block @ self.vectors.T
                sims[np.arange(block.shape[0]), np.arange(start, start + block.shape[0])] = -np.inf
                top = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
            else:
                params: Any = _faiss.SearchParametersHNSW()
                # An approximate neighbourhood is enough for a mean: a small efSearch
                # keeps this build step cheap per tool.
                params.efSearch = max(64, k + 1)
                scores, rows = self._index.search(block, k + 1, params=params)
                own = rows == np.arange(start, start + block.shape[0])[:, None]
                scores = np.where(own | (rows < 0), np.nan, scores)
                top = np.sort(np.nan_to_num(scores, nan=-np.inf), axis=1)[:, -k:]
                top = np.where(np.isinf(top), np.nan, top)
            result[start : start + block.shape[0]] = np.nanmean(top, axis=1)
        return result


def _top_k(sims: FloatArray, k: int, where: IntArray) -> tuple[FloatArray, IntArray]:
    """Best k columns per row of sims, sorted descending, mapped through ``where``."""
    if k < sims.shape[1]:
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    else:
        top = np.broadcast_to(np.arange(sims.shape[1]), (sims.shape[0], sims.shape[1]))
    top_scores = np.take_along_axis(sims, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    return (np.take_along_axis(top_scores, order, axis=1).astype(np.float32), where[top].astype(np.int64))
