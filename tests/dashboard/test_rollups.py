"""The rollups: what the log says, summed per window, the same however often they run."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from catalog.models import Tool
from dashboard.models import CoverageDaily, Rollup, ServiceSample, ToolDailyRollup
from dashboard.rollups import rollup_range
from feedback.models import Impression, Recommendation, UsageEvent
from toolrec_site.scheduling import PERIODIC_TASKS, ROLLUP_DASHBOARD, task_named

REC = "/api/v1/recommendations"
FEEDBACK = "/api/v1/feedback"
QUESTIONS = [
    "what's the weather in Paris tomorrow",
    "send an email to Bob about the report",
    "create a meeting with Alice on monday",
    "convert 100 dollars to euros",
    "what is the Apple stock price",
    "search my inbox for the invoice",
]


def _traffic(api: APIClient) -> list[dict[str, Any]]:
    """Six answers; the first tool of every other one used, one tool of the third reported unused."""
    bodies = []
    for n, text in enumerate(QUESTIONS):
        body = api.post(
            REC, {"messages": [{"role": "user", "content": text}], "k": 3, "user_id": f"u{n % 2}"}, format="json"
        ).json()
        bodies.append(body)
        events = [{"tool": body["tools"][0]["name"], "used": True}] if n % 2 == 0 else []
        if n == 3:
            events.append({"tool": body["tools"][1]["name"], "used": False})
        if events:
            response = api.post(
                FEEDBACK, {"recommendation_id": body["recommendation_id"], "events": events}, format="json"
            )
            assert response.status_code == 201, response.json()
    return bodies


def _window() -> tuple[Any, Any]:
    now = timezone.now()
    return now - timedelta(minutes=5), now + timedelta(minutes=1)


def _rows(model: Any) -> list[dict[str, Any]]:
    return sorted((_without_id(r) for r in model.objects.values()), key=repr)


def _without_id(row: dict[str, Any]) -> dict[str, Any]:
    row.pop("id", None)
    return row


def _total(period: str, name: str) -> int:
    return sum(getattr(r, name) for r in Rollup.objects.filter(period=period))


def test_the_rollups_count_what_the_log_holds(api: APIClient, indexed: None) -> None:
    _traffic(api)
    rollup_range(*_window())
    used = UsageEvent.objects.filter(used=True)
    for period in ("5min", "hour", "day"):
        assert _total(period, "recommendations") == Recommendation.objects.count() == len(QUESTIONS)
        assert _total(period, "impressions") == Impression.objects.count() == 3 * len(QUESTIONS)
        assert _total(period, "uses") == used.count() == 3
        assert _total(period, "hits") == 3
        assert _total(period, "feedback_events") == UsageEvent.objects.count() == 4
        assert _total(period, "cache_lookups") == sum(
            Recommendation.objects.values_list("embed_cache_lookups", flat=True)
        )
        assert sum(sum(r.latency_histogram) for r in Rollup.objects.filter(period=period)) == len(QUESTIONS)
    by_tool = {r.tool_id: r for r in ToolDailyRollup.objects.all()}
    for impression in Impression.objects.all():
        assert by_tool[impression.tool_id].shows == Impression.objects.filter(tool_id=impression.tool_id).count()
    for use in used:
        assert by_tool[use.tool_id].uses == used.filter(tool_id=use.tool_id).count()
        assert by_tool[use.tool_id].used_rank_sum >= by_tool[use.tool_id].uses  # ranks start at 1
    coverage = CoverageDaily.objects.get(namespace="", api_key_id=0)
    assert coverage.tools_recommended == Impression.objects.values("tool_id").distinct().count()
    assert coverage.tools_enabled == Tool.objects.filter(enabled=True).count()
    kinds = set()
    for row in CoverageDaily.objects.all():  # every filter combination counts its own distinct tools
        shown = Impression.objects.all()
        if row.namespace:
            shown = shown.filter(tool__namespace=row.namespace)
        if row.api_key_id:
            shown = shown.filter(recommendation__api_key_id=row.api_key_id)
        assert row.tools_recommended == shown.values("tool_id").distinct().count() > 0, row.__dict__
        kinds.add((bool(row.namespace), bool(row.api_key_id)))
    assert len(kinds) == 4


def test_recomputing_a_window_gives_the_same_rows_and_picks_up_late_uses(api: APIClient, indexed: None) -> None:
    bodies = _traffic(api)
    rollup_range(*_window())
    first = {model: _rows(model) for model in (Rollup, ToolDailyRollup, CoverageDaily)}
    rollup_range(*_window())
    assert {model: _rows(model) for model in first} == first
    late = bodies[1]
    api.post(
        FEEDBACK,
        {"recommendation_id": late["recommendation_id"], "events": [{"tool": late["tools"][2]["name"], "used": True}]},
        format="json",
    )
    rollup_range(*_window())
    assert _total("hour", "uses") == 4 and _total("hour", "hits") == 4
    assert _total("day", "uses") == 4


def test_a_window_without_traffic_leaves_no_rows(db: Any) -> None:
    rollup_range(*_window())
    assert not Rollup.objects.exists() and not ToolDailyRollup.objects.exists()


def test_the_rollup_is_a_periodic_task_that_also_samples_the_service(api: APIClient, indexed: None) -> None:
    assert PERIODIC_TASKS["dashboard-rollup"][0] == ROLLUP_DASHBOARD
    _traffic(api)
    result = task_named(ROLLUP_DASHBOARD).apply()
    assert result.successful(), result.traceback
    assert _total("hour", "recommendations") == len(QUESTIONS)
    sample = ServiceSample.objects.get()
    assert sample.index_age_seconds is not None and sample.index_age_seconds >= 0
    assert sample.learner_lag_seconds == 0.0  # the answers are not due for learning yet


@pytest.mark.django_db
def test_the_index_age_is_empty_without_a_snapshot() -> None:
    from dashboard.samples import service_sample_record

    sample = service_sample_record()
    assert sample.index_age_seconds is None and sample.learner_lag_seconds == 0.0
