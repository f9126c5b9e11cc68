import os

from django.core.wsgi import get_wsgi_application

from toolrec_site.readiness import mark_warm, mark_warming

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toolrec_site.settings")
application = get_wsgi_application()


def _warm_up() -> None:
    """Load what the first requests would otherwise wait seconds for: the snapshot, the
    embedder, the learned state, and the task modules that feedback publishes to (importing
    them took 3 s, paid by each process's first feedback)."""
    import logging

    try:
        from recommender.indexing.embedders import embed_cached
        from recommender.serving.holders import learned, snapshots
        from toolrec_site.scheduling import LEARN_FROM_FEEDBACK, task_named

        snapshots.get()
        embed_cached(["warm up"])
        learned.get()
        task_named(LEARN_FROM_FEEDBACK)
    except Exception:  # a cold first request is the only cost of failing here
        logging.getLogger(__name__).warning("warm-up failed", exc_info=True)
    finally:
        mark_warm()


if os.environ.get("TOOLREC_WARMUP", "true").lower() in {"1", "true", "yes", "on"}:
    import threading

    mark_warming()
    threading.Thread(target=_warm_up, name="toolrec-warmup", daemon=True).start()
