"""The (conversation, candidate tool) feature matrix, built in one vectorised pass.

Every column is scaled to a small, fixed range (roughly [0, 1], a few may reach 2) so that
one shared linear model (``bandit.py``), LambdaMART (``ltr.py``) and the exploration terms
of ``policy.py`` can all read the same matrix without per-deployment normalisation:

* counts go through ``log1p(x) / log1p(scale)`` and are clipped, so a tool with ten
  million uses does not dominate a linear score;
* ranks become ``1 / (1 + rank)`` (the head matters) and a gentler log decay (the tail);
* recency becomes ``exp(-age / tau)``, 0 for never used;
* rates are Beta posterior means, shrunk towards a prior so that a tool shown twice and
  used twice is not ranked as a sure thing;
* list-relative columns (``sparse_rel``, ``fused_rel``, ``votes_share``) are divided by the
  best candidate of the same request, because BM25 and fused scores have no absolute scale.

Conversation scalars (``has_error``, ``has_code``, ``message_depth``) are the same for every
row: they cannot change the order under a linear score on their own, but they calibrate the
predicted use rate (what doubly robust evaluation reads) and feed LambdaMART's interactions.

The column order is part of every trained model: append new columns at the end and bump
``FEATURE_SCHEMA_VERSION``; never reorder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recommender.engine.types import BoolArray, FloatArray

FEATURE_SCHEMA_VERSION = 1

FEATURE_NAMES: tuple[str, ...] = (
    "bias",
    "dense",  # best cosine similarity over the queries, in [-1, 1]
    "sparse_log",  # log1p(BM25) / log1p(bm25_scale)
    "sparse_rel",  # BM25 / best BM25 among the candidates
    "fused_rel",  # retrieval score min-max scaled within the candidates
    "rank_recip",  # 1 / (1 + fused_rank)
    "rank_log",  # 1 - log1p(rank) / log1p(rank_scale)
    "pop_mean",  # Beta posterior mean of the tool's use rate (uses / shows)
    "pop_uncertainty",  # 1 when never shown, falling like 1/sqrt(shows)
    "log_uses",
    "log_shows",
    "recency",  # exp(-seconds since last use / tau), 0 when never used
    "user_mean",  # this user's use rate of the tool, shrunk towards pop_mean
    "user_log_uses",
    "co_use",  # co-use with the tools already called in the conversation
    "votes_log",  # log1p(neighbour votes) / log1p(memory_k)
    "votes_share",  # this candidate's share of all neighbour votes
    "is_new",
    "new_x_dense",  # is_new * max(dense, 0): new tools that are relevant
    "already_called",  # the tool was already called in this conversation
    "has_error",
    "has_code",
    "message_depth",  # log1p(message_count) / log1p(message_scale)
)
FEATURE_INDEX: dict[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}
N_FEATURES = len(FEATURE_NAMES)

Float64Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FeatureConfig:
    """Scales and priors; the defaults suit a catalog of 10k-1M tools."""

    prior_alpha: float = 1.0  # Beta(1, 9) prior of a tool's use rate: a new tool starts at 10%
    prior_beta: float = 9.0
    user_prior_strength: float = 5.0  # pseudo-shows pulling a user's rate to the tool's
    bm25_scale: float = 20.0  # a BM25 score this high maps to sparse_log = 1
    rank_scale: float = 200.0  # rank at which rank_log reaches 0
    count_scale: float = 10_000.0  # global uses/shows at which log_uses reaches 1
    user_count_scale: float = 100.0
    co_use_scale: float = 100.0
    memory_k: int = 20  # neighbours read by ContextMemory.votes (bounds the votes)
    recency_tau_seconds: float = 7 * 24 * 3600.0
    message_scale: float = 50.0

    def __post_init__(self) -> None:
        if self.prior_alpha <= 0 or self.prior_beta <= 0:
            raise ValueError("Beta prior parameters must be positive")
        if (
            min(
                self.bm25_scale,
                self.rank_scale,
                self.count_scale,
                self.user_count_scale,
                self.co_use_scale,
                self.recency_tau_seconds,
                self.message_scale,
            )
            <= 0
        ):
            raise ValueError("scales must be positive")
        if self.memory_k < 1 or self.user_prior_strength < 0:
            raise ValueError("memory_k must be >= 1 and user_prior_strength >= 0")


@dataclass(frozen=True, eq=False)
class FeatureInputs:
    """Everything known about n candidates of one request, as arrays aligned to the rows."""

    dense: FloatArray
    sparse: FloatArray
    fused: FloatArray
    fused_rank: npt.NDArray[np.integer]  # 0-based position in the retrieval order
    tool_uses: npt.NDArray[np.number]
    tool_shows: npt.NDArray[np.number]
    seconds_since_last_use: npt.NDArray[np.floating]  # np.inf when never used
    user_uses: npt.NDArray[np.number]
    user_shows: npt.NDArray[np.number]
    co_use: npt.NDArray[np.floating]  # >= 0
    neighbor_votes: npt.NDArray[np.floating]  # ContextMemory.votes
    is_new: BoolArray
    has_error: bool = False
    has_code: bool = False
    message_count: int = 0
    already_called: BoolArray | None = None  # None: no tool was called yet

    def __post_init__(self) -> None:
        n = self.dense.shape[0]
        arrays = (
            self.sparse,
            self.fused,
            self.fused_rank,
            self.tool_uses,
            self.tool_shows,
            self.seconds_since_last_use,
            self.user_uses,
            self.user_shows,
            self.co_use,
            self.neighbor_votes,
            self.is_new,
        )
        if any(a.shape != (n,) for a in (self.dense, *arrays)):
            raise ValueError("all FeatureInputs arrays must be 1-d with one entry per candidate")
        if self.already_called is not None and self.already_called.shape != (n,):
            raise ValueError("already_called must have one entry per candidate")

    def __len__(self) -> int:
        return int(self.dense.shape[0])


def _log_scaled(x: npt.NDArray[np.number], scale: float, cap: float = 2.0) -> Float64Array:
    out: Float64Array = np.log1p(np.maximum(x, 0.0)) / np.log1p(scale)
    return np.minimum(out, cap)


def _relative_to_best(x: Float64Array) -> Float64Array:
    best = float(x.max()) if x.size else 0.0
    return x / best if best > 0 else np.zeros_like(x)


def build_features(inputs: FeatureInputs, config: FeatureConfig | None = None) -> FloatArray:
    """The (n, len(FEATURE_NAMES)) float32 feature matrix of one request's candidates."""
    cfg = config if config is not None else FeatureConfig()
    n = len(inputs)
    out = np.empty((n, N_FEATURES), dtype=np.float32)
    if n == 0:
        return out
    col = FEATURE_INDEX

    dense = np.clip(inputs.dense.astype(np.float64), -1.0, 1.0)
    sparse = np.maximum(inputs.sparse.astype(np.float64), 0.0)
    fused = inputs.fused.astype(np.float64)
    rank = np.maximum(inputs.fused_rank.astype(np.float64), 0.0)
    out[:, col["bias"]] = 1.0
    out[:, col["dense"]] = dense
    out[:, col["sparse_log"]] = _log_scaled(sparse, cfg.bm25_scale)
    out[:, col["sparse_rel"]] = _relative_to_best(sparse)
    spread = float(fused.max() - fused.min())
    out[:, col["fused_rel"]] = (fused - fused.min()) / spread if spread > 0 else 1.0
    out[:, col["rank_recip"]] = 1.0 / (1.0 + rank)
    out[:, col["rank_log"]] = np.maximum(1.0 - np.log1p(rank) / np.log1p(cfg.rank_scale), 0.0)

    # Beta(a0 + uses, b0 + shows - uses). The uncertainty column is the posterior std over
    # the prior's std at the same mean, sqrt((a0 + b0 + 1) / (a0 + b0 + shows + 1)): 1 for a
    # never-shown tool whatever the prior, falling like 1/sqrt(shows), and (unlike the raw
    # std, which grows as the mean moves towards 0.5) it only falls when the tool is shown.
    uses = np.maximum(inputs.tool_uses.astype(np.float64), 0.0)
    shows = np.maximum(inputs.tool_shows.astype(np.float64), uses)
    strength = cfg.prior_alpha + cfg.prior_beta
    pop_mean = (cfg.prior_alpha + uses) / (strength + shows)
    out[:, col["pop_mean"]] = pop_mean
    out[:, col["pop_uncertainty"]] = np.sqrt((strength + 1.0) / (strength + shows + 1.0))
    out[:, col["log_uses"]] = _log_scaled(uses, cfg.count_scale)
    out[:, col["log_shows"]] = _log_scaled(shows, cfg.count_scale)
    age = np.maximum(inputs.seconds_since_last_use.astype(np.float64), 0.0)
    out[:, col["recency"]] = np.exp(-age / cfg.recency_tau_seconds)  # exp(-inf) == 0

    # A user's own rate, shrunk towards the tool's global rate with m pseudo-shows: with
    # no history it equals pop_mean, and it moves away only as the user's evidence grows.
    user_uses = np.maximum(inputs.user_uses.astype(np.float64), 0.0)
    user_shows = np.maximum(inputs.user_shows.astype(np.float64), user_uses)
    m = cfg.user_prior_strength
    denom = user_shows + m
    out[:, col["user_mean"]] = np.where(
        denom > 0, (user_uses + m * pop_mean) / np.where(denom > 0, denom, 1.0), pop_mean
    )
    out[:, col["user_log_uses"]] = _log_scaled(user_uses, cfg.user_count_scale)
    out[:, col["co_use"]] = _log_scaled(inputs.co_use, cfg.co_use_scale)

    votes = np.maximum(inputs.neighbor_votes.astype(np.float64), 0.0)
    out[:, col["votes_log"]] = _log_scaled(votes, float(cfg.memory_k))
    total = float(votes.sum())
    out[:, col["votes_share"]] = votes / total if total > 0 else 0.0
    is_new = inputs.is_new.astype(np.float64)
    out[:, col["is_new"]] = is_new
    out[:, col["new_x_dense"]] = is_new * np.maximum(dense, 0.0)
    out[:, col["already_called"]] = 0.0 if inputs.already_called is None else inputs.already_called.astype(np.float64)

    out[:, col["has_error"]] = float(inputs.has_error)
    out[:, col["has_code"]] = float(inputs.has_code)
    depth = np.log1p(max(inputs.message_count, 0)) / np.log1p(cfg.message_scale)
    out[:, col["message_depth"]] = min(depth, 2.0)
    return out
