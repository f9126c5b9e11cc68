from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from dashboard.charts import overview_charts
from dashboard.views.access import staff_page
from dashboard.views.common import csv_response, filter_context, page_filters


@staff_page
def overview_page(request: HttpRequest) -> HttpResponse:
    """The success metrics over the chosen range; `?csv=<chart key>` downloads one chart's table."""
    filters = page_filters(request)
    if isinstance(filters, HttpResponse):
        return filters
    charts = overview_charts(filters)
    wanted = request.GET.get("csv")
    if wanted:
        chart = next((c for c in charts if c.key == wanted), None)
        if chart is None:
            raise Http404("No such chart.")
        return csv_response(f"{chart.key}-{filters.range}", ["window", *chart.datasets], chart.rows())
    context = {
        "title": "Overview",
        "nav": "overview",
        "charts": charts,
        "charts_json": [c.as_json() for c in charts],
        **filter_context(filters),
    }
    return render(request, "dashboard/overview.html", context)
