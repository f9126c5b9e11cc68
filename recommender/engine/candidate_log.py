"""The candidate log of one recommendation: the top candidates with their features and
retrieval scores, every shown tool among them, as npz bytes (no pickle).

Written by the request path, read by off-policy evaluation and ranker training: they
replay what the policy could have chosen from, not only what it showed."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import numpy as np

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


@dataclass(frozen=True, eq=False)
class LoggedCandidates:
    tool_ids: IntArray
    retrieval: FloatArray
    features: FloatArray  # (n, d) as logged: d may be an older feature set's


def read_candidate_log(data: bytes) -> LoggedCandidates:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return LoggedCandidates(
            tool_ids=z["tool_ids"].astype(np.int64),
            retrieval=z["retrieval"].astype(np.float32),
            features=z["features"].astype(np.float32),
        )
