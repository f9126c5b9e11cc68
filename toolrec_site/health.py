"""GET /healthz: database, cache, broker, vector store, the learner's lag, the active
snapshot and what this process serves (snapshot and learned-state versions)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from recommender.indexing.models import IndexSnapshot
from recommender.indexing.vector_store import vector_store_health
from recommender.learning.selectors import learner_lag_seconds
from recommender.serving.holders import learned, snapshots
from toolrec_site.readiness import is_warm


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # reported, not raised: health must answer
        return f"error: {type(exc).__name__}"


def _check_cache() -> str:
    key = f"healthz:{uuid.uuid4().hex}"
    try:
        cache.set(key, 1, timeout=5)
        ok = cache.get(key) == 1
        cache.delete(key)
        backend = "redis" if settings.REDIS_URL else "local memory"
        return f"ok ({backend})" if ok else "error: value not read back"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def _check_broker() -> str:
    if not settings.CELERY_BROKER_URL:
        return "ok (tasks run in the process)"
    from toolrec_site.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=1)
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def _learner_lag() -> float:
    return learner_lag_seconds(now=timezone.now(), delay_seconds=settings.LEARN_DELAY_SECONDS)


def _check_learner(lag: float | None) -> str:
    if lag is None:
        return "unknown (database unavailable)"
    if lag > settings.LEARNER_LAG_DEGRADED_SECONDS:
        return f"lagging: {lag:.0f} s behind (more than {settings.LEARNER_LAG_DEGRADED_SECONDS:g} s)"
    return f"ok ({lag:.0f} s behind)"


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": _check_database(),
        "cache": _check_cache(),
        "broker": _check_broker(),
        "vector_store": vector_store_health(),
    }
    snapshot, lag = None, None
    if checks["database"] == "ok":
        lag = _learner_lag()
        active = IndexSnapshot.objects.filter(is_active=True).values("id", "tool_count", "finished_at").first()
        snapshot = active and {
            "version": active["id"],
            "tools": active["tool_count"],
            "built_at": active["finished_at"],
        }
    # What this process serves (each process loads its own; they converge within the check intervals).
    served_snapshot, served_state = snapshots.peek(), learned.peek()
    serving = {
        "snapshot_version": served_snapshot.version if served_snapshot else None,
        "learned_state_version": served_state.version if served_state else None,
    }
    checks["learner"] = _check_learner(lag)
    degraded = [name for name, value in checks.items() if not value.startswith("ok")]
    status = "down" if checks["database"] != "ok" else ("degraded" if degraded or snapshot is None else "ok")
    if status != "down" and not is_warm():
        status = "starting"  # loading what requests need; a load balancer should wait
    return JsonResponse(
        {
            "status": status,
            "checks": checks,
            "snapshot": snapshot,
            "serving": serving,
            "learner_lag_seconds": None if lag is None else round(lag, 1),
        },
        status=503 if status in {"down", "starting"} else 200,
    )
