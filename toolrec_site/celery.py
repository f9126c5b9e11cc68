"""The Celery app and the one table of periodic tasks (each with an expiry)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toolrec_site.settings")

app = Celery("toolrec")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Periodic tasks: name -> (task, every N seconds). Each expires before its next run so a
# backlog after an outage never piles up duplicate work.
PERIODIC_TASKS: dict[str, tuple[str, float]] = {
    "rebuild-index-if-stale": ("recommender.tasks.rebuild_index", 15 * 60),
    "learn-from-feedback": ("recommender.tasks.learn_from_feedback", 5),
    "train-ranker": ("recommender.tasks.train_ranker", 6 * 3600),
}
app.conf.beat_schedule = {
    name: {"task": task, "schedule": every, "options": {"expires": every * 0.9}}
    for name, (task, every) in PERIODIC_TASKS.items()
}
