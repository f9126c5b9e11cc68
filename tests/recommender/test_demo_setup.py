from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from catalog.models import Tool


@pytest.mark.django_db
def test_demo_setup_gives_a_working_key_and_the_readme_example_works() -> None:
    out = StringIO()
    call_command("demo_setup", stdout=out)
    assert Tool.objects.count() >= 150
    key = re.search(r"API key:\s+(trk_\S+)", out.getvalue()).group(1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    body = client.post(
        "/api/v1/recommendations",
        {"messages": [{"role": "user", "content": "what's the weather in Paris tomorrow?"}], "k": 3},
        format="json",
    ).json()
    assert all(t["name"].startswith("weather_") for t in body["tools"])
    assert "weather_get_forecast" in [t["name"] for t in body["tools"]]
    call_command("demo_setup", stdout=StringIO())  # a second run changes nothing in the catalog
    assert Tool.objects.count() == len({t.name for t in Tool.objects.all()})
