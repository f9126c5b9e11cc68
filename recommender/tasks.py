from __future__ import annotations

import contextlib

from celery import shared_task
from django.core.cache import cache


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
