"""Refitting the match model (the answer's calibrated `match`) on the judged answers of the log.

A judged answer is a learned recommendation: its top tool was used or not. The inputs are
read from its logged impressions (the feature rows of ranks 1 and 2, as served), so the
model sees exactly what serving will give it. Part of each published learned state; the
fitting itself is pure code (`recommender.engine.match`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from django.conf import settings

from feedback.models import Impression, Recommendation, UsageEvent
from recommender.engine.features import N_FEATURES
from recommender.engine.match import MatchConfig, MatchModel, fit_match_model, match_inputs

log = logging.getLogger(__name__)


def match_config() -> MatchConfig:
    return MatchConfig(
        prior_midpoint=settings.MATCH_PRIOR_MIDPOINT,
        prior_slope=settings.MATCH_PRIOR_SLOPE,
        good=settings.MATCH_GOOD,
        weak=settings.MATCH_WEAK,
        min_samples=settings.MATCH_MIN_SAMPLES,
    )


def match_training_data(*, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, used) of the newest `limit` judged answers that showed a tool."""
    recent = Recommendation.objects.filter(learned_at__isnull=False).order_by("-created_at").values("pk")[:limit]
    rows: dict[Any, dict[int, tuple[int, list[float]]]] = {}
    for rec_id, rank, tool_id, features in Impression.objects.filter(
        recommendation_id__in=recent, rank__lte=2
    ).values_list("recommendation_id", "rank", "tool_id", "features"):
        rows.setdefault(rec_id, {})[rank] = (tool_id, features)
    used = set(
        UsageEvent.objects.filter(recommendation_id__in=recent, used=True).values_list("recommendation_id", "tool_id")
    )
    inputs, labels = [], []
    for rec_id, by_rank in rows.items():
        top = by_rank.get(1)
        if top is None or len(top[1]) != N_FEATURES:
            continue  # features of another feature set (before a deploy that changed them)
        second = by_rank.get(2)
        second_row = np.asarray(second[1]) if second is not None and len(second[1]) == N_FEATURES else None
        inputs.append(match_inputs(np.asarray(top[1]), second_row))
        labels.append(float((rec_id, top[0]) in used))
    if not inputs:
        return np.zeros((0, 0)), np.zeros(0)
    return np.stack(inputs), np.asarray(labels)


def match_model_refit(previous: dict[str, Any] | None, *, recommendations_learned: int) -> dict[str, Any] | None:
    """The match model to publish: refitted when MATCH_REFIT_EVERY recommendations were
    learned since the last fit (or there is none yet), else the previous one."""
    fitted_at = int(previous.get("fitted_at", 0)) if previous else 0
    if previous is not None and recommendations_learned - fitted_at < settings.MATCH_REFIT_EVERY:
        return previous
    if previous is None and recommendations_learned - fitted_at < settings.MATCH_MIN_SAMPLES:
        return None  # too few judged answers to fit yet (the prior serves)
    inputs, used = match_training_data(limit=settings.MATCH_TRAIN_MAX)
    model = fit_match_model(inputs, used, config=match_config(), fitted_at=recommendations_learned)
    if model is None:
        return previous
    return model.to_json()


def match_model_of(data: dict[str, Any] | None) -> MatchModel | None:
    return MatchModel.from_json(data) if data else None
