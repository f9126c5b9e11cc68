"""Reads for the Learning and Catalog pages: small tables (learned-state versions, rankers,
stored estimates, snapshots, tools per namespace), never the log."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q

from catalog.models import Tool
from dashboard.models import PolicyEstimate
from recommender.engine.bandit import LinearBanditState
from recommender.engine.features import FEATURE_NAMES
from recommender.indexing.models import IndexSnapshot
from recommender.learning.models import LearningState, RankerModel

HISTORY = 200


def learning_states(limit: int = HISTORY) -> list[dict[str, Any]]:
    """The latest published states, oldest first."""
    rows = LearningState.objects.order_by("-pk").values(
        "pk", "created_at", "recommendations_learned", "events_learned", "learn_seconds"
    )[:limit]
    return [dict(r) for r in reversed(list(rows))]


def bandit_weights() -> list[tuple[str, float]]:
    """The latest state's posterior mean weights per feature (empty when none is published
    or it was learned over another feature set)."""
    latest = LearningState.objects.order_by("-pk").values_list("bandit", flat=True).first()
    if latest is None:
        return []
    state = LinearBanditState.from_bytes(bytes(latest))
    if state.d != len(FEATURE_NAMES):
        return []
    return [(name, round(float(w), 4)) for name, w in zip(FEATURE_NAMES, state.theta)]


def latest_estimates() -> list[PolicyEstimate]:
    """The newest estimate of each policy."""
    latest: dict[str, PolicyEstimate] = {}
    for estimate in PolicyEstimate.objects.order_by("-created_at")[:200]:
        latest.setdefault(estimate.policy, estimate)
    return sorted(latest.values(), key=lambda e: e.policy)


def rankers(limit: int = 50) -> list[dict[str, Any]]:
    rows = RankerModel.objects.order_by("-pk").values("pk", "created_at", "training_groups", "is_active", "metrics")
    return [dict(r) for r in rows[:limit]]


def snapshots(limit: int = HISTORY) -> list[dict[str, Any]]:
    rows = IndexSnapshot.objects.order_by("-pk").values(
        "pk", "status", "is_active", "embedding_model", "tool_count", "embedded_count", "reused_count",
        "index_kind", "build_seconds", "error", "created_at", "finished_at",
    )[:limit]  # fmt: skip
    return [dict(r) for r in reversed(list(rows))]


def tools_per_namespace() -> list[dict[str, Any]]:
    """Tools and enabled tools per namespace (an index-only scan of tool_enabled_namespace)."""
    rows = (
        Tool.objects.values("namespace")
        .annotate(tools=Count("id"), enabled=Count("id", filter=Q(enabled=True)))
        .order_by("namespace")
    )
    return [dict(r) for r in rows]
