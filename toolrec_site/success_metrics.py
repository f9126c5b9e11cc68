"""The success metrics over a recent window, for /metrics (`toolrec_site.scrape`).

One function, `success_metrics`, from a few bounded queries: the recommendations of the
window through their `created_at` index, the per-tool counts table, the two partial
"unlearned" indexes. It is the one place to switch to the dashboard's hourly rollups once
they exist (the window then becomes whole hours read from the rollup tables).

The window ends LEARN_DELAY_SECONDS ago: that is the time an agent is given to report uses
(the learner waits as long), so a recommendation counts once its uses could have arrived,
and the rates do not dip just because the newest answers have no feedback yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from catalog.models import Tool
from feedback.models import Impression, Recommendation, UsageEvent
from recommender.engine.features import FEATURE_INDEX
from recommender.indexing.models import IndexSnapshot
from recommender.learning.models import ToolStats
from recommender.learning.selectors import learner_lag_seconds

COVERAGE_DAYS = 7


@dataclass(frozen=True)
class SuccessMetrics:
    window_seconds: float
    recommendations: int
    shown: int  # tools shown in the window's recommendations
    uses: int  # of those, reported used
    recommendations_with_use: int
    shown_new: int  # shown while still a new tool (fewer than NEW_TOOL_SHOWS shows)
    enabled_tools: int
    tools_recommended_recently: int  # enabled tools recommended in the last COVERAGE_DAYS (learned counts)
    learner_lag_seconds: float
    index_age_seconds: float | None

    @property
    def usage_rate(self) -> float | None:
        return self.uses / self.shown if self.shown else None

    @property
    def hit_rate(self) -> float | None:
        return self.recommendations_with_use / self.recommendations if self.recommendations else None

    @property
    def exploration_rate(self) -> float | None:
        return self.shown_new / self.shown if self.shown else None

    @property
    def coverage(self) -> float | None:
        return self.tools_recommended_recently / self.enabled_tools if self.enabled_tools else None


def _learner_lag(now: datetime) -> float:
    """Seconds the learner is behind (the same figure /healthz gives)."""
    return learner_lag_seconds(now=now, delay_seconds=settings.LEARN_DELAY_SECONDS)


def success_metrics(*, window_seconds: float, now: datetime | None = None) -> SuccessMetrics:
    now = now or timezone.now()
    end = now - timedelta(seconds=settings.LEARN_DELAY_SECONDS)
    start = end - timedelta(seconds=window_seconds)
    in_window = Q(recommendation__created_at__gt=start, recommendation__created_at__lte=end)
    recommendations = Recommendation.objects.filter(created_at__gt=start, created_at__lte=end).count()
    shown = Impression.objects.filter(in_window).aggregate(
        all=Count("id"), new=Count("id", filter=Q(**{f"features__{FEATURE_INDEX['is_new']}": 1}))
    )
    used = UsageEvent.objects.filter(in_window, used=True).aggregate(
        uses=Count("id"), recommendations=Count("recommendation_id", distinct=True)
    )
    since = now - timedelta(days=COVERAGE_DAYS)
    tools = Tool.objects.filter(enabled=True).aggregate(n=Count("id"))["n"]
    recent = ToolStats.objects.filter(tool__enabled=True, last_recommended_at__gte=since).count()
    built = IndexSnapshot.objects.filter(is_active=True).values_list("finished_at", flat=True).first()
    return SuccessMetrics(
        window_seconds=window_seconds,
        recommendations=recommendations,
        shown=shown["all"],
        uses=used["uses"],
        recommendations_with_use=used["recommendations"],
        shown_new=shown["new"],
        enabled_tools=tools,
        tools_recommended_recently=recent,
        learner_lag_seconds=_learner_lag(now),
        index_age_seconds=(now - built).total_seconds() if built else None,
    )
