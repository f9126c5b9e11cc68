"""LightGBM LambdaMART trained on logged impressions, and cached prediction.

A group is one impression (the rows its candidates, in retrieval order); the label is the
graded relevance (0 shown and unused, 1 used, higher for explicit positive feedback). The
groups are split at random, by group, into train / early-stopping / held-out test, so no
conversation's rows leak across; the reported ndcg@5/@10 are on the test groups, next to
the same metric for the retrieval order, so the admin can see whether a model is worth
activating. Groups with no relevant row are left out of the ndcg means (LightGBM counts
them as 1, which flatters every model equally and hides differences).

Early stopping ends training well before the round limit on logged data. One thread is
the default because LightGBM's OpenMP threads spin-wait: on cores shared with web
processes, more threads are slower, not faster (figures: bench/results/design_notes.json).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from recommender.engine.features import FEATURE_NAMES
from recommender.engine.types import FloatArray

Float64Array = npt.NDArray[np.float64]

DEFAULT_PARAMS: Mapping[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [5, 10],
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambdarank_truncation_level": 20,
    "num_threads": 1,  # OpenMP spin-waits: extra threads on busy cores slow it down (module docstring)
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}
DEFAULT_ROUNDS = 200
DEFAULT_EARLY_STOPPING = 20


@dataclass(frozen=True)
class TrainedRanker:
    model_text: str  # LightGBM's text format: what is stored and versioned
    metrics: dict[str, float]
    feature_names: tuple[str, ...]
    feature_importance: dict[str, float] = field(default_factory=dict)  # gain share


def ndcg_at(scores: npt.ArrayLike, labels: npt.ArrayLike, groups: npt.ArrayLike, k: int) -> float:
    """Mean NDCG@k over groups with at least one relevant row; gain 2^label - 1.

    Ties in ``scores`` keep the row order, so scoring by -position reproduces the given order.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    sizes = np.asarray(groups, dtype=np.int64)
    if sizes.sum() != s.shape[0] or y.shape != s.shape:
        raise ValueError("group sizes must add up to the number of rows")
    n_groups, width = sizes.shape[0], int(sizes.max()) if sizes.size else 0
    if n_groups == 0:
        return float("nan")
    # pad every group to `width` columns: score -inf, gain 0, so padding sorts last
    starts = np.cumsum(sizes) - sizes
    col = np.arange(s.shape[0]) - np.repeat(starts, sizes)
    row = np.repeat(np.arange(n_groups), sizes)
    padded_s = np.full((n_groups, width), -np.inf)
    gains = np.zeros((n_groups, width))
    padded_s[row, col] = s
    gains[row, col] = 2.0**y - 1.0
    discounts = 1.0 / np.log2(np.arange(2, min(k, width) + 2))
    ranked = np.take_along_axis(gains, np.argsort(-padded_s, axis=1, kind="stable"), axis=1)
    dcg = ranked[:, :k] @ discounts
    ideal = -np.sort(-gains, axis=1)[:, :k] @ discounts
    keep = ideal > 0
    return float((dcg[keep] / ideal[keep]).mean()) if keep.any() else float("nan")


def _split_groups(n_groups: int, valid_fraction: float, rng: np.random.Generator) -> tuple[Any, Any, Any]:
    """Boolean masks over groups: train, early-stopping, test."""
    perm = rng.permutation(n_groups)
    n_test = max(1, round(n_groups * valid_fraction))
    n_stop = round((n_groups - n_test) * 0.1) if n_groups - n_test >= 20 else 0
    masks = [np.zeros(n_groups, dtype=bool) for _ in range(3)]
    masks[2][perm[:n_test]] = True
    masks[1][perm[n_test : n_test + n_stop]] = True
    masks[0][perm[n_test + n_stop :]] = True
    return masks[0], masks[1], masks[2]


def train_lambdamart(
    X: FloatArray,
    y: npt.ArrayLike,
    groups: npt.ArrayLike,
    *,
    params: Mapping[str, Any] | None = None,
    valid_fraction: float = 0.2,
    seed: int = 0,
    feature_names: Sequence[str] | None = None,
    baseline_scores: npt.ArrayLike | None = None,
) -> TrainedRanker:
    """Train LambdaMART on rows grouped by impression (``groups``: sizes, in row order).

    ``params`` override DEFAULT_PARAMS; ``num_boost_round`` and ``early_stopping_rounds``
    may be given there too. The baseline is ``baseline_scores`` or, by default, the row
    order inside each group (the retrieval order).
    """
    x = np.asarray(X, dtype=np.float32)
    labels = np.asarray(y, dtype=np.int32)
    sizes = np.asarray(groups, dtype=np.int64)
    if x.ndim != 2 or labels.shape != (x.shape[0],) or sizes.sum() != x.shape[0]:
        raise ValueError("X must be (n, d), y (n,), and the group sizes must sum to n")
    if not 0 < valid_fraction < 1 or sizes.shape[0] < 2:
        raise ValueError("need 0 < valid_fraction < 1 and at least two groups")
    names = (
        tuple(feature_names)
        if feature_names is not None
        else (FEATURE_NAMES if x.shape[1] == len(FEATURE_NAMES) else tuple(f"f{i}" for i in range(x.shape[1])))
    )
    if len(names) != x.shape[1]:
        raise ValueError("one feature name per column")
    starts = np.cumsum(sizes) - sizes
    baseline = (
        np.asarray(baseline_scores, dtype=np.float64)
        if baseline_scores is not None
        else -(np.arange(x.shape[0]) - np.repeat(starts, sizes)).astype(np.float64)
    )

    merged = {**DEFAULT_PARAMS, **(params or {}), "seed": seed}
    rounds = int(merged.pop("num_boost_round", DEFAULT_ROUNDS))
    patience = int(merged.pop("early_stopping_rounds", DEFAULT_EARLY_STOPPING))
    train_g, stop_g, test_g = _split_groups(sizes.shape[0], valid_fraction, np.random.default_rng(seed))
    row_group = np.repeat(np.arange(sizes.shape[0]), sizes)

    def dataset(mask: Any, reference: lgb.Dataset | None = None) -> lgb.Dataset:
        rows = mask[row_group]
        return lgb.Dataset(
            x[rows],
            label=labels[rows],
            group=sizes[mask],
            feature_name=list(names),
            reference=reference,
            free_raw_data=True,
            params={"verbosity": -1},
        )

    started = time.perf_counter()
    train_set = dataset(train_g)
    valid_sets: list[lgb.Dataset] = []
    callbacks: list[Callable[..., Any]] = []
    if stop_g.any():
        valid_sets.append(dataset(stop_g, train_set))
        callbacks.append(lgb.early_stopping(patience, first_metric_only=False, verbose=False))
    booster = lgb.train(merged, train_set, num_boost_round=rounds, valid_sets=valid_sets, callbacks=callbacks)
    seconds = time.perf_counter() - started

    test_rows = test_g[row_group]
    predicted = np.asarray(
        booster.predict(x[test_rows], num_iteration=booster.best_iteration or None), dtype=np.float64
    )
    metrics = {
        "train_seconds": seconds,
        "best_iteration": float(booster.best_iteration or booster.current_iteration()),
        "n_train_groups": float(train_g.sum()),
        "n_test_groups": float(test_g.sum()),
    }
    for k in (5, 10):
        metrics[f"ndcg@{k}"] = ndcg_at(predicted, labels[test_rows], sizes[test_g], k)
        metrics[f"baseline_ndcg@{k}"] = ndcg_at(baseline[test_rows], labels[test_rows], sizes[test_g], k)
    gain = booster.feature_importance(importance_type="gain").astype(np.float64)
    total = float(gain.sum())
    importance = {name: float(g / total) if total > 0 else 0.0 for name, g in zip(names, gain)}
    model_text = booster.model_to_string(num_iteration=booster.best_iteration or None)
    return TrainedRanker(model_text=model_text, metrics=metrics, feature_names=names, feature_importance=importance)


_CACHE_SIZE = 4
_boosters: OrderedDict[str, lgb.Booster] = OrderedDict()
_boosters_lock = threading.Lock()
_last: list[tuple[str, lgb.Booster]] = []  # the last (text object, booster): the usual hit


def load_ranker(model_text: str) -> lgb.Booster:
    """The Booster for a model text, parsed once per process and cached by content hash."""
    with _boosters_lock:
        if _last and _last[0][0] is model_text:  # same str object as last time: no hashing
            return _last[0][1]
    digest = hashlib.sha256(model_text.encode()).hexdigest()
    with _boosters_lock:
        booster = _boosters.get(digest)
        if booster is not None:
            _boosters.move_to_end(digest)
            _last[:] = [(model_text, booster)]
            return booster
    booster = lgb.Booster(model_str=model_text)  # parse outside the lock: a large model parses slowly
    with _boosters_lock:
        _boosters[digest] = booster
        while len(_boosters) > _CACHE_SIZE:
            _boosters.popitem(last=False)
        _last[:] = [(model_text, booster)]
    return booster


def predict(model: str | lgb.Booster, X: FloatArray) -> FloatArray:
    """Scores of the rows of X (higher is better), one thread: a request has ~200 rows."""
    booster = load_ranker(model) if isinstance(model, str) else model
    scores = booster.predict(np.asarray(X, dtype=np.float32), num_threads=1)
    return np.asarray(scores, dtype=np.float32)
