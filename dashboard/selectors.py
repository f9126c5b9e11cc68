"""Reads of the rollup tables for the pages: one query per table and range, summed per
window in the process (a range holds at most a few hundred windows per namespace and key)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Sum
from django.http import QueryDict
from django.utils import timezone

from access.models import ApiKey
from dashboard.models import CoverageDaily, Rollup, ServiceSample
from dashboard.rollups import LATENCY_BOUNDS_MS, SUMMED_FIELDS


@dataclass(frozen=True)
class Range:
    label: str
    span: timedelta
    period: str  # the rollup rows a chart of this range reads
    step: timedelta


RANGES: dict[str, Range] = {
    "hour": Range("Last hour", timedelta(hours=1), Rollup.Period.FIVE_MINUTES, timedelta(minutes=5)),
    "day": Range("Last day", timedelta(days=1), Rollup.Period.HOUR, timedelta(hours=1)),
    "week": Range("Last week", timedelta(days=7), Rollup.Period.HOUR, timedelta(hours=1)),
    "90d": Range("Last 90 days", timedelta(days=90), Rollup.Period.DAY, timedelta(days=1)),
}


class BadFilter(ValueError):
    """A query string the pages cannot read (said back to the user as a 400)."""


@dataclass(frozen=True)
class Filters:
    range: str = "day"
    namespace: str = ""  # "" = all
    api_key_id: int = 0  # 0 = all

    @property
    def window(self) -> Range:
        return RANGES[self.range]

    def query(self, **extra: str) -> str:
        params = QueryDict(mutable=True)
        params.update({"range": self.range, "namespace": self.namespace, "key": str(self.api_key_id or "")})
        params.update(extra)
        return params.urlencode()


def filters_from_query(query: QueryDict) -> Filters:
    range_ = query.get("range") or "day"
    if range_ not in RANGES:
        raise BadFilter(f"range must be one of {', '.join(RANGES)}")
    key = query.get("key") or "0"
    if not key.isdigit():
        raise BadFilter("key must be an API key id")
    namespace = (query.get("namespace") or "")[:100]
    return Filters(range_, namespace, int(key))


@dataclass
class Window:
    """Sums of the rollup rows of one window."""

    start: datetime
    sums: dict[str, float]
    histogram: list[int]


def _aligned_start(filters: Filters, now: datetime) -> datetime:
    """The first window of the range: the range's span back from the current window."""
    step = filters.window.step
    epoch = datetime(2000, 1, 1, tzinfo=now.tzinfo)
    current = epoch + step * ((now - epoch) // step)
    return current - filters.window.span + step


def _filtered(queryset: Any, filters: Filters) -> Any:
    if filters.namespace:
        queryset = queryset.filter(namespace=filters.namespace)
    if filters.api_key_id:
        queryset = queryset.filter(api_key_id=filters.api_key_id)
    return queryset


def rollup_windows(filters: Filters, *, now: datetime | None = None) -> list[Window]:
    """Every window of the range, oldest first, empty windows included (a chart with gaps
    where there was no traffic would read as missing data).

    The database sums each window's rows (one row per window comes back, not one per
    namespace and key: 15 times fewer for a week of three keys' traffic in five namespaces);
    only the latency histograms, JSON arrays, are added up here."""
    now = now or timezone.now()
    start, step = _aligned_start(filters, now), filters.window.step
    rows = _filtered(Rollup.objects.filter(period=filters.window.period, start__gte=start, start__lte=now), filters)
    by_start: dict[datetime, Window] = {}
    moment = start
    while moment <= now:
        by_start[moment] = Window(moment, dict.fromkeys(SUMMED_FIELDS, 0.0), [0] * (len(LATENCY_BOUNDS_MS) + 1))
        moment += step
    sums = rows.values("start").annotate(**{f"sum_{name}": Sum(name) for name in SUMMED_FIELDS}).order_by()
    for row in sums:
        window = by_start.get(row["start"])
        if window is not None:
            window.sums = {name: float(row[f"sum_{name}"] or 0) for name in SUMMED_FIELDS}
    for moment, histogram in rows.values_list("start", "latency_histogram").iterator(chunk_size=5000):
        window = by_start.get(moment)
        if window is not None:
            window.histogram = [a + b for a, b in zip(window.histogram, histogram)]
    return list(by_start.values())


def coverage_points(filters: Filters, *, now: datetime | None = None) -> list[tuple[date, int, int]]:
    """(day, tools recommended in the 7 days to it, enabled tools), for the range's days
    (at least the latest day)."""
    now = now or timezone.now()
    first = min((now - filters.window.span).date() + timedelta(days=1), now.date())
    rows = CoverageDaily.objects.filter(
        day__gte=first, day__lte=now.date(), namespace=filters.namespace, api_key_id=filters.api_key_id
    ).order_by("day")
    return list(rows.values_list("day", "tools_recommended", "tools_enabled"))


def service_points(
    filters: Filters, *, now: datetime | None = None
) -> list[tuple[datetime, float | None, float | None]]:
    """(at, learner lag, index age) samples of the range; at most about 300, evenly thinned."""
    now = now or timezone.now()
    samples = ServiceSample.objects.filter(at__gte=now - filters.window.span, at__lte=now).order_by("at")
    count = samples.count()
    stride = max(1, count // 300)
    points = list(samples.values_list("at", "learner_lag_seconds", "index_age_seconds"))
    return points[::stride]


def filter_choices() -> dict[str, list[tuple[str, str]]]:
    """The namespaces seen in the daily rollups and the API keys, for the filter form."""
    namespaces = Rollup.objects.filter(period=Rollup.Period.DAY).values_list("namespace", flat=True).distinct()
    keys = ApiKey.objects.order_by("name").values_list("pk", "name", "prefix")
    return {
        "namespaces": [(n, n) for n in sorted(set(namespaces)) if n],
        "keys": [(str(pk), f"{name} ({prefix}…)") for pk, name, prefix in keys],
    }


def last_rollup_at(*, now: datetime) -> datetime | None:
    """When the periodic rollup last ran (it samples the service first, then rolls up)."""
    return ServiceSample.objects.filter(at__lte=now).order_by("-at").values_list("at", flat=True).first()


def recent_sums(start: datetime, end: datetime) -> dict[str, float]:
    """The 5-minute rows' sums over [start, end), all namespaces and keys (the /metrics gauges)."""
    rows = Rollup.objects.filter(period=Rollup.Period.FIVE_MINUTES, start__gte=start, start__lt=end)
    found = rows.aggregate(**{name: Sum(name) for name in SUMMED_FIELDS})
    return {name: float(value or 0) for name, value in found.items()}


def latest_coverage(*, now: datetime) -> tuple[int, int]:
    """(tools recommended in the 7 days to the latest rolled-up day, enabled tools), all
    namespaces and keys; (0, 0) before the first rollup."""
    row = (
        CoverageDaily.objects.filter(day__lte=now.date(), namespace="", api_key_id=0)
        .order_by("-day")
        .values_list("tools_recommended", "tools_enabled")
        .first()
    )
    return (row[0], row[1]) if row else (0, 0)
