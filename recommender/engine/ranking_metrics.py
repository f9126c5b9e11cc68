"""Offline retrieval metrics over ranked tool keys, and latency percentiles.

Binary relevance throughout: a tool is either one the query needs or not. Duplicate keys
in a ranking count once, at their first position, so a buggy ranker cannot score twice
for the same tool.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

import numpy as np


def _top_unique(ranked: Sequence[str], k: int) -> list[str]:
    seen: set[str] = set()
    top: list[str] = []
    for key in ranked:
        if len(top) >= k:
            break
        if key not in seen:
            seen.add(key)
            top.append(key)
    return top


def recall_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Share of the relevant tools found in the top k (0.0 when nothing is relevant)."""
    wanted = set(relevant)
    if not wanted or k <= 0:
        return 0.0
    return sum(1 for key in _top_unique(ranked, k) if key in wanted) / len(wanted)


def ndcg_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """nDCG@k with gain 1 per relevant tool, discount 1/log2(rank+1), ideal min(k, |rel|)."""
    wanted = set(relevant)
    if not wanted or k <= 0:
        return 0.0
    dcg = sum(1.0 / math.log2(rank + 2) for rank, key in enumerate(_top_unique(ranked, k)) if key in wanted)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(k, len(wanted))))
    return dcg / ideal


def complete_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """1.0 when every relevant tool is in the top k (the agent has all it needs)."""
    wanted = set(relevant)
    if not wanted or k <= 0:
        return 0.0
    return 1.0 if wanted <= set(_top_unique(ranked, k)) else 0.0


def percentiles(values_ms: Sequence[float], ps: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    """{"p50": ..., "p95": ..., "p99": ...} by linear interpolation; NaN when empty."""
    if len(values_ms) == 0:
        return {f"p{p:g}": math.nan for p in ps}
    values = np.asarray(values_ms, dtype=np.float64)
    return {f"p{p:g}": float(np.percentile(values, p)) for p in ps}
