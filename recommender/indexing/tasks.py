"""The indexing stage's Celery task: rebuild the index when the catalog changed."""

from __future__ import annotations

import contextlib

from celery import shared_task
from django.core.cache import cache

from recommender.indexing.snapshots import snapshot_build
from toolrec_site.scheduling import REBUILD_INDEX, REBUILD_PENDING_KEY, tool_stats_publish_schedule


@shared_task(
    name=REBUILD_INDEX,
    soft_time_limit=3600,
    time_limit=3700,
    autoretry_for=(ConnectionError, TimeoutError),
    retry_backoff=True,
    max_retries=3,
)
def rebuild_index(force: bool = False) -> int | None:
    """Build and activate a new snapshot if the catalog changed. Returns its version."""
    with contextlib.suppress(Exception):  # the debounce flag is an optimisation only
        cache.delete(REBUILD_PENDING_KEY)
    snapshot = snapshot_build(force=force)
    if snapshot is None:
        return None
    tool_stats_publish_schedule()  # the learner serves the new catalog's counts
    return snapshot.pk
