from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from dashboard.charts import Chart
from dashboard.learning_selectors import snapshots, tools_per_namespace
from dashboard.views.access import staff_page
from dashboard.views.common import chart_csv


@staff_page
def catalog_page(request: HttpRequest) -> HttpResponse:
    """The active snapshot, the embedding model, tools per namespace and the rebuild history."""
    history = snapshots()
    labels = [timezone.localtime(s["created_at"]).strftime("%m-%d %H:%M") + f" v{s['pk']}" for s in history]
    builds = Chart(
        "rebuilds", "Rebuild durations", "s", "Seconds each snapshot build took, with the tools it embedded anew "
        "and reused from the vector store (the latest 200 builds).", labels,
    )  # fmt: skip
    builds.datasets = {
        "seconds": [round(s["build_seconds"], 2) for s in history],
        "embedded": [s["embedded_count"] for s in history],
        "reused": [s["reused_count"] for s in history],
    }
    namespaces = tools_per_namespace()
    per_namespace = Chart(
        "namespaces", "Tools per namespace", "tools", "Tools in the catalog per namespace, and how many are enabled "
        "(only enabled tools are indexed).", [n["namespace"] for n in namespaces],
    )  # fmt: skip
    per_namespace.datasets = {"enabled": [n["enabled"] for n in namespaces], "all": [n["tools"] for n in namespaces]}
    per_namespace.kind = "bar"
    charts = [per_namespace, builds]
    csv = chart_csv(request, charts, prefix="catalog-", first_column="label")
    if csv is not None:
        return csv
    active = next((s for s in reversed(history) if s["is_active"]), None)
    context = {
        "title": "Catalog and index",
        "nav": "catalog",
        "charts": charts,
        "charts_json": [c.as_json() for c in charts],
        "active": active,
        "history": list(reversed(history))[:20],
    }
    return render(request, "dashboard/catalog.html", context)
