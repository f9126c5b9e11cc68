"""The tool list in the admin, for curators: recommendations, uses and usage rate per tool
from the learned counts, and filters for tools never recommended or never used."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from catalog.models import Tool
from feedback.models import Impression
from recommender.learning.learner import learning_batch
from recommender.learning.models import ToolStats

CHANGELIST = "/admin/catalog/tool/"


@pytest.fixture
def curator(db: Any) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("curator", "curator@example.com", "pw"))
    return client


def _recommend(api: APIClient, text: str) -> dict[str, Any]:
    response = api.post(
        "/api/v1/recommendations", {"messages": [{"role": "user", "content": text}], "k": 3}, format="json"
    )
    assert response.status_code == 200
    return response.json()


@pytest.fixture
def traffic(api: APIClient, indexed: None) -> dict[str, set[int]]:
    """Three recommendations, uses of two tools, all learned: real ToolStats rows."""
    mail = _recommend(api, "send an email to Bob")
    _recommend(api, "send an email to Alice")
    weather = _recommend(api, "weather in Paris tomorrow")
    for body in (mail, weather):
        event = {"tool": body["tools"][0]["name"], "used": True}
        response = api.post(
            "/api/v1/feedback", {"recommendation_id": body["recommendation_id"], "events": [event]}, format="json"
        )
        assert response.status_code == 201
    learning_batch(delay_seconds=0)
    used = {Tool.objects.get(name=b["tools"][0]["name"]).pk for b in (mail, weather)}
    return {
        "all": set(Tool.objects.values_list("pk", flat=True)),
        "shown": set(Impression.objects.values_list("tool_id", flat=True)),
        "used": used,
    }


def _usage_rate_column(client: Client) -> int:
    """The admin's sort index of the usage-rate column (it counts the action checkbox)."""
    columns = list(client.get(CHANGELIST).context["cl"].list_display)
    return columns.index("usage_rate")


def _listed(client: Client, **params: str) -> list[Any]:
    response = client.get(CHANGELIST, params)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def test_the_filters_find_tools_never_recommended_and_never_used(curator: Client, traffic: dict[str, set[int]]) -> None:
    assert traffic["shown"] and traffic["all"] - traffic["shown"] and traffic["shown"] - traffic["used"]
    assert {t.pk for t in _listed(curator, activity="never_recommended")} == traffic["all"] - traffic["shown"]
    assert {t.pk for t in _listed(curator, activity="never_used")} == traffic["shown"] - traffic["used"]
    assert {t.pk for t in _listed(curator, activity="used")} == traffic["used"]
    assert {t.pk for t in _listed(curator, recommendations="1-99")} == traffic["shown"]


def test_the_columns_show_the_learned_counts(curator: Client, traffic: dict[str, set[int]]) -> None:
    rows = {t.pk: t for t in _listed(curator)}
    for stats in ToolStats.objects.all():
        row = rows[stats.tool_id]
        assert (row.recommendations, row.uses) == (stats.times_recommended, stats.times_used)
        if stats.times_recommended:
            assert row.usage_rate == pytest.approx(stats.times_used / stats.times_recommended)
    never = rows[next(iter(traffic["all"] - traffic["shown"]))]
    assert (never.recommendations, never.uses, never.usage_rate) == (0, 0, None)
    page = curator.get(CHANGELIST).content.decode()
    best = max(ToolStats.objects.filter(times_recommended__gt=0), key=lambda s: s.times_used / s.times_recommended)
    assert f"{best.times_used / best.times_recommended:.1%}" in page


def test_usage_rate_sorts_and_filters(curator: Client, traffic: dict[str, set[int]]) -> None:
    by_rate = _listed(curator, o=f"-{_usage_rate_column(curator)}")
    rates = [t.usage_rate for t in by_rate if t.usage_rate is not None]
    assert rates == sorted(rates, reverse=True) and rates[0] > 0
    assert all(t.usage_rate is None for t in by_rate[len(rates) :])  # never recommended: last
    high = {t.pk for t in _listed(curator, usage_rate="50+")}
    assert high and high <= traffic["used"]
    low = {t.pk for t in _listed(curator, usage_rate="under-1")}
    assert low == traffic["shown"] - traffic["used"]


def test_the_list_costs_no_query_per_tool(
    curator: Client, traffic: dict[str, set[int]], django_assert_max_num_queries: Any
) -> None:
    params = {"activity": "never_used", "o": f"-{_usage_rate_column(curator)}"}
    more = [Tool(namespace="bulk", name=f"bulk_{i}", function_name=f"bulk_{i}", content_hash=str(i)) for i in range(30)]
    Tool.objects.bulk_create(more)
    ToolStats.objects.bulk_create(
        [ToolStats(tool=t, times_recommended=3, times_used=0) for t in Tool.objects.filter(namespace="bulk")]
    )
    assert len(_listed(curator, **params)) >= 30
    # session, user, two counts, the page, the choices of the tenant, namespace and category
    # filters: the counts come joined, not one query per listed tool
    with django_assert_max_num_queries(8):
        curator.get(CHANGELIST, params)
