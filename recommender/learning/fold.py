"""What one learning batch claimed, and folding it into a linear bandit: shared by the
learner (the shared state learns the whole batch) and the isolated variants' states
(`recommender.learning.isolated`, each learns the part of the batch its variant served)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np

from feedback.models import Impression
from recommender.engine.bandit import LinearBanditState, update_batched
from recommender.learning.counts import ClaimedRecommendation, UsedPair, UseRow


class EventRow(NamedTuple):
    """Feedback on a claimed recommendation."""

    pk: int
    recommendation_id: Any
    tool_id: int
    used: bool
    reward: float | None
    created_at: datetime


class LateUse(NamedTuple):
    """A use reported after its recommendation was learned (as a miss)."""

    pk: int
    recommendation_id: Any
    tool_id: int
    reward: float | None
    created_at: datetime


@dataclass(frozen=True)
class Claimed:
    """What one batch learns; the rows stay locked until its transaction ends."""

    recs: list[ClaimedRecommendation]
    events: list[EventRow]
    late: list[LateUse]

    @property
    def uses(self) -> list[UseRow]:
        rows = [UseRow(e.recommendation_id, e.tool_id, e.created_at) for e in self.events if e.used]
        return rows + [UseRow(e.recommendation_id, e.tool_id, e.created_at) for e in self.late]


ImpressionFeatures = dict[UsedPair, list[float]]


def impression_features(rec_ids: Iterable[Any]) -> ImpressionFeatures:
    return {
        (rec_id, tool_id): features
        for rec_id, tool_id, features in Impression.objects.filter(recommendation_id__in=list(rec_ids)).values_list(
            "recommendation_id", "tool_id", "features"
        )
    }


def bandit_fold(
    bandit: LinearBanditState, claimed: Claimed, impressions: Mapping[UsedPair, list[float]] | None = None
) -> tuple[LinearBanditState, set[UsedPair]]:
    """Fold impressions (used -> its reward, else 0) into the bandit; late uses correct the
    0 already learned for their impression exactly: A is unchanged, b gains x * reward.
    `impressions`: the claimed recommendations' impressions when already read (a superset
    is fine: only the claimed recommendations' rows are folded)."""
    rewards: dict[UsedPair, float] = {}
    for event in claimed.events:
        if event.used:
            key = (event.recommendation_id, event.tool_id)
            rewards[key] = max(rewards.get(key, 0.0), event.reward if event.reward is not None else 1.0)
    rec_ids = {r.pk for r in claimed.recs}
    if impressions is None:
        impressions = impression_features(rec_ids)
    rows = [(key, feats) for key, feats in impressions.items() if key[0] in rec_ids and len(feats) == bandit.d]
    if rows:
        X = np.asarray([feats for _, feats in rows], dtype=np.float64)
        y = np.asarray([rewards.get(key, 0.0) for key, _ in rows], dtype=np.float64)
        bandit = update_batched(bandit, X, y)
    late_features = impression_features({e.recommendation_id for e in claimed.late}) if claimed.late else {}
    correction = np.zeros(bandit.d)
    for use in claimed.late:
        feats = late_features.get((use.recommendation_id, use.tool_id))
        if feats is not None and len(feats) == bandit.d:
            correction += np.asarray(feats) * (use.reward if use.reward is not None else 1.0)
            rewards[(use.recommendation_id, use.tool_id)] = 1.0
    if correction.any():
        bandit = replace(bandit, b=bandit.b + correction, version=bandit.version + 1)
    return bandit, set(rewards)
