"""The serving stage's Celery task: shadow variants ranked off the web processes
(recommender.serving.shadow). Idempotent (recommendations are claimed with a skip-locked
select, a slate is stored once per variant), retried only on transient errors."""

from __future__ import annotations

from celery import shared_task

from recommender.serving.shadow import shadows_rank
from toolrec_site.scheduling import RANK_SHADOWS, shadows_rank_again

TRANSIENT = (ConnectionError, TimeoutError)


@shared_task(name=RANK_SHADOWS, soft_time_limit=120, time_limit=150, autoretry_for=TRANSIENT, max_retries=2)
def rank_shadows() -> dict[str, int]:
    run = shadows_rank()
    if run.recommendations:
        shadows_rank_again()  # requests may have committed while this ran, after they asked
    return {"recommendations": run.recommendations, "slates": run.slates, "unrankable": run.unrankable}
