"""The experiments' periodic work: look at every running experiment, apply its guardrails,
advance its ramp (experiments.rollout). Thin, idempotent (a look is a new row; stopping and
ramping are conditional updates), with time limits."""

from __future__ import annotations

from celery import shared_task

from experiments.rollout import experiments_watch
from toolrec_site.scheduling import WATCH_EXPERIMENTS

TRANSIENT = (ConnectionError, TimeoutError)


@shared_task(name=WATCH_EXPERIMENTS, soft_time_limit=120, time_limit=150, autoretry_for=TRANSIENT, max_retries=2)
def watch_experiments() -> dict[str, str]:
    return experiments_watch()
