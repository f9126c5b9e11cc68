from __future__ import annotations

import json
from typing import Any

from rest_framework.test import APIClient

from feedback.models import Impression
from recommender.serving.token_budget import definition_tokens, fit_in_budget, text_tokens

URL = "/api/v1/recommendations"
WEATHER = [{"role": "user", "content": "What's the weather in Paris tomorrow?"}]


def _ask(api: APIClient, **extra: Any) -> Any:
    return api.post(URL, {"messages": WEATHER, "k": 3, **extra}, format="json")


def test_openai_stays_the_default_shape(api: APIClient, indexed: None) -> None:
    body = _ask(api).json()
    assert body["format"] == "openai"
    top = body["tools"][0]
    assert top["definition"] == top["function"]
    assert top["definition"]["type"] == "function" and top["definition"]["function"]["name"] == top["name"]
    assert "tool_choice" not in body and "tool_references" not in body


def test_responses_format_carries_flat_functions_and_an_allowed_tools_choice(api: APIClient, indexed: None) -> None:
    body = _ask(api, format="openai_responses").json()
    names = [t["name"] for t in body["tools"]]
    first = body["tools"][0]["definition"]
    assert first["type"] == "function" and first["name"] == names[0] and first["strict"] is False
    assert first["parameters"]["properties"]["city"]["type"] == "string"
    assert "function" not in first
    assert body["tool_choice"] == {
        "type": "allowed_tools",
        "mode": "auto",
        "tools": [{"type": "function", "name": n} for n in names],
    }


def test_anthropic_format_has_input_schema_and_tool_references(api: APIClient, indexed: None) -> None:
    body = _ask(api, format="anthropic").json()
    first = body["tools"][0]["definition"]
    assert set(first) == {"name", "description", "input_schema"}
    assert first["input_schema"]["required"] == ["city"]
    assert body["tool_references"] == [{"type": "tool_reference", "tool_name": t["name"]} for t in body["tools"]]
    deferred = _ask(api, format="anthropic", defer_loading=True).json()
    assert all(t["definition"]["defer_loading"] is True for t in deferred["tools"])


def test_mcp_format_has_input_schema_in_camel_case(api: APIClient, indexed: None) -> None:
    body = _ask(api, format="mcp").json()
    first = body["tools"][0]["definition"]
    assert set(first) == {"name", "description", "inputSchema"}
    assert first["name"] == "weather_get_forecast"
    assert "defer_loading" not in _ask(api, format="mcp", defer_loading=True).json()["tools"][0]["definition"]


def test_an_unknown_format_is_a_clear_400(api: APIClient, indexed: None) -> None:
    response = _ask(api, format="gemini")
    assert response.status_code == 400
    assert "format" in response.json()["error"]["message"]
    assert _ask(api, max_tool_tokens=0).status_code == 400


def test_the_token_budget_holds_in_every_format_and_only_kept_tools_are_logged(api: APIClient, indexed: None) -> None:
    for output_format in ("openai", "openai_responses", "anthropic", "mcp"):
        full = _ask(api, k=8, format=output_format).json()
        costs = [definition_tokens(t["definition"]) for t in full["tools"]]
        assert full["tool_tokens"] == sum(costs)
        budget = costs[0] + costs[1] + 1  # room for the first two, not the third
        assert costs[2] > 1
        body = _ask(api, k=8, format=output_format, max_tool_tokens=budget).json()
        spent = sum(definition_tokens(t["definition"]) for t in body["tools"])
        assert spent == body["tool_tokens"] <= budget
        assert [t["name"] for t in body["tools"]][:2] == [t["name"] for t in full["tools"]][:2]
        assert [t["rank"] for t in body["tools"]] == list(range(1, len(body["tools"]) + 1))
        logged = Impression.objects.filter(recommendation_id=body["recommendation_id"]).order_by("rank")
        assert [i.tool_id for i in logged] == [t["tool_id"] for t in body["tools"]]


def test_a_budget_smaller_than_any_tool_answers_no_tools(api: APIClient, indexed: None) -> None:
    body = _ask(api, max_tool_tokens=5).json()
    assert body["tools"] == [] and body["tool_tokens"] == 0


def test_budget_fitting_skips_a_tool_too_big_and_keeps_smaller_later_ones() -> None:
    assert fit_in_budget([100, 900, 50, 60], 200) == [0, 2]
    assert fit_in_budget([300, 10], 200) == [1]
    assert fit_in_budget([1, 2, 3], None) == [0, 1, 2]


def test_token_counts_are_o200k_counts_of_the_compact_json() -> None:
    entry = {"name": "x", "description": "Get the weather", "inputSchema": {"type": "object"}}
    assert definition_tokens(entry) == text_tokens(json.dumps(entry, separators=(",", ":")))
    assert text_tokens("hello world") == 2  # o200k_base: "hello", " world"


def test_a_pinned_tool_stays_in_the_answer_and_its_cost_comes_off_the_budget_first(indexed: None) -> None:
    from access.services import api_key_create
    from tests.access.conftest import client_for

    api_key, raw = api_key_create(name="pinned agent")
    api_key.pinned_tools = ["default/translate_text"]
    api_key.save(update_fields=["pinned_tools", "updated_at"])
    client = client_for(raw)
    full = _ask(client, k=4, format="anthropic").json()
    assert full["tools"][0]["name"] == "translate_text"
    costs = [definition_tokens(t["definition"]) for t in full["tools"]]
    budget = costs[0] + costs[1] + costs[2] - 1  # the pinned tool and one more fit, not two more
    body = _ask(client, k=4, format="anthropic", max_tool_tokens=budget).json()
    names = [t["name"] for t in body["tools"]]
    assert names[0] == "translate_text" and body["tool_tokens"] <= budget
    assert names[1] == full["tools"][1]["name"] and len(names) < 4
    tiny = _ask(client, k=4, format="anthropic", max_tool_tokens=1).json()
    assert [t["name"] for t in tiny["tools"]] == ["translate_text"]  # pinned: in every answer, whatever the budget
