"""Scopes (what a key may do) and per-key tool policies (which tools it may ever see)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from access.models import ApiKey
from access.services import api_key_create
from catalog.importers import parse_tools
from catalog.models import Tool
from catalog.services import tool_import
from feedback.models import UsageEvent
from tests.access.conftest import client_for
from tests.conftest import SMALL_CATALOG

RECOMMEND, FEEDBACK, TOOLS = "/api/v1/recommendations", "/api/v1/feedback", "/api/v1/tools"


def _ask(client: APIClient, text: str, **extra: Any) -> Any:
    return client.post(RECOMMEND, {"messages": [{"role": "user", "content": text}], **extra}, format="json")


def _key(scopes: list[str] | None = None, **policy: list[str]) -> tuple[ApiKey, APIClient]:
    api_key, raw = api_key_create(name="policy agent", scopes=scopes)
    if policy:
        for field, value in policy.items():
            setattr(api_key, field, value)
        api_key.save(update_fields=[*policy, "updated_at"])
    return api_key, client_for(raw)


@pytest.fixture
def two_namespaces(indexed: None) -> None:
    """The small catalog in "default", and again in "mirror" (shared both), indexed."""
    from recommender.indexing.snapshots import snapshot_build
    from recommender.serving.holders import snapshots

    text = "\n".join(json.dumps(t) for t in SMALL_CATALOG)
    tool_import(records=parse_tools(text, "jsonl"), namespace="mirror", schedule_rebuild=False)
    snapshot_build()
    snapshots.reset()


def test_a_recommend_only_key_cannot_write_the_catalog_or_report_use(indexed: None) -> None:
    _, client = _key(["recommend"])
    tool = Tool.objects.get(name="mail_send")
    before = Tool.objects.count()
    for response in (
        client.post(TOOLS, {"name": "new_tool"}, format="json"),
        client.patch(f"{TOOLS}/{tool.pk}", {"description": "x"}, format="json"),
        client.delete(f"{TOOLS}/{tool.pk}"),
    ):
        assert response.status_code == 403
        assert response.json()["error"] == {
            "code": "forbidden",
            "message": "This API key lacks the 'catalog:write' scope.",
        }
    assert Tool.objects.count() == before and Tool.objects.get(pk=tool.pk).enabled
    body = _ask(client, "send an email", k=2).json()
    used = client.post(
        FEEDBACK, {"recommendation_id": body["recommendation_id"], "tool": "mail_send", "used": True}, format="json"
    )
    assert used.status_code == 403 and UsageEvent.objects.count() == 0
    assert client.get(TOOLS).status_code == 200  # reading needs no scope


def test_a_feedback_only_key_cannot_ask_for_recommendations(indexed: None) -> None:
    _, client = _key(["feedback"])
    response = _ask(client, "send an email")
    assert response.status_code == 403 and "recommend" in response.json()["error"]["message"]


def test_unknown_scopes_are_refused(db: None) -> None:
    from toolrec_site.errors import ToolrecError

    with pytest.raises(ToolrecError, match="Unknown scope"):
        api_key_create(name="x", scopes=["recommend", "root"])


QUESTIONS = [
    "What's the weather in Paris tomorrow?",
    "send an email to Bob about the meeting",
    "convert 100 dollars to euros",
    "open an issue on our GitHub repo",
    "how do I get to the airport by train?",
    "translate this sentence into German",
    "what meetings do I have next week?",
    "run a SQL query on the analytics database",
]


def test_a_key_limited_to_one_namespace_never_sees_another(two_namespaces: None) -> None:
    _, client = _key(["recommend", "feedback"], allowed_namespaces=["mirror"])
    mirror = set(Tool.objects.filter(namespace="mirror").values_list("pk", flat=True))
    for text in QUESTIONS:
        for extra in ({}, {"namespace": "default"}, {"filters": {"include": ["default/mail_send"]}}):
            response = _ask(client, text, k=5, explain=True, **extra)
            assert response.status_code == 200
            ids = {tool["tool_id"] for tool in response.json()["tools"]}
            assert ids <= mirror, (text, extra)
    listed = client.get(TOOLS, {"limit": 500}).json()
    assert listed["count"] == len(mirror) and {t["namespace"] for t in listed["results"]} == {"mirror"}
    outside = Tool.objects.get(namespace="default", name="mail_send")
    assert client.get(f"{TOOLS}/{outside.pk}").status_code == 404


def test_a_denied_tool_never_appears_and_a_pinned_one_always_comes_first(two_namespaces: None) -> None:
    _, client = _key(
        ["recommend"],
        allowed_namespaces=["default"],
        denied_tools=["default/weather_get_forecast"],
        pinned_tools=["default/translate_text", "mirror/sql_query", "default/weather_get_forecast"],
    )
    for text in QUESTIONS:
        tools = _ask(client, text, k=3, explain=True).json()["tools"]
        names = [t["name"] for t in tools]
        assert len(tools) == 3 and names[0] == "translate_text", text  # pinned, counted in k
        assert "weather_get_forecast" not in names  # denied beats pinned
        assert "sql_query" not in names or tools[names.index("sql_query")]["rank"] > 1  # mirror/ is not allowed
        assert tools[0]["reason"].startswith("pinned")
        assert len(set(names)) == 3


def test_policy_edits_reach_the_request_path(two_namespaces: None, settings: Any) -> None:
    settings.API_KEY_CACHE_SECONDS = 0
    api_key, client = _key(["recommend"])
    assert "weather_get_forecast" in [t["name"] for t in _ask(client, "weather in Paris tomorrow?").json()["tools"]]
    api_key.denied_tools = ["default/weather_get_forecast", "mirror/weather_get_forecast"]
    api_key.save(update_fields=["denied_tools", "updated_at"])
    assert "weather_get_forecast" not in [t["name"] for t in _ask(client, "weather in Paris tomorrow?").json()["tools"]]


def test_the_admin_edits_a_keys_scopes_and_policy(admin_client: Any, db: None, catalog: Callable[..., None]) -> None:
    api_key, _ = _key(["recommend"])
    response = admin_client.post(
        f"/admin/access/apikey/{api_key.pk}/change/",
        {
            "tenant": api_key.tenant_id,
            "name": "edited",
            "is_active": "on",
            "scopes": ["recommend", "catalog:write"],
            "allowed_namespaces": "default\nmirror\n",
            "allowed_tools": "",
            "denied_tools": "default/mail_send",
            "pinned_tools": "default/sql_query",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    api_key.refresh_from_db()
    assert api_key.scopes == ["recommend", "catalog:write"]
    assert api_key.allowed_namespaces == ["default", "mirror"] and api_key.denied_tools == ["default/mail_send"]
    bad = admin_client.post(
        f"/admin/access/apikey/{api_key.pk}/change/",
        {"tenant": api_key.tenant_id, "name": "x", "scopes": ["recommend"], "denied_tools": "mail_send"},
    )
    assert bad.status_code == 200 and b"namespace/name" in bad.content
