"""Reads for the tools pages: per-tool sums of the daily tool rollups over a range, the
enabled tools never recommended in it, and new tools with the queries until their first use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, FloatField, Max, Sum
from django.db.models.functions import Cast, NullIf
from django.utils import timezone

from catalog.models import Tool
from dashboard.models import ToolDailyRollup, ToolRangeRollup
from dashboard.rollups import TOOL_RANGES
from dashboard.selectors import Filters
from dashboard.stats import wilson_interval
from recommender.learning.models import CoUse

PAGE_SIZE = 100
SORTS = {
    "recommendations": "shows",
    "uses": "uses",
    "usage_rate": "usage_rate",
    "last_use": "last_used_at",
    "rank": "mean_rank",
}
VIEWS = {
    "all": "Recommended in the range",
    "never_recommended": "Never recommended",
    "never_used": "Recommended, never used",
    "new": "New tools",
}


@dataclass(frozen=True)
class ToolRow:
    tool_id: int
    key: str
    shows: int
    uses: int
    usage_rate: float | None
    rate_low: float | None
    rate_high: float | None
    last_used_at: datetime | None
    mean_rank: float | None
    created_at: datetime | None = None
    shows_until_first_use: int | None = None


def range_days(filters: Filters, now: datetime | None = None) -> tuple[date, date]:
    now = now or timezone.now()
    return (now - filters.window.span).date() + timedelta(days=1 if filters.range != "hour" else 0), now.date()


def _days(filters: Filters) -> Any:
    first, last = range_days(filters)
    rows = ToolDailyRollup.objects.filter(day__gte=first, day__lte=last)
    if filters.namespace:
        rows = rows.filter(namespace=filters.namespace)
    if filters.api_key_id:
        rows = rows.filter(api_key_id=filters.api_key_id)
    return rows


def _ratios(rows: Any) -> Any:
    return rows.annotate(
        usage_rate=Cast("uses", FloatField()) / NullIf(Cast("shows", FloatField()), 0.0),
        mean_rank=Cast("rank_sum", FloatField()) / NullIf(Cast("uses", FloatField()), 0.0),
    )


def _per_tool(filters: Filters) -> Any:
    """Per-tool sums over the range: the precomputed week and 90-day rows (at most an hour
    old), else the day's rows grouped."""
    if filters.range in TOOL_RANGES:
        rows = ToolRangeRollup.objects.filter(range=filters.range, api_key_id=filters.api_key_id)
        if filters.namespace:
            rows = rows.filter(namespace=filters.namespace)
        rows = rows.annotate(rank_sum=F("used_rank_sum"))
        return _ratios(rows).values("tool_id", "shows", "uses", "rank_sum", "last_used_at", "usage_rate", "mean_rank")
    return _ratios(
        _days(filters)
        .values("tool_id")
        .annotate(shows=Sum("shows"), uses=Sum("uses"), rank_sum=Sum("used_rank_sum"), last_used_at=Max("last_used_at"))
    )


def _recommended_ids(filters: Filters) -> Any:
    if filters.range in TOOL_RANGES:
        return _per_tool(filters).filter(shows__gt=0).values("tool_id")
    return _days(filters).filter(shows__gt=0).values("tool_id")


def _row(values: dict[str, Any], keys: dict[int, str]) -> ToolRow:
    shows, uses = int(values.get("shows") or 0), int(values.get("uses") or 0)
    interval = wilson_interval(uses, shows)
    return ToolRow(
        tool_id=values["tool_id"],
        key=keys.get(values["tool_id"], f"#{values['tool_id']} (deleted)"),
        shows=shows,
        uses=uses,
        usage_rate=uses / shows if shows else None,
        rate_low=interval[0] if interval else None,
        rate_high=interval[1] if interval else None,
        last_used_at=values.get("last_used_at"),
        mean_rank=values["rank_sum"] / uses if uses else None,
        created_at=values.get("created_at"),
        shows_until_first_use=values.get("shows_until_first_use"),
    )


def _keys(tool_ids: list[int]) -> dict[int, str]:
    return {
        pk: f"{ns}/{name}"
        for pk, ns, name in Tool.objects.filter(pk__in=tool_ids).values_list("pk", "namespace", "name")
    }


def tool_table(filters: Filters, *, view: str, sort: str, descending: bool, page: int) -> tuple[list[ToolRow], int]:
    """One page of the chosen view, and how many tools the view holds."""
    if view == "never_recommended":
        return _never_recommended(filters, page)
    if view == "new":
        return _new_tools(filters, page)
    rows = _per_tool(filters).filter(shows__gt=0)
    if view == "never_used":
        rows = rows.filter(uses=0)
    order = F(SORTS[sort]).desc(nulls_last=True) if descending else F(SORTS[sort]).asc(nulls_last=True)
    values = list(rows.order_by(order, "tool_id")[page * PAGE_SIZE : (page + 1) * PAGE_SIZE])
    total = rows.count()
    keys = _keys([v["tool_id"] for v in values])
    return [_row(v, keys) for v in values], total


def _enabled(filters: Filters) -> Any:
    tools = Tool.objects.filter(enabled=True)
    return tools.filter(namespace=filters.namespace) if filters.namespace else tools


def _never_recommended(filters: Filters, page: int) -> tuple[list[ToolRow], int]:
    shown = _recommended_ids(filters)
    tools = _enabled(filters).exclude(pk__in=shown).order_by("-created_at", "pk")
    page_rows = tools.values("pk", "namespace", "name", "created_at")[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    rows = [
        _row(
            {"tool_id": t["pk"], "shows": 0, "uses": 0, "created_at": t["created_at"]},
            {t["pk"]: f"{t['namespace']}/{t['name']}"},
        )
        for t in page_rows
    ]
    return rows, tools.count()


def _new_tools(filters: Filters, page: int) -> tuple[list[ToolRow], int]:
    """Tools added in the last DASHBOARD_NEW_TOOL_DAYS (at least the range), with the queries
    that showed them up to the day of their first use (the rollups are daily: that day's
    shows count whole). One page of tools, then their all-keys 90-day rows, where the
    rollup task stored the count (see dashboard.rollups): no grouping of days per view."""
    now = timezone.now()
    since = now - max(filters.window.span, timedelta(days=settings.DASHBOARD_NEW_TOOL_DAYS))
    # Not before the 90-day rows' first whole day: earlier tools' counts would be cut short.
    first_day = (now - timedelta(days=TOOL_RANGES["90d"])).date() + timedelta(days=1)
    since = max(since, datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC))
    tools = _enabled(filters).filter(created_at__gte=since).order_by("-created_at", "pk")
    total = tools.count()
    page_tools = list(tools.values("pk", "namespace", "name", "created_at")[page * PAGE_SIZE : (page + 1) * PAGE_SIZE])
    sums = {
        v["tool_id"]: v
        for v in ToolRangeRollup.objects.filter(range="90d", api_key_id=0, tool_id__in=[t["pk"] for t in page_tools])
        .annotate(rank_sum=F("used_rank_sum"))
        .values("tool_id", "shows", "uses", "rank_sum", "last_used_at", "shows_until_first_use")
    }
    rows = []
    for t in page_tools:
        values = {"tool_id": t["pk"], "rank_sum": 0, **sums.get(t["pk"], {}), "created_at": t["created_at"]}
        rows.append(_row(values, {t["pk"]: f"{t['namespace']}/{t['name']}"}))
    return rows, total


def tool_history(tool_id: int, filters: Filters) -> list[dict[str, Any]]:
    """The tool's days in the range (all keys unless filtered)."""
    first, last = range_days(filters)
    rows = ToolDailyRollup.objects.filter(tool_id=tool_id, day__gte=first, day__lte=last)
    if filters.api_key_id:
        rows = rows.filter(api_key_id=filters.api_key_id)
    days = rows.values("day").annotate(shows=Sum("shows"), uses=Sum("uses"), rank_sum=Sum("used_rank_sum"))
    return [dict(r) for r in days.order_by("day")]


def used_with(tool_id: int, limit: int = 15) -> list[tuple[str, str, int]]:
    """Tools used after this one in a conversation and before it (the learner's co-use counts)."""
    after = (
        CoUse.objects.filter(after_id=tool_id)
        .order_by("-count")
        .values_list("tool__namespace", "tool__name", "count")[:limit]
    )
    before = (
        CoUse.objects.filter(tool_id=tool_id)
        .order_by("-count")
        .values_list("after__namespace", "after__name", "count")[:limit]
    )
    return [("after", f"{ns}/{name}", n) for ns, name, n in after] + [
        ("before", f"{ns}/{name}", n) for ns, name, n in before
    ]


def tools_per_state(filters: Filters) -> dict[str, int]:
    """Counts for the view tabs."""
    enabled = _enabled(filters).count()
    recommended = _recommended_ids(filters).distinct().count()
    return {"enabled": enabled, "recommended": recommended}
