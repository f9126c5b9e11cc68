"""The Celery app. Its periodic tasks are declared in `toolrec_site.scheduling`
(`PERIODIC_TASKS`) and kept in the database (django-celery-beat's DatabaseScheduler), where
operators see and pause them in the admin."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toolrec_site.settings")

app = Celery("toolrec")
app.config_from_object("django.conf:settings", namespace="CELERY")
# The stages' task modules: a worker imports them at start, `scheduling.task_named` before
# it looks a task up by name.
app.conf.imports = [
    "recommender.indexing.tasks",
    "recommender.learning.tasks",
    "recommender.serving.tasks",
    "experiments.tasks",
    "catalog.tasks",
    "dashboard.tasks",
]
