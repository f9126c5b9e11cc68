from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from access.services import api_key_create
from catalog.importers import parse_tools
from catalog.services import tool_import

DATASETS = Path(settings.BASE_DIR).parent / "shared" / "datasets"

# A small catalog: enough distinct domains for ranking to be checkable by hand.
SMALL_CATALOG = [
    {
        "id": "weather_get_forecast",
        "name": "weather_get_forecast",
        "category": "weather",
        "toolkit": "openweather",
        "description": "Get the weather forecast for the coming days for a city: temperature, rain and wind per day.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "days": {"type": "integer", "description": "Days ahead"},
            },
            "required": ["city"],
        },
    },
    {
        "id": "weather_get_current",
        "name": "weather_get_current",
        "category": "weather",
        "toolkit": "openweather",
        "description": "Get the weather right now at a location: temperature, humidity and conditions.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}}},
    },
    {
        "id": "mail_send",
        "name": "mail_send",
        "category": "mail",
        "toolkit": "gmail",
        "tags": ["email"],
        "description": "Send an email message to one or more recipients with a subject and body.",
        "parameters": {
            "type": "object",
            "properties": {
                "to": {"type": "array", "items": {"type": "string"}},
                "subject": {"type": "string"},
                "body": {"type": "string"},
            },
            "required": ["to"],
        },
    },
    {
        "id": "mail_search",
        "name": "mail_search",
        "category": "mail",
        "toolkit": "gmail",
        "tags": ["email"],
        "description": "Search the inbox for emails matching a query, sender or date range.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
    },
    {
        "id": "calendar_create_event",
        "name": "calendar_create_event",
        "category": "calendar",
        "tags": ["meetings"],
        "description": "Create a calendar event or meeting with a title, start time, duration and attendees.",
        "parameters": {"type": "object", "properties": {"title": {"type": "string"}, "start": {"type": "string"}}},
    },
    {
        "id": "calendar_list_events",
        "name": "calendar_list_events",
        "category": "calendar",
        "tags": ["meetings"],
        "description": "List the calendar events between two dates.",
        "parameters": {"type": "object", "properties": {"from": {"type": "string"}, "to": {"type": "string"}}},
    },
    {
        "id": "stock_quote",
        "name": "stock_quote",
        "category": "finance",
        "description": "Get the latest stock price and daily change for a ticker symbol.",
        "parameters": {"type": "object", "properties": {"symbol": {"type": "string"}}, "required": ["symbol"]},
    },
    {
        "id": "currency_convert",
        "name": "currency_convert",
        "category": "finance",
        "description": "Convert an amount of money from one currency to another at today's exchange rate.",
        "parameters": {
            "type": "object",
            "properties": {"amount": {"type": "number"}, "from": {"type": "string"}, "to": {"type": "string"}},
        },
    },
    {
        "id": "github_create_issue",
        "name": "github_create_issue",
        "category": "source control",
        "toolkit": "github",
        "description": "Open a new issue in a GitHub repository with a title and description.",
        "parameters": {"type": "object", "properties": {"repo": {"type": "string"}, "title": {"type": "string"}}},
    },
    {
        "id": "sql_query",
        "name": "sql_query",
        "category": "databases",
        "description": "Run a read-only SQL query against the analytics database and return the rows.",
        "parameters": {"type": "object", "properties": {"sql": {"type": "string"}}, "required": ["sql"]},
    },
    {
        "id": "maps_directions",
        "name": "maps_directions",
        "category": "maps",
        "description": "Get driving, walking or transit directions between two places.",
        "parameters": {
            "type": "object",
            "properties": {"origin": {"type": "string"}, "destination": {"type": "string"}},
        },
    },
    {
        "id": "translate_text",
        "name": "translate_text",
        "category": "translation",
        "description": "Translate text from one language into another.",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}, "target": {"type": "string"}}},
    },
]


def small_catalog_jsonl(extra: list[dict[str, Any]] | None = None) -> str:
    return "\n".join(json.dumps(t) for t in [*SMALL_CATALOG, *(extra or [])])


@pytest.fixture
def raw_api_key(db: Any) -> str:
    return api_key_create(name="test agent", scopes=["recommend", "feedback", "catalog:write"])[1]


@pytest.fixture
def api(raw_api_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_api_key}")
    return client


@pytest.fixture
def admin_api(db: Any) -> APIClient:
    """A key with the admin scope: it may also write the shared tools (those `catalog` imports)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='admin agent', scopes=['admin'])[1]}")
    return client


@pytest.fixture
def catalog(db: Any) -> Callable[..., None]:
    """Import the small catalog (plus extra tools) without building an index."""

    def load(extra: list[dict[str, Any]] | None = None, namespace: str = "default") -> None:
        tool_import(
            records=parse_tools(small_catalog_jsonl(extra), "jsonl"), namespace=namespace, schedule_rebuild=False
        )

    return load


@pytest.fixture
def indexed(catalog: Callable[..., None]) -> None:
    """The small catalog imported, a snapshot built and active, and the counts of its tools
    published (what the rebuild task does)."""
    from recommender.indexing.snapshots import snapshot_build
    from recommender.learning.learner import learning_publish_stats
    from recommender.serving.holders import snapshots

    catalog()
    snapshot_build()
    learning_publish_stats()
    snapshots.reset()


@pytest.fixture(autouse=True)
def _fresh_process_state() -> None:
    from access.selectors import forget_cached_keys
    from experiments.selectors import reset_cache
    from recommender.serving.holders import isolated, learned, ranking, snapshots
    from recommender.serving.visibility import visibility_cache_clear
    from toolrec_site.scheduling import forget_shadow_asks

    visibility_cache_clear()
    forget_shadow_asks()

    snapshots.reset()
    learned.reset()
    ranking.reset()
    isolated.reset()
    reset_cache()
    forget_cached_keys()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"
