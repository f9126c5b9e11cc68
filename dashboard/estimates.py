"""Off-policy estimates of the candidate policies, stored for the Learning page."""

from __future__ import annotations

from django.conf import settings

from dashboard.models import PolicyEstimate
from recommender.engine.policy import POLICY_PRESETS, policy_from_json
from recommender.offline.policy_evaluation import evaluate_policy


def policy_estimates_record(*, since_days: float = 7, limit: int | None = None) -> list[PolicyEstimate]:
    """Estimate every preset policy on the same recent recommendations; stores nothing when
    the log has no recommendations with candidates."""
    stored = []
    for name, raw in POLICY_PRESETS.items():
        report = evaluate_policy(
            config=policy_from_json(raw), since_days=since_days, limit=limit or settings.DASHBOARD_OPE_LIMIT
        )
        if not report["recommendations"]:
            break
        stored.append(
            PolicyEstimate.objects.create(
                policy=name,
                config=raw,
                recommendations=report["recommendations"],
                logged_value=report["logged_value"],
                estimates=report["estimates"],
            )
        )
    return stored
