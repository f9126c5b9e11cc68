"""The dashboard's periodic task: the rollups of the last hours, and a sample of the
service's state. Idempotent: each window is rewritten whole."""

from __future__ import annotations

from celery import shared_task

from dashboard.estimates import policy_estimates_record
from dashboard.rollups import rollup_recent
from dashboard.samples import service_sample_record
from toolrec_site.scheduling import ESTIMATE_POLICIES, ROLLUP_DASHBOARD

TRANSIENT = (ConnectionError, TimeoutError)


@shared_task(name=ROLLUP_DASHBOARD, soft_time_limit=240, time_limit=280, autoretry_for=TRANSIENT, max_retries=2)
def rollup_dashboard() -> int:
    """Recompute the recent rollups; returns the number of hours recomputed."""
    service_sample_record()
    return rollup_recent()


@shared_task(name=ESTIMATE_POLICIES, soft_time_limit=900, time_limit=960)
def estimate_policies() -> int:
    """Store off-policy estimates of the preset policies on the last week; returns how many."""
    return len(policy_estimates_record())
