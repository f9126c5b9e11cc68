from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate


def _sync_periodic_tasks(**kwargs: Any) -> None:
    from toolrec_site.scheduling import periodic_tasks_sync

    periodic_tasks_sync()


class RecommenderConfig(AppConfig):
    """The recommender's stages (`serving`, `indexing`, `learning`, `offline`, `engine`) are
    one Django app: their models share the `recommender` label and its migrations."""

    name = "recommender"

    def ready(self) -> None:
        # The engine's matrix work is small per request: extra BLAS/OpenMP threads only fight
        # the other web processes for the cores (bench/results/design_notes.json).
        import faiss
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=settings.ENGINE_THREADS, user_api="blas")
        faiss.omp_set_num_threads(settings.ENGINE_THREADS)
        # The periodic tasks declared in code appear in the admin after every migrate. Sent
        # once per migrated app: this app's own migrations run after django_celery_beat's.
        post_migrate.connect(_sync_periodic_tasks, sender=self, dispatch_uid="toolrec-periodic-tasks")
