from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from dashboard.charts import overview_charts
from dashboard.views.access import staff_page
from dashboard.views.common import chart_csv, filter_context, page_filters


@staff_page
def overview_page(request: HttpRequest) -> HttpResponse:
    """The success metrics over the chosen range; `?csv=<chart key>` downloads one chart's table."""
    filters = page_filters(request)
    if isinstance(filters, HttpResponse):
        return filters
    charts = overview_charts(filters)
    csv = chart_csv(request, charts, first_column="window", suffix=f"-{filters.range}")
    if csv is not None:
        return csv
    context = {
        "title": "Overview",
        "nav": "overview",
        "charts": charts,
        "charts_json": [c.as_json() for c in charts],
        **filter_context(filters),
    }
    return render(request, "dashboard/overview.html", context)
