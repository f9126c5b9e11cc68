from __future__ import annotations

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from catalog.models import Tool


@pytest.mark.django_db
def test_the_tools_api_needs_a_key() -> None:
    response = APIClient().get("/api/v1/tools")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_it_lists_and_filters_tools(api: APIClient, catalog: Callable[..., None]) -> None:
    catalog()
    body = api.get("/api/v1/tools", {"category": "mail"}).json()
    assert body["count"] == 2
    assert {t["name"] for t in body["results"]} == {"mail_send", "mail_search"}
    assert body["results"][0]["function"]["type"] == "function"


def test_it_creates_a_tool_and_refuses_a_duplicate(api: APIClient, db: None) -> None:
    payload = {
        "name": "pdf_to_text",
        "description": "Extract the text of a PDF.",
        "parameters": {"type": "object", "properties": {"url": {"type": "string"}}},
        "tags": ["PDF"],
    }
    response = api.post("/api/v1/tools", payload, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["tags"] == ["pdf"]
    again = api.post("/api/v1/tools", payload, format="json")
    assert again.status_code == 409
    assert Tool.objects.count() == 1


def test_it_rejects_an_invalid_schema_and_stores_nothing(api: APIClient, db: None) -> None:
    response = api.post(
        "/api/v1/tools", {"name": "x", "parameters": {"type": "object", "properties": 3}}, format="json"
    )
    assert response.status_code == 400
    assert "JSON schema" in response.json()["error"]["message"]
    assert Tool.objects.count() == 0


def test_a_nul_character_in_the_schema_is_a_400_not_a_server_error(api: APIClient, db: None) -> None:
    parameters = {"type": "object", "properties": {"q": {"type": "string", "description": "x\u0000"}}}
    response = api.post("/api/v1/tools", {"name": "x", "parameters": parameters}, format="json")
    assert response.status_code == 400
    assert "NUL" in response.json()["error"]["message"]
    assert Tool.objects.count() == 0


def test_it_updates_and_disables_a_tool(admin_api: APIClient, catalog: Callable[..., None]) -> None:
    catalog()
    tool = Tool.objects.get(name="mail_send")
    old_hash = tool.content_hash
    response = admin_api.patch(f"/api/v1/tools/{tool.pk}", {"description": "Send an email."}, format="json")
    assert response.status_code == 200
    tool.refresh_from_db()
    assert tool.description == "Send an email." and tool.content_hash != old_hash
    assert admin_api.delete(f"/api/v1/tools/{tool.pk}").json()["enabled"] is False
    assert admin_api.get("/api/v1/tools", {"enabled": "false"}).json()["count"] == 1


def test_a_bad_update_keeps_the_stored_tool(admin_api: APIClient, catalog: Callable[..., None]) -> None:
    catalog()
    tool = Tool.objects.get(name="mail_send")
    response = admin_api.patch(f"/api/v1/tools/{tool.pk}", {"parameters": {"type": "string"}}, format="json")
    assert response.status_code == 400
    tool.refresh_from_db()
    assert tool.parameters["type"] == "object"


def test_unknown_tool_is_404(api: APIClient, db: None) -> None:
    response = api.get("/api/v1/tools/999999")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
