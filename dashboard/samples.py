"""The service's state over time (learner lag, index age): sampled when the rollup runs,
since the log cannot tell afterwards how far behind the learner was."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.utils import timezone

from dashboard.models import ServiceSample
from recommender.indexing.models import IndexSnapshot
from recommender.learning.selectors import learner_lag_seconds


def index_age_seconds(now: datetime) -> float | None:
    active = IndexSnapshot.objects.filter(is_active=True).order_by("-finished_at").values_list("finished_at").first()
    return (now - active[0]).total_seconds() if active and active[0] else None


def service_sample_record(*, now: datetime | None = None) -> ServiceSample:
    now = now or timezone.now()
    sample, _ = ServiceSample.objects.update_or_create(
        at=now.replace(microsecond=0),
        defaults={
            # the same lag as /healthz and the toolrec_learner_lag_seconds gauge
            "learner_lag_seconds": learner_lag_seconds(now=now, delay_seconds=settings.LEARN_DELAY_SECONDS),
            "index_age_seconds": index_age_seconds(now),
        },
    )
    return sample
