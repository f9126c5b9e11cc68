"""The candidate log of one recommendation: the top candidates with their features and
retrieval scores, every shown tool among them, as npz bytes (no pickle).

Written by the request path, read by off-policy evaluation and ranker training: they
replay what the policy could have chosen from, not only what it showed."""

from __future__ import annotations

import io
import time

import numpy as np
import numpy.typing as npt

from recommender.engine.types import FloatArray, IntArray


def candidate_log(
    tool_ids: IntArray, features: FloatArray, shown_rows: IntArray, retrieval_scores: FloatArray, limit: int
) -> bytes:
    """The top `limit` candidates (in retrieval order) plus every shown one."""
    keep = np.union1d(np.arange(min(limit, len(tool_ids))), shown_rows)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        tool_ids=tool_ids[keep].astype(np.int64),
        retrieval=retrieval_scores[keep].astype(np.float32),
        features=features[keep].astype(np.float32),
        created=np.float64(time.time()),
    )
    return buffer.getvalue()


def read_candidate_log(data: bytes) -> dict[str, npt.NDArray[np.generic]]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {name: z[name] for name in ("tool_ids", "retrieval", "features")}
