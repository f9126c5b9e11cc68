"""What the pages share: reading the filters, and a chart's table as a CSV download."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest

from dashboard.selectors import RANGES, BadFilter, Filters, filter_choices, filters_from_query


def page_filters(request: HttpRequest) -> Filters | HttpResponse:
    try:
        return filters_from_query(request.GET)
    except BadFilter as error:
        return HttpResponseBadRequest(f"Bad filter: {error}", content_type="text/plain; charset=utf-8")


def filter_context(filters: Filters) -> dict[str, Any]:
    return {"filters": filters, "ranges": [(key, r.label) for key, r in RANGES.items()], **filter_choices()}


def csv_response(filename: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    writer = csv.writer(response)
    writer.writerow(header)
    writer.writerows(["" if value is None else value for value in row] for row in rows)
    return response


def chart_csv(
    request: HttpRequest, charts: Sequence[Any], *, first_column: str, prefix: str = "", suffix: str = ""
) -> HttpResponse | None:
    """The CSV of the chart named by `?csv=KEY` (404 for an unknown key); None without `?csv`."""
    wanted = request.GET.get("csv")
    if not wanted:
        return None
    chart = next((c for c in charts if c.key == wanted), None)
    if chart is None:
        raise Http404("No such chart.")
    return csv_response(f"{prefix}{chart.key}{suffix}", [first_column, *chart.datasets], chart.rows())
