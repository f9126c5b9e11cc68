"""The serving stage's Celery task: shadow variants ranked off the web processes
(recommender.serving.shadow). Idempotent (recommendations are claimed with a skip-locked
select, a slate is stored once per variant), retried only on transient errors."""

from __future__ import annotations

from celery import Task, shared_task
from django.conf import settings

from recommender.serving.shadow import shadows_rank
from toolrec_site.scheduling import RANK_SHADOWS, shadows_rank_after

TRANSIENT = (ConnectionError, TimeoutError)


@shared_task(bind=True, name=RANK_SHADOWS, soft_time_limit=120, time_limit=150, autoretry_for=TRANSIENT, max_retries=2)
def rank_shadows(self: Task) -> dict[str, int]:
    run = shadows_rank()
    if not (self.request.is_eager and not settings.BACKGROUND_THREADS):  # not inline in a test's request
        shadows_rank_after(found_work=bool(run.recommendations))  # the next run, while there is work
    return {"recommendations": run.recommendations, "slates": run.slates, "unrankable": run.unrankable}
