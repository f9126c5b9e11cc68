"""Running a Celery task without making the caller wait for it.

With a broker the task is queued. Without one (the embedded default), Celery would run it
inline, inside the request that asked for it; a daemon thread runs it instead, so a
recommendation or feedback request never waits on learning or an index rebuild. Tests set
BACKGROUND_THREADS off to run it inline and deterministically.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)


def _run_inline(task: Any, kwargs: dict[str, Any]) -> None:
    try:
        task.apply(kwargs=kwargs)
    except Exception:  # a background job reports, it cannot fail its caller
        log.exception("background task %s failed", task.name)
    finally:
        close_old_connections()


def run_task(task: Any, *, countdown: float = 0, **kwargs: Any) -> None:
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        task.apply_async(kwargs=kwargs, countdown=countdown)
    elif settings.BACKGROUND_THREADS:
        timer = threading.Timer(countdown, _run_inline, args=(task, kwargs))
        timer.daemon = True
        timer.start()
    else:
        task.apply(kwargs=kwargs)
