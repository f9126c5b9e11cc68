import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toolrec_site.settings")
application = get_wsgi_application()


def _warm_up() -> None:
    """Load the snapshot and the embedder before the first request needs them (seconds)."""
    import logging

    try:
        from recommender.indexing.embedders import embed_cached
        from recommender.serving.holders import snapshots

        snapshots.get()
        embed_cached(["warm up"])
    except Exception:  # a cold first request is the only cost of failing here
        logging.getLogger(__name__).warning("warm-up failed", exc_info=True)


if os.environ.get("TOOLREC_WARMUP", "true").lower() in {"1", "true", "yes", "on"}:
    import threading

    threading.Thread(target=_warm_up, name="toolrec-warmup", daemon=True).start()
