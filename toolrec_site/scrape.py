"""GET /metrics: the whole server's metrics in the Prometheus text format.

Under gunicorn (PROMETHEUS_MULTIPROC_DIR set, see `toolrec_site.gunicorn_config`) the
samples are read from every worker's files and added up, so a scrape answered by any
worker reports the server; without it (runserver, tests) this process's registry is read.
To those are added the success metrics as gauges, read from the dashboard's rollups by
`success_metrics` at most once per METRICS_REFRESH_SECONDS (kept in the shared cache, so
one worker computes them for all) and the embedding cache's hit rate over the same window.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from toolrec_site.success_metrics import SuccessMetrics, success_metrics

log = logging.getLogger(__name__)
SUCCESS_KEY = "toolrec:metrics:success"
CACHE_SAMPLES_KEY = "toolrec:metrics:embedding-cache-samples"


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _server_metrics() -> list[Metric]:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return list(REGISTRY.collect())
    # A worker starting this instant has created its file but not yet sized it: reading that
    # empty file fails the whole scrape (seen when gunicorn replaced a dead worker).
    files = [f for f in glob.glob(os.path.join(folder, "*.db")) if os.path.getsize(f) > 0]
    return list(multiprocess.MultiProcessCollector.merge(files, accumulate=True))


def _cached_success() -> SuccessMetrics | None:
    try:
        found = cache.get(SUCCESS_KEY)
    except Exception:  # a missing Redis costs a recomputation, not the scrape
        found = None
    if isinstance(found, SuccessMetrics):
        return found
    try:
        computed = success_metrics(window_seconds=settings.METRICS_WINDOW_SECONDS)
    except DatabaseError:
        log.warning("success metrics not computed: database unavailable", exc_info=True)
        return None
    try:
        cache.set(SUCCESS_KEY, computed, timeout=settings.METRICS_REFRESH_SECONDS)
    except Exception:
        log.debug("success metrics not cached", exc_info=True)
    return computed


def _cache_totals(families: Iterable[Metric]) -> tuple[float, float]:
    hits = lookups = 0.0
    for family in families:
        if family.name == "toolrec_embedding_cache":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    lookups += sample.value
                    hits += sample.value if sample.labels.get("result") == "hit" else 0.0
    return hits, lookups


def _cache_hit_rate(hits: float, lookups: float, now: float) -> float | None:
    """Hit rate over about the last METRICS_WINDOW_SECONDS, from the lookup counters as
    seen at earlier scrapes (kept in the cache). The counters live in the workers' metric
    files, not in the log the other rates are computed from; Prometheus itself would say
    `rate(hit) / rate(all)`, this gauge is the same figure for a reader without PromQL."""
    try:
        samples = cache.get(CACHE_SAMPLES_KEY) or []
    except Exception:
        samples = []
    window = settings.METRICS_WINDOW_SECONDS
    # A counter that went down means the server restarted: earlier samples no longer apply.
    samples = [s for s in samples if s[0] >= now - window and s[2] <= lookups]
    if not samples or now - samples[-1][0] >= settings.METRICS_REFRESH_SECONDS:
        samples.append((now, hits, lookups))
        try:
            cache.set(CACHE_SAMPLES_KEY, samples, timeout=int(window) + 60)
        except Exception:
            log.debug("embedding cache samples not kept", exc_info=True)
    _, first_hits, first_lookups = samples[0]
    if lookups > first_lookups:
        return (hits - first_hits) / (lookups - first_lookups)
    return hits / lookups if lookups and len(samples) == 1 else None


def _gauge(name: str, documentation: str, value: float | None) -> list[Metric]:
    if value is None:  # no data in the window: absent, not a made-up zero
        return []
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], value)
    return [family]


def success_families(server: list[Metric]) -> list[Metric]:
    families = _gauge(
        "toolrec_embedding_cache_hit_rate",
        "Embedding cache hits / lookups over the metrics window.",
        _cache_hit_rate(*_cache_totals(server), time.time()),
    )
    found = _cached_success()
    if found is None:
        return families
    window = (
        f"recommendations of the last {found.window_seconds:g} s of the dashboard's 5-minute rollups "
        "(windows whose uses had LEARN_DELAY_SECONDS to arrive when the rollup last ran)"
    )
    return [
        *families,
        *_gauge("toolrec_window_recommendations", f"Recommendations in the window: {window}.", found.recommendations),
        *_gauge("toolrec_usage_rate", f"Shown tools reported used / tools shown, {window}.", found.usage_rate),
        *_gauge("toolrec_hit_rate", f"Recommendations with a use / recommendations, {window}.", found.hit_rate),
        *_gauge(
            "toolrec_exploration_rate",
            "Shown tools the policy picked to explore or added in the last DASHBOARD_NEW_TOOL_DAYS / tools shown "
            f"(the dashboard's exploration rate), {window}.",
            found.exploration_rate,
        ),
        *_gauge(
            "toolrec_coverage",
            "Enabled tools recommended in the 7 days to the last rolled-up day / enabled tools (the dashboard's).",
            found.coverage,
        ),
        *_gauge(
            "toolrec_learner_lag_seconds",
            "How long the oldest feedback due for learning has waited for the learner.",
            found.learner_lag_seconds,
        ),
        *_gauge("toolrec_index_age_seconds", "Age of the active snapshot.", found.index_age_seconds),
        *_gauge(
            "toolrec_success_window_end_timestamp_seconds",
            "End of the rates' window (Unix time): far behind time() means the dashboard rollup stopped.",
            found.window_end.timestamp() if found.window_end else None,
        ),
    ]


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    server = _server_metrics()
    registry = CollectorRegistry()
    registry.register(_Families([*server, *success_families(server)]))
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(registry), content_type=content_type)
