from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render

from catalog.models import Tool
from dashboard.charts import Chart
from dashboard.tool_selectors import SORTS, VIEWS, tool_history, tool_table, tools_per_state, used_with
from dashboard.views.access import staff_page
from dashboard.views.common import csv_response, filter_context, page_filters

TABLE_HEADER = [
    "tool",
    "recommendations",
    "uses",
    "usage rate",
    "rate 95% low",
    "rate 95% high",
    "last use",
    "mean rank when used",
]


def _table_params(request: HttpRequest) -> tuple[str, str, bool, int] | HttpResponse:
    view, sort = request.GET.get("view", "all"), request.GET.get("sort", "recommendations")
    page = request.GET.get("page", "0")
    if view not in VIEWS or sort not in SORTS or not page.isdigit():
        return HttpResponseBadRequest(
            f"Bad filter: view is one of {', '.join(VIEWS)}, sort one of {', '.join(SORTS)}, page a number",
            content_type="text/plain; charset=utf-8",
        )
    return view, sort, request.GET.get("dir", "desc") != "asc", int(page)


@staff_page
def tools_page(request: HttpRequest) -> HttpResponse:
    """Tools by recommendations, uses and usage rate over the range, sortable, in four views."""
    filters, params = page_filters(request), _table_params(request)
    if isinstance(filters, HttpResponse):
        return filters
    if isinstance(params, HttpResponse):
        return params
    view, sort, descending, page = params
    rows, total = tool_table(filters, view=view, sort=sort, descending=descending, page=page)
    if request.GET.get("csv"):
        new = view == "new"  # the table's two extra columns
        header = TABLE_HEADER + (["added", "queries until first use"] if new else [])
        return csv_response(f"tools-{view}-{filters.range}", header, [_csv_row(r, new) for r in rows])
    context: dict[str, Any] = {
        "title": "Tools",
        "nav": "tools",
        "rows": rows,
        "total": total,
        "view": view,
        "views": VIEWS,
        "sort": sort,
        "descending": descending,
        "page": page,
        "pages": (total + 99) // 100,
        "counts": tools_per_state(filters),
        **filter_context(filters),
    }
    return render(request, "dashboard/tools.html", context)


def _csv_row(r: Any, new: bool) -> list[Any]:
    row = [r.key, r.shows, r.uses, r.usage_rate, r.rate_low, r.rate_high, r.last_used_at, r.mean_rank]
    return [*row, r.created_at, r.shows_until_first_use] if new else row


@staff_page
def tool_page(request: HttpRequest, tool_id: int) -> HttpResponse:
    """One tool: its days in the range and the tools used with it."""
    filters = page_filters(request)
    if isinstance(filters, HttpResponse):
        return filters
    tool = get_object_or_404(Tool, pk=tool_id)
    days = tool_history(tool_id, filters)
    chart = Chart(
        "history", "Recommendations and uses per day", "",
        "Times the tool was shown and reported used per day (from the daily tool rollups).",
        [d["day"].isoformat() for d in days],
    )  # fmt: skip
    chart.datasets = {"recommendations": [d["shows"] for d in days], "uses": [d["uses"] for d in days]}
    chart.headline = f"{sum(d['shows'] for d in days)} shown · {sum(d['uses'] for d in days)} used"
    if request.GET.get("csv"):
        return csv_response(f"tool-{tool_id}-{filters.range}", ["day", *chart.datasets], chart.rows())
    context = {
        "title": f"Tool {tool.key}",
        "nav": "tools",
        "tool": tool,
        "charts": [chart],
        "charts_json": [chart.as_json()],
        "used_with": used_with(tool_id),
        **filter_context(filters),
    }
    return render(request, "dashboard/tool.html", context)
