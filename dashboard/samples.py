"""The service's state over time (learner lag, index age): sampled when the rollup runs,
since the log cannot tell afterwards how far behind the learner was."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Min
from django.utils import timezone

from dashboard.models import ServiceSample
from feedback.models import Recommendation, UsageEvent
from recommender.indexing.models import IndexSnapshot


def learner_lag_seconds(now: datetime) -> float | None:
    """Age of the oldest event the learner has not learned (the partial unlearned indexes
    make both reads an index lookup); None when nothing waits."""
    oldest = [
        model.objects.filter(learned_at__isnull=True).aggregate(m=Min("created_at"))["m"]
        for model in (Recommendation, UsageEvent)
    ]
    waiting = [t for t in oldest if t is not None]
    return (now - min(waiting)).total_seconds() if waiting else None


def index_age_seconds(now: datetime) -> float | None:
    active = IndexSnapshot.objects.filter(is_active=True).order_by("-finished_at").values_list("finished_at").first()
    return (now - active[0]).total_seconds() if active and active[0] else None


def service_sample_record(*, now: datetime | None = None) -> ServiceSample:
    now = now or timezone.now()
    sample, _ = ServiceSample.objects.update_or_create(
        at=now.replace(microsecond=0),
        defaults={"learner_lag_seconds": learner_lag_seconds(now), "index_age_seconds": index_age_seconds(now)},
    )
    return sample
