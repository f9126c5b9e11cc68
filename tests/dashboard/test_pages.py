"""The tools, tool, learning and catalog pages on rollups and small tables of a real log."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from catalog.models import Tool
from dashboard.estimates import policy_estimates_record
from dashboard.models import PolicyEstimate
from dashboard.rollups import rollup_range
from feedback.models import Impression, Recommendation, UsageEvent
from recommender.learning.learner import learning_batch
from tests.dashboard.test_overview_page import rolled_up, staff  # noqa: F401  (fixtures)


def _csv(response: Any) -> list[list[str]]:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_the_tools_table_counts_shows_and_uses_per_tool(staff: Client, rolled_up: None) -> None:  # noqa: F811
    rows = _csv(staff.get("/dashboard/tools/?range=week&sort=uses&csv=1"))
    assert rows[0][:3] == ["tool", "recommendations", "uses"]
    body = {r[0]: (int(r[1]), int(r[2])) for r in rows[1:]}
    for tool in Tool.objects.filter(pk__in=Impression.objects.values("tool_id")):
        shows = Impression.objects.filter(tool=tool).count()
        uses = UsageEvent.objects.filter(tool=tool, used=True).count()
        assert body[tool.key] == (shows, uses)
    uses_column = [int(r[2]) for r in rows[1:]]
    assert uses_column == sorted(uses_column, reverse=True)


def test_the_views_split_never_recommended_and_never_used(staff: Client, rolled_up: None) -> None:  # noqa: F811
    shown = set(Impression.objects.values_list("tool_id", flat=True))
    used = set(UsageEvent.objects.filter(used=True).values_list("tool_id", flat=True))
    never = _csv(staff.get("/dashboard/tools/?range=week&view=never_recommended&csv=1"))
    assert {r[0] for r in never[1:]} == {t.key for t in Tool.objects.filter(enabled=True).exclude(pk__in=shown)}
    unused = _csv(staff.get("/dashboard/tools/?range=week&view=never_used&csv=1"))
    assert {r[0] for r in unused[1:]} == {t.key for t in Tool.objects.filter(pk__in=shown - used)}
    new = staff.get("/dashboard/tools/?range=week&view=new")
    assert new.status_code == 200 and b"Queries until first use" in new.content


def test_new_tools_count_the_queries_until_the_day_of_their_first_use(
    staff: Client,  # noqa: F811
    api: APIClient,
    indexed: None,
) -> None:
    ask = {"messages": [{"role": "user", "content": "send an email to Bob about the report"}], "k": 3}
    bodies = [api.post("/api/v1/recommendations", ask, format="json").json() for _ in range(3)]
    used = bodies[1]["tools"][0]["name"]
    events = {"recommendation_id": bodies[1]["recommendation_id"], "events": [{"tool": used, "used": True}]}
    assert api.post("/api/v1/feedback", events, format="json").status_code == 201
    now = timezone.now()
    for days_ago, body in zip((3, 2, 0), bodies):  # shown, shown and used, shown again
        Recommendation.objects.filter(pk=body["recommendation_id"]).update(created_at=now - timedelta(days=days_ago))
    rollup_range(now - timedelta(days=3, hours=1), now + timedelta(minutes=1))
    tool = Tool.objects.get(name=used)
    shown = Impression.objects.filter(tool=tool)
    until = shown.filter(recommendation_id__in=[b["recommendation_id"] for b in bodies[:2]]).count()
    assert 0 < until < shown.count()  # the later show does not count
    rows = _csv(staff.get("/dashboard/tools/?range=week&view=new&csv=1"))
    assert rows[0][-2:] == ["added", "queries until first use"]
    by_tool = {r[0]: r for r in rows[1:]}
    assert (int(by_tool[tool.key][1]), int(by_tool[tool.key][-1])) == (shown.count(), until)
    never_used = next(r for key, r in by_tool.items() if key != tool.key)
    assert never_used[-1] == ""  # not used yet


def test_the_tools_page_renders_and_refuses_a_bad_sort(staff: Client, rolled_up: None) -> None:  # noqa: F811
    page = staff.get("/dashboard/tools/?range=day&sort=usage_rate&dir=asc")
    assert page.status_code == 200 and b'aria-sort="ascending"' in page.content
    assert staff.get("/dashboard/tools/?sort=password").status_code == 400


def test_a_tool_page_shows_its_history(staff: Client, rolled_up: None) -> None:  # noqa: F811
    tool_id = UsageEvent.objects.filter(used=True).values_list("tool_id", flat=True).first()
    assert tool_id is not None
    assert staff.get(f"/dashboard/tools/{tool_id}/?range=week").status_code == 200
    rows = _csv(staff.get(f"/dashboard/tools/{tool_id}/?range=week&csv=1"))
    assert sum(int(r[1]) for r in rows[1:]) == Impression.objects.filter(tool_id=tool_id).count()
    assert staff.get("/dashboard/tools/999999/").status_code == 404


def test_the_learning_page_shows_versions_weights_and_stored_estimates(staff: Client, rolled_up: None) -> None:  # noqa: F811
    learning_batch(delay_seconds=0)
    stored = policy_estimates_record()
    assert stored and PolicyEstimate.objects.count() == len(stored)
    page = staff.get("/dashboard/learning/")
    assert page.status_code == 200
    weights = _csv(staff.get("/dashboard/learning/?csv=weights"))
    assert "dense" in {r[0] for r in weights[1:]}
    estimates = _csv(staff.get("/dashboard/learning/?csv=estimates"))
    assert {r[0] for r in estimates[1:]} == {e.policy for e in stored}


def test_the_catalog_page_shows_the_active_snapshot_and_namespaces(staff: Client, rolled_up: None) -> None:  # noqa: F811
    page = staff.get("/dashboard/catalog/")
    assert page.status_code == 200 and b"(active)" in page.content
    rows = _csv(staff.get("/dashboard/catalog/?csv=namespaces"))
    assert rows[1:] == [["default", str(Tool.objects.filter(enabled=True).count()), str(Tool.objects.count())]]


@pytest.mark.parametrize("url", ["/dashboard/learning/", "/dashboard/catalog/", "/dashboard/tools/?view=new"])
def test_the_pages_render_on_an_empty_database(staff: Client, url: str) -> None:  # noqa: F811
    assert staff.get(url).status_code == 200
