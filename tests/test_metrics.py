"""/metrics: the success metrics as gauges, read from the dashboard's rollups of the log, and
the tool-use counter with bounded labels. (Two gunicorn workers adding up: tests/test_gunicorn_metrics.py.)"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db.models import Q
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from catalog.models import Tool
from dashboard.charts import overview_charts
from dashboard.rollups import rollup_range
from dashboard.selectors import Filters
from feedback.models import Impression, Recommendation, UsageEvent
from recommender.learning.learner import learning_batch
from recommender.learning.state import learned_state_load
from toolrec_site import metrics
from toolrec_site.scheduling import ROLLUP_DASHBOARD, task_named
from toolrec_site.scrape import SUCCESS_KEY
from toolrec_site.success_metrics import success_metrics

QUERIES = ["send an email to Bob", "weather in Paris tomorrow", "create a meeting on Monday", "convert 10 USD to EUR"]


def _recommend(api: APIClient, text: str, k: int = 3) -> dict[str, Any]:
    response = api.post(
        "/api/v1/recommendations", {"messages": [{"role": "user", "content": text}], "k": k}, format="json"
    )
    assert response.status_code == 200, response.json()
    return response.json()


def _use(api: APIClient, body: dict[str, Any], *ranks: int) -> None:
    events = [{"tool": body["tools"][r]["name"], "used": True} for r in ranks]
    response = api.post(
        "/api/v1/feedback", {"recommendation_id": body["recommendation_id"], "events": events}, format="json"
    )
    assert response.status_code == 201, response.json()


def _scrape() -> dict[str, float]:
    cache.delete(SUCCESS_KEY)
    text = Client().get("/metrics").content.decode()
    return {
        s.name + repr(sorted(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def _rollup() -> None:
    """What the periodic task does every few minutes: sample the service, roll up the last hours."""
    result = task_named(ROLLUP_DASHBOARD).apply()
    assert result.successful(), result.traceback


def _back(minutes: float, *recommendation_ids: str) -> None:
    Recommendation.objects.filter(pk__in=recommendation_ids).update(
        created_at=timezone.now() - timedelta(minutes=minutes)
    )


def test_usage_and_hit_rates_count_the_window_s_recommendations(api: APIClient, indexed: None) -> None:
    bodies = [_recommend(api, q) for q in QUERIES]
    _use(api, bodies[0], 0, 1)
    _use(api, bodies[2], 2)
    _back(7, *(b["recommendation_id"] for b in bodies))  # their uses had time to arrive
    _rollup()
    found = success_metrics(window_seconds=900)
    shown = Impression.objects.count()
    assert found.recommendations == 4 and found.shown == shown == 12
    assert found.usage_rate == pytest.approx(3 / 12)
    assert found.hit_rate == pytest.approx(2 / 4)


def test_the_window_leaves_out_answers_still_waiting_for_feedback_and_old_ones(api: APIClient, indexed: None) -> None:
    bodies = [_recommend(api, q) for q in QUERIES[:2]]
    _use(api, bodies[0], 0)
    _rollup()
    assert success_metrics(window_seconds=900).recommendations == 0  # too recent: uses may still come
    _back(7, bodies[0]["recommendation_id"])
    _back(120, bodies[1]["recommendation_id"])  # rolled up, but before the window
    _rollup()
    found = success_metrics(window_seconds=900)
    assert (found.recommendations, found.usage_rate, found.hit_rate) == (1, pytest.approx(1 / 3), 1.0)


def test_exploration_counts_exploratory_picks_and_new_tools_as_the_dashboard_does(
    api: APIClient, indexed: None
) -> None:
    bodies = [_recommend(api, q) for q in QUERIES]
    _back(7, *(b["recommendation_id"] for b in bodies))
    shown = list(Impression.objects.order_by("pk"))
    new_tool = shown[0].tool_id
    Tool.objects.exclude(pk=new_tool).update(created_at=timezone.now() - timedelta(days=60))
    Impression.objects.filter(pk__in=[shown[1].pk, shown[-1].pk]).update(explored=True)
    _rollup()
    found = success_metrics(window_seconds=900)
    explored = Impression.objects.filter(Q(explored=True) | Q(tool_id=new_tool)).count()
    assert 2 <= explored < len(shown)  # neither everything (all tools new) nor only the picks
    assert (found.explored, found.shown) == (explored, len(shown))
    headline = next(c for c in overview_charts(Filters("hour")) if c.key == "exploration_rate").headline
    assert headline == f"{100 * explored / len(shown):.1f}%"


def test_coverage_is_the_share_of_enabled_tools_recommended_in_the_last_week(api: APIClient, indexed: None) -> None:
    bodies = [_recommend(api, q) for q in QUERIES]
    stale = bodies[0]["recommendation_id"]
    _back(8 * 24 * 60, stale)  # eight days ago: out of the week
    never_shown = Tool.objects.exclude(pk__in=Impression.objects.values("tool_id")).order_by("pk").first()
    assert never_shown is not None
    Tool.objects.filter(pk=never_shown.pk).update(enabled=False)
    old = timezone.now() - timedelta(days=8, hours=1)
    rollup_range(old, old + timedelta(hours=2))
    _rollup()
    found = success_metrics(window_seconds=900)
    recent = set(Impression.objects.exclude(recommendation_id=stale).values_list("tool_id", flat=True))
    assert set(Impression.objects.filter(recommendation_id=stale).values_list("tool_id", flat=True)) - recent
    assert found.enabled_tools == Tool.objects.count() - 1
    assert found.coverage == pytest.approx(len(recent) / found.enabled_tools)


def test_learner_lag_is_how_long_due_feedback_waited(api: APIClient, indexed: None) -> None:
    from django.conf import settings

    body = _recommend(api, QUERIES[0])
    assert success_metrics(window_seconds=600).learner_lag_seconds == 0.0  # not due yet
    waited = timezone.now() - timedelta(seconds=settings.LEARN_DELAY_SECONDS + 90)
    Recommendation.objects.filter(pk=body["recommendation_id"]).update(created_at=waited)
    assert success_metrics(window_seconds=600).learner_lag_seconds == pytest.approx(90, abs=5)
    learning_batch(delay_seconds=0)
    assert success_metrics(window_seconds=600).learner_lag_seconds == 0.0
    _use(api, body, 0)  # a late use of a learned recommendation waits for the next batch
    UsageEvent.objects.update(created_at=timezone.now() - timedelta(seconds=30))
    assert success_metrics(window_seconds=600).learner_lag_seconds == pytest.approx(30, abs=5)


def test_metrics_exports_the_success_gauges(api: APIClient, indexed: None) -> None:
    body = _recommend(api, QUERIES[0])
    _use(api, body, 0)
    Recommendation.objects.update(created_at=timezone.now() - timedelta(minutes=7))
    learning_batch(delay_seconds=0)
    _rollup()
    samples = _scrape()
    assert samples["toolrec_window_recommendations[]"] == 1
    assert samples["toolrec_usage_rate[]"] == pytest.approx(1 / 3)
    assert samples["toolrec_hit_rate[]"] == 1.0
    assert samples["toolrec_coverage[]"] == pytest.approx(3 / Tool.objects.count())
    assert samples["toolrec_learner_lag_seconds[]"] == 0.0
    assert 0 <= samples["toolrec_index_age_seconds[]"] < 600
    assert 0 <= samples["toolrec_embedding_cache_hit_rate[]"] <= 1
    # every tool was added today: all of it is exploration
    assert samples["toolrec_exploration_rate[]"] == 1.0
    assert 0 < time.time() - samples["toolrec_success_window_end_timestamp_seconds[]"] < 900


def test_without_traffic_the_rates_are_absent_not_zero(db: None) -> None:
    samples = _scrape()
    assert "toolrec_usage_rate[]" not in samples and "toolrec_hit_rate[]" not in samples
    assert samples["toolrec_window_recommendations[]"] == 0


def test_tool_uses_name_only_the_most_used_tools(api: APIClient, indexed: None, monkeypatch: Any) -> None:
    monkeypatch.setattr(metrics, "TOOL_LABELS_MAX", 1)
    metrics.tool_labels_set({})
    first = _recommend(api, QUERIES[0])
    _use(api, first, 0)
    learning_batch(delay_seconds=0)
    learned_state_load(None)  # what a web process does when the learner publishes
    top = Tool.objects.get(name=first["tools"][0]["name"])
    before = _scrape()
    second = _recommend(api, QUERIES[0])
    _use(api, second, 0, 1, 2)
    after = _scrape()
    delta = {k: v - before.get(k, 0.0) for k, v in after.items() if k.startswith("toolrec_tool_uses_total")}
    expected: dict[str, float] = {}
    for tool in second["tools"]:
        label = top.key if tool["name"] == top.name else "other"
        key = f"toolrec_tool_uses_total[('tool', '{label}'), ('used', 'true')]"
        expected[key] = expected.get(key, 0.0) + 1
    assert {k: v for k, v in delta.items() if v} == expected
    assert len(expected) == 2  # the most used tool was shown again, beside others
