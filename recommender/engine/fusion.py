"""Combine dense and sparse scores of one query's candidates into one score.

Inputs are exact scores of every candidate (the union of both retrievers' top lists),
plus each retriever's own top list, which anchors the normalisation: normalising over
the candidate union would let one retriever's misses shift the other's scale.

* ``rrf``: sum of w / (k + rank) over the retrievers (rank among the candidates).
* ``zscore``: (score - mean) / std of that retriever's top list, weighted sum.
* ``minmax``: (score - min) / (max - min) of the top list, clipped at 0, weighted sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from recommender.engine.types import FloatArray

FusionMethod = Literal["rrf", "zscore", "minmax"]
_EPS = 1e-6


def ranks(scores: FloatArray) -> FloatArray:
    """1-based rank of each score, best = 1 (ties broken by position)."""
    order = np.argsort(-scores, kind="stable")
    result = np.empty(scores.shape[0], dtype=np.float32)
    result[order] = np.arange(1, scores.shape[0] + 1, dtype=np.float32)
    return result


@dataclass(frozen=True)
class TopStats:
    """Summary of one retriever's top list for one query: the scale of its scores."""

    mean: float
    std: float
    low: float
    high: float
    size: int

    @classmethod
    def of(cls, top: FloatArray) -> TopStats:
        if top.size == 0:
            return cls(0.0, 0.0, 0.0, 0.0, 0)
        return cls(float(top.mean()), float(top.std()), float(top.min()), float(top.max()), int(top.size))

    @property
    def peakedness(self) -> float:
        """How far the best score stands above the list, in standard deviations.

        A retriever that is sure of itself on a query (one or two tools far ahead) is
        worth more on that query than one whose top list is flat.
        """
        if self.size < 3:
            return 0.0
        return (self.high - self.mean) / max(self.std, _EPS)


def normalise(scores: FloatArray, top: TopStats, method: FusionMethod) -> FloatArray:
    """Scores of the candidates on a scale set by the retriever's own top list."""
    if top.size == 0:
        return np.zeros_like(scores)
    if method == "zscore":
        result: FloatArray = (scores - top.mean) / max(top.std, _EPS)
        return result
    scaled: FloatArray = np.clip((scores - top.low) / max(top.high - top.low, _EPS), 0.0, None)
    return scaled


def fuse(
    dense: FloatArray,
    sparse: FloatArray,
    dense_top: FloatArray,
    sparse_top: FloatArray,
    *,
    method: FusionMethod,
    dense_weight: float,
    sparse_weight: float,
    rrf_k: float,
    peak_exponent: float = 0.0,
) -> FloatArray:
    """One fused score per candidate for one query; higher is better.

    With ``peak_exponent`` e > 0 the two weights are re-shared per query in proportion
    to peakedness**e (their sum kept): w_d' = 2 w_d p_d^e / (p_d^e + p_s^e), and alike.
    """
    dense_stats, sparse_stats = TopStats.of(dense_top), TopStats.of(sparse_top)
    wd, ws = dense_weight, sparse_weight
    has_sparse = sparse_stats.size > 0 and sparse_stats.high > 0.0
    if not has_sparse:
        ws = 0.0
    if peak_exponent and has_sparse:
        pd, ps = dense_stats.peakedness, sparse_stats.peakedness
        if pd > 0 and ps > 0:
            share = pd**peak_exponent / (pd**peak_exponent + ps**peak_exponent)
            wd, ws = 2 * share * wd, 2 * (1 - share) * ws
    if method == "rrf":
        fused: FloatArray = wd / (rrf_k + ranks(dense))
        if ws:
            sparse_rank = ranks(sparse)
            fused = fused + np.where(sparse > 0, ws / (rrf_k + sparse_rank), 0.0).astype(np.float32)
        return fused
    result: FloatArray = wd * normalise(dense, dense_stats, method)
    if ws:
        result = result + ws * normalise(sparse, sparse_stats, method)
    return result.astype(np.float32)
