"""Combine dense and sparse scores of one query's candidates into one score.

Inputs are exact scores of every candidate (the union of both retrievers' top lists),
plus each retriever's own top list, which anchors the normalisation: normalising over
the candidate union would let one retriever's misses shift the other's scale.

* ``rrf``: sum of w / (k + rank) over the retrievers (rank among the candidates).
* ``zscore``: (score - mean) / std of that retriever's top list, weighted sum.
* ``minmax``: (score - min) / (max - min) of the top list, clipped at 0, weighted sum.
"""

from __future__ import annotations

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


def normalise(scores: FloatArray, top: FloatArray, method: FusionMethod) -> FloatArray:
    """Scores of the candidates on a scale set by the retriever's own top list."""
    if top.size == 0:
        return np.zeros_like(scores)
    if method == "zscore":
        mean, std = float(top.mean()), float(top.std())
        result: FloatArray = (scores - mean) / max(std, _EPS)
        return result
    low, high = float(top.min()), float(top.max())
    scaled: FloatArray = np.clip((scores - low) / max(high - low, _EPS), 0.0, None)
    return scaled


def peakedness(top: FloatArray) -> float:
    """How far the best score stands above the rest of the list, in standard deviations.

    A retriever that is sure of itself (one or two tools far ahead) is worth more on this
    query than one whose top list is flat.
    """
    if top.size < 3:
        return 0.0
    return float((top.max() - top.mean()) / max(float(top.std()), _EPS))


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
    """One fused score per candidate for one query; higher is better."""
    wd, ws = dense_weight, sparse_weight
    has_sparse = sparse_top.size > 0 and float(sparse_top.max()) > 0.0
    if not has_sparse:
        ws = 0.0
    if peak_exponent and has_sparse:
        pd, ps = peakedness(dense_top), peakedness(sparse_top)
        if pd > 0 and ps > 0:
            wd *= pd**peak_exponent
            ws *= ps**peak_exponent
            total = wd + ws
            wd, ws = 2 * wd / total * dense_weight, 2 * ws / total * sparse_weight
    if method == "rrf":
        fused: FloatArray = wd / (rrf_k + ranks(dense))
        if ws:
            sparse_rank = ranks(sparse)
            fused = fused + np.where(sparse > 0, ws / (rrf_k + sparse_rank), 0.0).astype(
                np.float32
            )
        return fused
    result: FloatArray = wd * normalise(dense, dense_top, method)
    if ws:
        result = result + ws * normalise(sparse, sparse_top, method)
    return result.astype(np.float32)
