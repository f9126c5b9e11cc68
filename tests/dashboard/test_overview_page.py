"""The overview page through the HTTP client, on rollups of a real (small) log."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from dashboard.rollups import rollup_range
from feedback.models import Impression, Recommendation, UsageEvent
from tests.dashboard.test_rollups import _traffic, _window

PAGES = ["/dashboard/", "/dashboard/tools/", "/dashboard/learning/", "/dashboard/catalog/"]


@pytest.fixture
def staff(db: Any) -> Client:
    user = User.objects.create_user("operator", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def rolled_up(api: APIClient, indexed: None) -> None:
    _traffic(api)
    rollup_range(*_window())


def test_the_overview_shows_the_rates_of_the_log(
    staff: Client, rolled_up: None, django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(12):
        response = staff.get("/dashboard/?range=day")
    assert response.status_code == 200
    page = response.content.decode()
    usage = 100 * UsageEvent.objects.filter(used=True).count() / Impression.objects.count()
    hit = (
        100 * Recommendation.objects.filter(usage_events__used=True).distinct().count() / Recommendation.objects.count()
    )
    assert f'data-testid="headline-usage_rate">{usage:.1f}%' in page
    assert f'data-testid="headline-hit_rate">{hit:.1f}%' in page
    assert page.count("<canvas data-chart=") == 12
    assert page.count('class="help"') == 12


def test_each_chart_downloads_as_csv(staff: Client, rolled_up: None) -> None:
    response = staff.get("/dashboard/?range=hour&csv=hit_rate")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["window", "Hit rate"]
    assert len(rows) - 1 in (12, 13)  # the hour's 5-minute windows, the current one included
    assert any(float(v) > 0 for _, v in rows[1:] if v)
    assert staff.get("/dashboard/?csv=nonsense").status_code == 404


def test_each_chart_s_table_holds_its_csv_rows(staff: Client, rolled_up: None) -> None:
    page = staff.get("/dashboard/?range=day").content.decode()
    values = []
    for key in ("hit_rate", "latency", "personalization_lift"):
        section = page[page.index(f'id="{key}"') :]
        body = section[section.index("<tbody>") + 7 : section.index("</tbody>")]
        rows = list(csv.reader(io.StringIO(staff.get(f"/dashboard/?range=day&csv={key}").content.decode())))[1:]
        expected = "".join("<tr>" + "".join(f"<td>{v or '–'}</td>" for v in row) + "</tr>" for row in rows)
        assert body == expected and len(rows) in (24, 25)
        values += [value for row in rows for value in row[1:] if value]
    assert values  # not only empty windows


@pytest.mark.parametrize("query", ["range=year", "key=abc"])
def test_a_bad_filter_is_a_400_that_says_why(staff: Client, db: Any, query: str) -> None:
    response = staff.get(f"/dashboard/?{query}")
    assert response.status_code == 400 and b"Bad filter" in response.content


def test_the_filters_narrow_the_numbers(staff: Client, rolled_up: None) -> None:
    page = staff.get("/dashboard/?range=day&key=999999").content.decode()
    assert 'data-testid="headline-usage_rate">–' in page


@pytest.mark.parametrize("url", PAGES)
def test_the_pages_are_for_staff_only(db: Any, url: str) -> None:
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    client = Client()
    client.force_login(User.objects.create_user("someone", password="pw"))
    refused = client.get(url)
    assert refused.status_code == 302 and "/admin/login/" in refused["Location"]


def test_the_admin_links_to_the_dashboard(staff: Client) -> None:
    page = staff.get("/admin/")
    assert page.status_code == 200 and b'href="/dashboard/">Dashboard</a>' in page.content


def test_a_nul_in_a_filter_is_a_400_not_a_database_error(staff: Client) -> None:
    # PostgreSQL refuses NUL in a string: before, the namespace filter reached the query
    response = staff.get("/dashboard/", {"namespace": "a\x00b"})
    assert response.status_code == 400 and b"NUL" in response.content
