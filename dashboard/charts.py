"""The overview's charts: each success metric as a series over the chosen range, with the
help text that says how it is computed and its value over the whole range."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from dashboard.rollups import LATENCY_BOUNDS_MS
from dashboard.selectors import Filters, Window, coverage_points, rollup_windows, service_points
from dashboard.stats import RatioSums, histogram_percentile, lift_interval


@dataclass
class Chart:
    key: str
    title: str
    unit: str  # "/s", "%", "ms", "x", "s"
    help: str
    labels: list[str] = field(default_factory=list)
    datasets: dict[str, list[float | None]] = field(default_factory=dict)
    headline: str = "–"
    kind: str = "line"  # "bar" for categories (features, policies, namespaces)

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "unit": self.unit,
            "kind": self.kind,
            "labels": self.labels,
            "datasets": [{"label": name, "data": data} for name, data in self.datasets.items()],
        }

    def rows(self) -> list[list[Any]]:
        return [[label, *(data[i] for data in self.datasets.values())] for i, label in enumerate(self.labels)]


def _ratio(num: str, den: str, scale: float = 100.0) -> Callable[[dict[str, float]], float | None]:
    return lambda s: (s[num] / s[den] * scale) if s[den] else None


# key, title, unit, how it is computed, value of one window's sums (None: undefined)
RATIO_METRICS: list[tuple[str, str, str, str, Callable[[dict[str, float]], float | None]]] = [
    ("usage_rate", "Usage rate", "%", "Shown tools reported used ÷ tools shown, by the time of the recommendation.",
     _ratio("uses", "impressions")),
    ("hit_rate", "Hit rate", "%", "Recommendations with at least one tool used ÷ recommendations.",
     _ratio("hits", "recommendations")),
    ("exploration_rate", "Exploration rate", "%",
     "Shown tools that the policy picked to explore, or that were added to the catalog in the last "
     "DASHBOARD_NEW_TOOL_DAYS days ÷ tools shown.", _ratio("explored", "impressions")),
    ("cache_hit_rate", "Embedding-cache hit rate", "%",
     "Query texts the embedding cache answered ÷ query texts embedded (last message and recent turns).",
     _ratio("cache_hits", "cache_lookups")),
    ("no_match_share", "No good match", "%",
     "Recommendations whose best candidate's cosine similarity was below NO_MATCH_SIMILARITY ÷ recommendations.",
     _ratio("no_match", "recommendations")),
]  # fmt: skip


def _label(moment: datetime, step_seconds: float) -> str:
    local = timezone.localtime(moment)
    return local.strftime("%Y-%m-%d" if step_seconds >= 86400 else "%m-%d %H:%M")


def _per_second(rate: float) -> str:
    """Slow traffic reads better per hour than as 0.0000661/s."""
    return f"{rate:.3g}/s" if rate >= 0.01 or rate == 0 else f"{rate * 3600:.3g}/h"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}%"


def _totals(windows: list[Window]) -> tuple[dict[str, float], list[int]]:
    sums = {name: sum(w.sums[name] for w in windows) for name in windows[0].sums} if windows else {}
    histogram = [sum(col) for col in zip(*(w.histogram for w in windows))] if windows else []
    return sums, histogram


def _group(sums: dict[str, float], prefix: str) -> RatioSums:
    return RatioSums(*(sums[prefix + name] for name in ("recs", "used", "shown", "used_sq", "shown_sq", "used_shown")))


def _throughput_charts(windows: list[Window], labels: list[str], seconds: float, span: float) -> list[Chart]:
    totals, _ = _totals(windows)
    charts = []
    for key, name, what in (("recommendations_per_s", "recommendations", "Recommendations"),
                            ("feedback_per_s", "feedback_events", "Feedback events")):  # fmt: skip
        chart = Chart(
            key, f"{what} per second", "/s", f"{what} in the window ÷ the window's length in seconds.", labels
        )
        chart.datasets[what] = [float(f"{w.sums[name] / seconds:.4g}") for w in windows]
        chart.headline = f"{_per_second(totals.get(name, 0) / span)} ({int(totals.get(name, 0))} in the range)"
        charts.append(chart)
    return charts


def _latency_chart(windows: list[Window], labels: list[str]) -> Chart:
    chart = Chart(
        "latency", "Latency percentiles", "ms",
        "Time inside the service per recommendation, from a histogram of fixed buckets (2 ms to 5 s), "
        "interpolated inside the bucket; p50, p95 and p99 of the window.", labels,
    )  # fmt: skip
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        values = [histogram_percentile(w.histogram, LATENCY_BOUNDS_MS, q) for w in windows]
        chart.datasets[name] = [None if v is None else round(v, 1) for v in values]
    _, histogram = _totals(windows)
    p = [histogram_percentile(histogram, LATENCY_BOUNDS_MS, q) for q in (0.5, 0.95, 0.99)]
    chart.headline = " · ".join(f"{n} {v:.0f} ms" for n, v in zip(("p50", "p95", "p99"), p) if v is not None) or "–"
    return chart


def _lift_chart(windows: list[Window], labels: list[str]) -> Chart:
    chart = Chart(
        "personalization_lift", "Personalization lift", "x",
        "Usage rate of recommendations whose slate the user's own history changed ÷ usage rate of the others "
        "(1 = no lift). The interval is 95%, delta method on per-recommendation sums.", labels,
    )  # fmt: skip
    values, lows, highs = [], [], []
    for w in windows:
        lift = lift_interval(_group(w.sums, "p_"), _group(w.sums, "n_"))
        values.append(None if lift is None else round(lift.value, 3))
        lows.append(None if lift is None or lift.low is None else round(lift.low, 3))
        highs.append(None if lift is None or lift.high is None else round(lift.high, 3))
    chart.datasets = {"lift": values, "95% low": lows, "95% high": highs}
    totals, _ = _totals(windows)
    lift = lift_interval(_group(totals, "p_"), _group(totals, "n_")) if totals else None
    if lift is not None:
        interval = f" [{lift.low:.2f}, {lift.high:.2f}]" if lift.low is not None and lift.high is not None else ""
        chart.headline = f"{lift.value:.2f}×{interval} ({int(totals['p_recs'])} vs {int(totals['n_recs'])} recs)"
    return chart


def _coverage_chart(filters: Filters, now: datetime) -> Chart:
    chart = Chart(
        "coverage", "Coverage (7 days)", "%",
        "Enabled tools recommended at least once in the 7 days up to the day ÷ enabled tools (daily; the "
        "namespace filter counts that namespace's tools).",
    )  # fmt: skip
    points = coverage_points(filters, now=now)
    chart.labels = [day.isoformat() for day, _, _ in points]
    chart.datasets["coverage"] = [round(100 * shown / enabled, 2) if enabled else None for _, shown, enabled in points]
    if points:
        _, shown, enabled = points[-1]
        chart.headline = f"{_percent(100 * shown / enabled if enabled else None)} ({shown} of {enabled} tools)"
    return chart


def _service_charts(filters: Filters, now: datetime) -> list[Chart]:
    points = service_points(filters, now=now)
    labels = [_label(at, 60) for at, _, _ in points]
    lag = Chart("learner_lag", "Learner lag", "s",
                "Seconds since the oldest unlearned work came due (a recommendation LEARN_DELAY_SECONDS after it "
                "was served, a late use at once), as in /healthz; sampled when the rollup runs.", labels)  # fmt: skip
    age = Chart(
        "index_age", "Index age", "s", "Time since the active snapshot was built, sampled when the rollup runs.", labels
    )
    lag.datasets["lag"] = [round(v or 0.0, 1) for _, v, _ in points]
    age.datasets["age"] = [None if v is None else round(v, 1) for _, _, v in points]
    if points:
        lag.headline, age.headline = f"{points[-1][1] or 0:.0f} s", f"{points[-1][2] or 0:.0f} s"
    return [lag, age]


def overview_charts(filters: Filters, *, now: datetime | None = None) -> list[Chart]:
    now = now or timezone.now()
    windows = rollup_windows(filters, now=now)
    step = filters.window.step.total_seconds()
    labels = [_label(w.start, step) for w in windows]
    charts = _throughput_charts(windows, labels, step, filters.window.span.total_seconds())
    totals, _ = _totals(windows)
    for key, title, unit, help_text, value in RATIO_METRICS:
        chart = Chart(key, title, unit, help_text, labels)
        chart.datasets[title] = [None if (v := value(w.sums)) is None else round(v, 3) for w in windows]
        chart.headline = _percent(value(totals)) if totals else "–"
        charts.append(chart)
    charts.insert(4, _coverage_chart(filters, now))
    charts += [_lift_chart(windows, labels), _latency_chart(windows, labels), *_service_charts(filters, now)]
    return charts
