"""Learned rankers: train LambdaMART on the logged candidates, version, activate, roll back."""

from __future__ import annotations

import logging

import numpy as np
from django.db import transaction

from feedback.models import Recommendation, UsageEvent
from recommender.engine.candidate_log import read_candidate_log
from recommender.engine.features import FEATURE_NAMES, N_FEATURES
from recommender.engine.ltr import train_lambdamart
from recommender.learning.models import RankerModel
from toolrec_site.errors import NotFound

log = logging.getLogger(__name__)
MIN_GROUPS = 50


def training_set(*, limit: int = 20_000) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X, labels, group sizes, retrieval scores) from the newest recommendations that led to
    a use: every logged candidate is a row, labelled 1 if the agent used it."""
    used: dict[object, set[int]] = {}
    for rec_id, tool_id in UsageEvent.objects.filter(used=True).values_list("recommendation_id", "tool_id"):
        used.setdefault(rec_id, set()).add(tool_id)
    recs = (
        Recommendation.objects.filter(pk__in=list(used))
        .exclude(candidate_log=None)
        .order_by("-created_at")
        .values_list("pk", "candidate_log")[:limit]
    )
    xs, ys, groups, baseline = [], [], [], []
    for rec_id, blob in recs:
        if blob is None:
            continue
        logged = read_candidate_log(bytes(blob))
        if logged.features.shape[1] != N_FEATURES:
            continue  # logged under another feature schema
        labels = np.isin(logged.tool_ids, list(used[rec_id])).astype(np.float32)
        if not labels.any():
            continue
        xs.append(logged.features)
        ys.append(labels)
        groups.append(len(labels))
        baseline.append(logged.retrieval)
    if not xs:
        empty = np.zeros(0, dtype=np.float32)
        return np.zeros((0, N_FEATURES), dtype=np.float32), empty, np.zeros(0, dtype=np.int64), empty
    return np.vstack(xs), np.concatenate(ys), np.asarray(groups, dtype=np.int64), np.concatenate(baseline)


def ranker_train(*, limit: int = 20_000, seed: int = 0) -> RankerModel | None:
    """Train and store a new ranker version (inactive); None when the log is too thin."""
    X, y, groups, baseline = training_set(limit=limit)
    if len(groups) < MIN_GROUPS:
        log.info("not training a ranker: %d usable recommendations, need %d", len(groups), MIN_GROUPS)
        return None
    trained = train_lambdamart(X, y, groups, seed=seed, feature_names=FEATURE_NAMES, baseline_scores=baseline)
    return RankerModel.objects.create(
        model_text=trained.model_text,
        feature_names=list(trained.feature_names),
        metrics={**trained.metrics, "feature_importance": trained.feature_importance},
        training_groups=len(groups),
    )


def ranker_activate(*, ranker_id: int) -> RankerModel:
    """Make one ranker version the one served (rolling back is activating an older one)."""
    with transaction.atomic():
        ranker = RankerModel.objects.select_for_update().filter(pk=ranker_id).first()
        if ranker is None:
            raise NotFound(f"Unknown ranker {ranker_id}.")
        RankerModel.objects.filter(is_active=True).exclude(pk=ranker_id).update(is_active=False)
        RankerModel.objects.filter(pk=ranker_id).update(is_active=True)
    ranker.is_active = True
    return ranker


def ranker_deactivate() -> None:
    RankerModel.objects.filter(is_active=True).update(is_active=False)
