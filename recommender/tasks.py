from __future__ import annotations

import contextlib

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone


@shared_task(
    name="recommender.tasks.rebuild_index",
    soft_time_limit=3600,
    time_limit=3700,
    autoretry_for=(ConnectionError, TimeoutError),
    retry_backoff=True,
    max_retries=3,
)
def rebuild_index(force: bool = False) -> int | None:
    """Build and activate a new snapshot if the catalog changed. Returns its version."""
    from recommender.services import REBUILD_PENDING_KEY
    from recommender.snapshots import snapshot_build

    with contextlib.suppress(Exception):  # the debounce flag is an optimisation only
        cache.delete(REBUILD_PENDING_KEY)
    snapshot = snapshot_build(force=force)
    return snapshot.pk if snapshot else None


@shared_task(
    name="recommender.tasks.learn_from_feedback",
    soft_time_limit=120,
    time_limit=150,
    autoretry_for=(ConnectionError, TimeoutError),
    retry_backoff=True,
    max_retries=3,
)
def learn_from_feedback(max_batches: int = 10) -> int:
    """Learn up to `max_batches` batches of feedback; returns how many were learned."""
    from recommender.learning import learning_batch

    # The debounce flag (LEARN_PENDING_KEY) is left to expire on its own: it lives exactly as
    # long as the countdown, so deleting it here removed the flag of the *next* window and let
    # a second task through per window (up to 3 learning runs a second under steady feedback).
    # One cutoff for the whole run, and stop at the first partial batch: otherwise, under
    # steady traffic, each batch claimed the few recommendations that had just come of age
    # and published a new state every 50-200 ms (each web process then reloads it).
    learned, now = 0, timezone.now()
    for _ in range(max_batches):
        outcome = learning_batch(now=now)
        if outcome is None:
            break
        learned += 1
        if outcome.recommendations < settings.LEARN_BATCH_SIZE:
            break
    return learned


@shared_task(name="recommender.tasks.train_ranker", soft_time_limit=1800, time_limit=1900)
def train_ranker() -> int | None:
    """Train a LambdaMART ranker on the logged impressions (not activated automatically)."""
    from recommender.rankers import ranker_train

    ranker = ranker_train()
    return ranker.pk if ranker else None
