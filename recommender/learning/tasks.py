"""The learning stage's Celery tasks: thin, idempotent (rows are claimed with skip-locked
selects and marked learned), retried only on transient errors, with time limits."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from recommender.learning.learner import learning_batch, learning_publish_stats
from recommender.learning.ranker_training import ranker_train
from toolrec_site.scheduling import LEARN_FROM_FEEDBACK, PUBLISH_TOOL_STATS, TRAIN_RANKER

TRANSIENT = (ConnectionError, TimeoutError)


@shared_task(
    name=LEARN_FROM_FEEDBACK,
    soft_time_limit=120,
    time_limit=150,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    max_retries=3,
)
def learn_from_feedback(max_batches: int = 10) -> int:
    """Learn up to `max_batches` batches of feedback; returns how many were learned.

    One cutoff for the whole run, and stop at the first partial batch: otherwise, under
    steady traffic, each batch claimed the few recommendations that had just come of age
    and published a new state many times a second (each web process then reloads it)."""
    learned, now = 0, timezone.now()
    for _ in range(max_batches):
        outcome = learning_batch(now=now)
        if outcome is None:
            break
        learned += 1
        if outcome.recommendations < settings.LEARN_BATCH_SIZE:
            break
    return learned


@shared_task(name=PUBLISH_TOOL_STATS, soft_time_limit=60, time_limit=90, autoretry_for=TRANSIENT, max_retries=3)
def publish_tool_stats() -> int:
    """Publish the learned state again with the counts of the current catalog."""
    return learning_publish_stats()


@shared_task(name=TRAIN_RANKER, soft_time_limit=1800, time_limit=1900)
def train_ranker() -> int | None:
    """Train a LambdaMART ranker on the logged impressions (not activated automatically)."""
    ranker = ranker_train()
    return ranker.pk if ranker else None
