"""Aggregating the feedback log into the rollup tables the dashboard reads.

Each window is recomputed whole: its rows are deleted and written again inside one
transaction, from the log alone, so running a window twice gives the same rows, and uses
reported late are picked up the next time their window runs (the periodic task runs the
last `DASHBOARD_ROLLUP_LOOKBACK_HOURS` hours every time).

One pass over an hour of the log reads one row per recommendation (its shown, used and
explored counts joined in SQL) and buckets them by 5 minutes in Python: the 5-minute
bucket and the latency histogram have no portable SQL between SQLite and PostgreSQL, and
an hour's recommendations are few enough to sum in the process. Hours sum the 5-minute
rows, days the hours; per-tool counts and coverage are grouped by SQL per day.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, FloatField
from django.utils import timezone

from catalog.models import Tool
from dashboard.models import CoverageDaily, Rollup, ToolDailyRollup, ToolRangeRollup
from feedback.models import Impression, Recommendation, UsageEvent

# Upper bounds (ms) of the latency histogram's buckets; the last bucket is open.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    2, 4, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 200, 300, 500, 750, 1000, 2000, 5000,
)  # fmt: skip
FIVE_MINUTES = timedelta(minutes=5)
HOUR = timedelta(hours=1)
SUMMED_FIELDS = tuple(
    f.name
    for f in Rollup._meta.concrete_fields
    if f.name not in ("id", "period", "start", "namespace", "api_key_id", "latency_histogram")
)
_FLOAT_FIELDS = frozenset(f.name for f in Rollup._meta.concrete_fields if isinstance(f, FloatField))


@dataclass
class _Sums:
    values: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SUMMED_FIELDS, 0.0))
    histogram: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))

    def add(self, other: _Sums) -> None:
        for name, value in other.values.items():
            self.values[name] += value
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram)]

    def row(self, period: str, start: datetime, namespace: str, api_key_id: int) -> Rollup:
        counts = {name: value if name in _FLOAT_FIELDS else int(value) for name, value in self.values.items()}
        return Rollup(
            period=period,
            start=start,
            namespace=namespace,
            api_key_id=api_key_id,
            **counts,
            latency_histogram=self.histogram,
        )


def _tables() -> dict[str, str]:
    return {
        "rec": Recommendation._meta.db_table,
        "imp": Impression._meta.db_table,
        "use": UsageEvent._meta.db_table,
        "tool": Tool._meta.db_table,
    }


# One row per recommendation of the window: its shown, used and explored counts, and the
# namespace of its first tool. The uses join on the one-use-per-(recommendation, tool)
# unique index; the window filter on rec_created.
_RECOMMENDATIONS_SQL = """
SELECT r.created_at, r.api_key_id, r.latency_ms, r.embed_cache_hits, r.embed_cache_lookups,
       r.personalized, r.best_similarity,
       COUNT(i.id), COUNT(u.id),
       SUM(CASE WHEN i.explored OR t.created_at >= %(new_since)s THEN 1 ELSE 0 END),
       MIN(CASE WHEN i.rank = 1 THEN t.namespace END)
FROM {rec} r
LEFT JOIN {imp} i ON i.recommendation_id = r.id
LEFT JOIN {tool} t ON t.id = i.tool_id
LEFT JOIN {use} u ON u.recommendation_id = i.recommendation_id AND u.tool_id = i.tool_id AND u.used = %(true)s
WHERE r.created_at >= %(start)s AND r.created_at < %(end)s
GROUP BY r.id, r.created_at, r.api_key_id, r.latency_ms, r.embed_cache_hits, r.embed_cache_lookups,
         r.personalized, r.best_similarity
"""

_FEEDBACK_SQL = """
SELECT u.created_at, r.api_key_id, t.namespace
FROM {use} u JOIN {rec} r ON r.id = u.recommendation_id JOIN {tool} t ON t.id = u.tool_id
WHERE u.created_at >= %(start)s AND u.created_at < %(end)s
"""

_TOOL_DAY_SQL = """
SELECT i.tool_id, t.namespace, r.api_key_id, COUNT(i.id), COUNT(u.id),
       COALESCE(SUM(CASE WHEN u.id IS NOT NULL THEN i.rank ELSE 0 END), 0), MAX(u.created_at)
FROM {imp} i
JOIN {rec} r ON r.id = i.recommendation_id
JOIN {tool} t ON t.id = i.tool_id
LEFT JOIN {use} u ON u.recommendation_id = i.recommendation_id AND u.tool_id = i.tool_id AND u.used = %(true)s
WHERE r.created_at >= %(start)s AND r.created_at < %(end)s
GROUP BY i.tool_id, t.namespace, r.api_key_id
"""


def _fetch(sql: str, **params: Any) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql.format(**_tables()), {"true": True, **params})
        return list(cursor.fetchall())


def _aware(value: Any) -> datetime:
    """SQLite hands raw SQL timestamps back as strings."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if timezone.is_aware(value) else timezone.make_aware(value, UTC)


def _five_minute_sums(hour: datetime) -> dict[tuple[datetime, str, int], _Sums]:
    end = hour + HOUR
    new_since = hour - timedelta(days=settings.DASHBOARD_NEW_TOOL_DAYS)
    sums: dict[tuple[datetime, str, int], _Sums] = defaultdict(_Sums)
    for created, key, latency, c_hits, c_lookups, personalized, best, shown, used, explored, namespace in _fetch(
        _RECOMMENDATIONS_SQL, start=hour, end=end, new_since=new_since
    ):
        s = sums[(_bucket(_aware(created), hour), namespace or "", int(key))]
        v = s.values
        v["recommendations"] += 1
        v["impressions"] += shown
        v["uses"] += used
        v["hits"] += 1 if used else 0
        v["explored"] += explored or 0
        v["no_match"] += 1 if best is not None and best < settings.NO_MATCH_SIMILARITY else 0
        v["cache_hits"] += c_hits
        v["cache_lookups"] += c_lookups
        g = "p_" if personalized else "n_"
        v[g + "recs"] += 1
        v[g + "shown"] += shown
        v[g + "used"] += used
        v[g + "shown_sq"] += shown * shown
        v[g + "used_sq"] += used * used
        v[g + "used_shown"] += used * shown
        s.histogram[bisect.bisect_left(LATENCY_BOUNDS_MS, latency)] += 1
    for created, key, namespace in _fetch(_FEEDBACK_SQL, start=hour, end=end):
        sums[(_bucket(_aware(created), hour), namespace, int(key))].values["feedback_events"] += 1
    return sums


def _bucket(moment: datetime, hour: datetime) -> datetime:
    return hour + FIVE_MINUTES * ((moment - hour) // FIVE_MINUTES)


def _replace(period: str, start: datetime, end: datetime, rows: list[Rollup]) -> None:
    Rollup.objects.filter(period=period, start__gte=start, start__lt=end).delete()
    Rollup.objects.bulk_create(rows, batch_size=1000)


def rollup_hour(hour: datetime) -> int:
    """Recompute the 5-minute and hourly rows of the hour starting at `hour`; returns the
    number of hourly rows."""
    five = _five_minute_sums(hour)
    hourly: dict[tuple[str, int], _Sums] = defaultdict(_Sums)
    for (_, namespace, key), sums in five.items():
        hourly[(namespace, key)].add(sums)
    with transaction.atomic():
        _replace(
            Rollup.Period.FIVE_MINUTES, hour, hour + HOUR, [s.row("5min", b, ns, k) for (b, ns, k), s in five.items()]
        )
        _replace(Rollup.Period.HOUR, hour, hour + HOUR, [s.row("hour", hour, ns, k) for (ns, k), s in hourly.items()])
    return len(hourly)


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def rollup_day(day: date) -> None:
    """Recompute the daily rows, per-tool counts and coverage of one (UTC) day from its hours
    and the log (run its hours first)."""
    start, end = _day_start(day), _day_start(day) + timedelta(days=1)
    daily: dict[tuple[str, int], _Sums] = defaultdict(_Sums)
    for hour_row in Rollup.objects.filter(period=Rollup.Period.HOUR, start__gte=start, start__lt=end):
        sums = _Sums({name: getattr(hour_row, name) for name in SUMMED_FIELDS}, list(hour_row.latency_histogram))
        daily[(hour_row.namespace, hour_row.api_key_id)].add(sums)
    tools = [
        ToolDailyRollup(
            day=day,
            tool_id=tool_id,
            namespace=namespace,
            api_key_id=key,
            shows=shows,
            uses=uses,
            used_rank_sum=rank_sum,
            last_used_at=_aware(last) if last is not None else None,
        )
        for tool_id, namespace, key, shows, uses, rank_sum, last in _fetch(_TOOL_DAY_SQL, start=start, end=end)
    ]
    with transaction.atomic():
        _replace(Rollup.Period.DAY, start, end, [s.row("day", start, ns, k) for (ns, k), s in daily.items()])
        ToolDailyRollup.objects.filter(day=day).delete()
        ToolDailyRollup.objects.bulk_create(tools, batch_size=2000)
        coverage_day(day)


def coverage_day(day: date) -> None:
    """The coverage rows of `day`: distinct tools shown over the 7 days ending with it, for
    every combination of all/one namespace and all/one key seen in those days.

    Counted by the database, one COUNT(DISTINCT) per grouping over the (day, ...) unique
    index: distinct counts do not add up, and sets of tool ids in the process took seconds
    per day at 10 million impressions (a week is some 200k daily tool rows)."""
    week = ToolDailyRollup.objects.filter(day__gt=day - timedelta(days=7), day__lte=day, shows__gt=0)
    shown: dict[tuple[str, int], int] = {}
    everything = week.aggregate(n=Count("tool_id", distinct=True))["n"]
    if everything:
        shown[("", 0)] = everything
    for grouping in (("namespace",), ("api_key_id",), ("namespace", "api_key_id")):
        for row in week.values(*grouping).annotate(n=Count("tool_id", distinct=True)).order_by():
            shown[(row.get("namespace", ""), row.get("api_key_id", 0))] = row["n"]
    enabled = dict(
        Tool.objects.filter(enabled=True).values_list("namespace").annotate(n=Count("id")).values_list("namespace", "n")
    )
    total = sum(enabled.values())
    CoverageDaily.objects.filter(day=day).delete()
    CoverageDaily.objects.bulk_create(
        CoverageDaily(
            day=day,
            namespace=namespace,
            api_key_id=key,
            tools_recommended=count,
            tools_enabled=enabled.get(namespace, 0) if namespace else total,
        )
        for (namespace, key), count in shown.items()
    )


def _hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def rollup_range(start: datetime, end: datetime, *, refresh_tool_ranges: bool = True) -> int:
    """Recompute every hour that overlaps [start, end), then the days they touch, then the
    per-tool week and 90-day sums; returns the number of hours."""
    hour, hours, days = _hour_floor(start), 0, set()
    while hour < end:
        rollup_hour(hour)
        days.add(hour.date())
        hour, hours = hour + HOUR, hours + 1
    for day in sorted(days):
        rollup_day(day)
    if refresh_tool_ranges:
        tool_ranges_refresh()
    return hours


# A tool's sums over a range of days, for each key ("api_key_id") and for all (0), and the
# first day of the range on which it was used.
_TOOL_RANGE_SQL = """
INSERT INTO {range_table} (range, tool_id, namespace, api_key_id, shows, uses, used_rank_sum, last_used_at,
                           first_used_on, computed_at)
SELECT %(range)s, tool_id, namespace, {key}, SUM(shows), SUM(uses), SUM(used_rank_sum), MAX(last_used_at),
       MIN(CASE WHEN uses > 0 THEN day END), %(now)s
FROM {daily_table} WHERE day >= %(first)s AND day <= %(last)s
GROUP BY tool_id, namespace{group}
"""
# The New tools view's "queries until first use", stored with the sums so that the page reads
# one row per tool instead of grouping each tool's days per request (most of that view's
# 0.9 s at a million impressions). Only for tools added within the range, on the all-keys
# rows: an older tool's history starts before the range, so its count would be cut short.
# Each tool's days come through the (tool_id, day) index, up to its first use only.
_SHOWS_UNTIL_FIRST_USE_SQL = """
UPDATE {range_table} SET shows_until_first_use = (
    SELECT SUM(d.shows) FROM {daily_table} d
    WHERE d.tool_id = {range_table}.tool_id AND d.day >= %(first)s AND d.day <= {range_table}.first_used_on)
WHERE range = %(range)s AND api_key_id = 0 AND first_used_on IS NOT NULL
  AND tool_id IN (SELECT id FROM {tool_table} WHERE created_at >= %(added_since)s)
"""
TOOL_RANGES = {"week": 7, "90d": 90}


def tool_ranges_refresh(*, now: datetime | None = None) -> None:
    """Recompute the week and 90-day per-tool sums from the daily rows (whole, in one
    transaction: a page reads the old rows or the new, never half)."""
    now = now or timezone.now()
    tables = {
        "range_table": ToolRangeRollup._meta.db_table,
        "daily_table": ToolDailyRollup._meta.db_table,
        "tool_table": Tool._meta.db_table,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        ToolRangeRollup.objects.all().delete()
        for name, days in TOOL_RANGES.items():
            first = (now - timedelta(days=days)).date() + timedelta(days=1)
            params: dict[str, Any] = {"range": name, "now": now, "first": first, "last": now.date()}
            for key, group in (("api_key_id", ", api_key_id"), ("0", "")):
                cursor.execute(_TOOL_RANGE_SQL.format(key=key, group=group, **tables), params)
            cursor.execute(_SHOWS_UNTIL_FIRST_USE_SQL.format(**tables), {**params, "added_since": _day_start(first)})


def tool_ranges_stale(now: datetime) -> bool:
    return not ToolRangeRollup.objects.filter(computed_at__gte=now - HOUR).exists()


def rollup_recent(*, now: datetime | None = None) -> int:
    """The periodic task's work: the last few hours again (late uses land in them), and the
    5-minute rows older than the dashboard's shortest range of them are dropped."""
    now = now or timezone.now()
    lookback = now - timedelta(hours=settings.DASHBOARD_ROLLUP_LOOKBACK_HOURS)
    hours = rollup_range(lookback, now, refresh_tool_ranges=False)  # hourly is fresh enough for them
    Rollup.objects.filter(period=Rollup.Period.FIVE_MINUTES, start__lt=now - timedelta(days=2)).delete()
    if tool_ranges_stale(now):
        tool_ranges_refresh(now=now)
    return hours
