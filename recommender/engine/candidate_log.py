"""The candidate log of one recommendation: the top candidates with their features and
retrieval scores, every shown tool among them, as npz bytes (no pickle).

Written by the request path, read by off-policy evaluation and ranker training: they
replay what the policy could have chosen from, not only what it showed."""

from __future__ import annotations

import io
import re
import time
import zipfile
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True, eq=False)
class LoggedCandidates:
    tool_ids: IntArray
    retrieval: FloatArray
    features: FloatArray  # (n, d) as logged: d may be an older feature set's


def read_candidate_log(data: bytes) -> LoggedCandidates:
    try:
        arrays = _fast_npz(data, ("tool_ids", "retrieval", "features"))
    except ValueError:  # not the plain layout `candidate_log` writes: numpy's own reader
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = [z["tool_ids"], z["retrieval"], z["features"]]
    tool_ids, retrieval, features = arrays
    return LoggedCandidates(
        tool_ids=tool_ids.astype(np.int64), retrieval=retrieval.astype(np.float32), features=features.astype(np.float32)
    )


# An .npy header as np.savez writes it for a plain little-endian array (format 1.0).
_NPY_HEADER = re.compile(rb"\{'descr': '(<[fi][48])', 'fortran_order': False, 'shape': \(([0-9, ]*)\), \}\s*")


def _fast_npz(data: bytes, names: tuple[str, ...]) -> list[npt.NDArray[Any]]:
    """The named arrays of an npz written by `candidate_log`, read without numpy's header
    parser: it evaluates every header with `ast.literal_eval`, which made up 70% of reading a
    log (350 us of the shadow worker's per-request cost). Anything else raises ValueError."""
    out = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in names:
            raw = archive.read(f"{name}.npy")
            if raw[:8] != b"\x93NUMPY\x01\x00":
                raise ValueError("not an .npy 1.0 member")
            end = 10 + int.from_bytes(raw[8:10], "little")
            header = _NPY_HEADER.fullmatch(raw[10:end])
            if header is None:
                raise ValueError("not a plain little-endian array")
            shape = tuple(int(v) for v in header.group(2).split(b",") if v.strip())
            out.append(np.frombuffer(raw, dtype=np.dtype(header.group(1).decode()), offset=end).reshape(shape))
    return out
