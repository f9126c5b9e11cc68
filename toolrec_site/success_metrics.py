"""The success metrics over a recent window, for /metrics (`toolrec_site.scrape`).

The rates are the dashboard's own: summed from its 5-minute rollup rows and its daily
coverage rows (`dashboard.rollups` computes both from the log), so a gauge means what the
Overview page's number of the same name means, exploration rate included (exploratory picks
or tools added in the last DASHBOARD_NEW_TOOL_DAYS, not "tools with few shows"), and a
scrape reads a handful of rows instead of the log.

The window is whole 5-minute windows, the latest that the last rollup run (its service
sample) finished at least LEARN_DELAY_SECONDS after they ended: that is the time an agent
is given to report uses (the learner waits as long), so a recommendation counts once its
uses could have arrived and the rates do not dip just because the newest answers have no
feedback yet. The gauges therefore trail the present by up to one rollup period
(DASHBOARD_ROLLUP_SECONDS) more than before; `window_end` says how far.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from dashboard.rollups import FIVE_MINUTES
from dashboard.selectors import last_rollup_at, latest_coverage, recent_sums
from recommender.indexing.models import IndexSnapshot
from recommender.learning.selectors import learner_lag_seconds


@dataclass(frozen=True)
class SuccessMetrics:
    window_seconds: float
    window_end: datetime | None  # None: the rollup has never run, no window to read
    recommendations: int
    shown: int  # tools shown in the window's recommendations
    uses: int  # of those, reported used
    recommendations_with_use: int
    explored: int  # shown tools picked to explore, or added in the last DASHBOARD_NEW_TOOL_DAYS
    enabled_tools: int
    tools_recommended_recently: int  # enabled tools recommended in the 7 days to the last rolled-up day
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
        return self.explored / self.shown if self.shown else None

    @property
    def coverage(self) -> float | None:
        return self.tools_recommended_recently / self.enabled_tools if self.enabled_tools else None


def _window_end(now: datetime) -> datetime | None:
    """The end of the latest 5-minute window whose uses had LEARN_DELAY_SECONDS to arrive
    before the last rollup run counted them."""
    rolled = last_rollup_at(now=now)
    if rolled is None:
        return None
    due = min(now, rolled) - timedelta(seconds=settings.LEARN_DELAY_SECONDS)
    epoch = datetime(2000, 1, 1, tzinfo=due.tzinfo)
    return epoch + FIVE_MINUTES * ((due - epoch) // FIVE_MINUTES)


def success_metrics(*, window_seconds: float, now: datetime | None = None) -> SuccessMetrics:
    now = now or timezone.now()
    windows = max(1, math.ceil(window_seconds / FIVE_MINUTES.total_seconds()))
    end = _window_end(now)
    sums = recent_sums(end - windows * FIVE_MINUTES, end) if end is not None else {}
    shown_recently, enabled = latest_coverage(now=now)
    built = IndexSnapshot.objects.filter(is_active=True).values_list("finished_at", flat=True).first()
    return SuccessMetrics(
        window_seconds=windows * FIVE_MINUTES.total_seconds(),
        window_end=end,
        recommendations=int(sums.get("recommendations", 0)),
        shown=int(sums.get("impressions", 0)),
        uses=int(sums.get("uses", 0)),
        recommendations_with_use=int(sums.get("hits", 0)),
        explored=int(sums.get("explored", 0)),
        enabled_tools=enabled,
        tools_recommended_recently=shown_recently,
        # the same lag as /healthz gives
        learner_lag_seconds=learner_lag_seconds(now=now, delay_seconds=settings.LEARN_DELAY_SECONDS),
        index_age_seconds=(now - built).total_seconds() if built else None,
    )
