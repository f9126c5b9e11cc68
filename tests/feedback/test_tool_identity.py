"""A tool's function name picks out exactly one tool, in answers and in feedback, and
feedback events are one key's own (issue 11, identity of tools and events)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.db.models.functions import Concat
from rest_framework.test import APIClient

from access.services import api_key_create
from catalog.importers import parse_tools
from catalog.models import Tool
from catalog.services import tool_import
from feedback.models import UsageEvent
from tests.conftest import SMALL_CATALOG

REC = "/api/v1/recommendations"
FEEDBACK = "/api/v1/feedback"
PROVIDER_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # OpenAI and Anthropic alike


def _build() -> None:
    from recommender.indexing.snapshots import snapshot_build
    from recommender.serving.holders import snapshots

    snapshot_build()
    snapshots.reset()


def _recommend(api: APIClient, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    response = api.post(REC, {"messages": messages, **extra}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _call(name: str, call_id: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "done"},
    ]


def _import(tools: list[dict[str, Any]], namespace: str = "default") -> None:
    import json

    tool_import(
        records=parse_tools("\n".join(json.dumps(t) for t in tools), "jsonl"),
        namespace=namespace,
        schedule_rebuild=False,
    )


def _feedback(api: APIClient, recommendation_id: str, tool: str, **extra: Any) -> Any:
    return api.post(
        FEEDBACK, {"recommendation_id": recommendation_id, "tool": tool, "used": True, **extra}, format="json"
    )


def test_one_name_in_two_namespaces_is_two_functions_and_feedback_credits_each(
    api: APIClient, catalog: Callable[..., None]
) -> None:
    catalog()
    catalog(namespace="team/b")  # a "/" in the namespace, too
    _build()
    body = _recommend(api, [_user("convert 100 dollars to euros")], k=len(SMALL_CATALOG) * 2)
    names = [t["name"] for t in body["tools"]]
    assert names == [t["function"]["function"]["name"] for t in body["tools"]]
    assert len(names) == len(set(names)) == len(SMALL_CATALOG) * 2
    assert all(PROVIDER_NAME.match(n) for n in names)
    converters = {t["key"]: t["name"] for t in body["tools"] if t["key"].endswith("/currency_convert")}
    assert set(converters) == {"default/currency_convert", "team/b/currency_convert"}
    for name in converters.values():
        assert _feedback(api, body["recommendation_id"], name).json() == {"recorded": 1, "duplicates": 0}
    credited = set(UsageEvent.objects.filter(used=True).values_list("tool__namespace", "tool__name"))
    assert credited == {("default", "currency_convert"), ("team/b", "currency_convert")}
    # The key as the API gives it picks one tool, even with "/" in the namespace.
    response = _feedback(api, body["recommendation_id"], "team/b/currency_convert", event_id="key")
    assert response.json() == {"recorded": 0, "duplicates": 1}


def test_a_plain_name_two_shown_tools_share_is_refused_not_guessed(
    api: APIClient, catalog: Callable[..., None]
) -> None:
    catalog(namespace="a")
    catalog(namespace="b")
    Tool.objects.filter(name="currency_convert").update(function_name=Concat("namespace", "name"))
    _build()
    body = _recommend(api, [_user("convert 100 dollars to euros")], k=len(SMALL_CATALOG) * 2)
    response = _feedback(api, body["recommendation_id"], "currency_convert")
    assert response.status_code == 400 and "function name" in response.json()["error"]["message"]
    assert set(response.json()["error"]["details"]["recommended"]) >= {"acurrency_convert", "bcurrency_convert"}
    assert UsageEvent.objects.count() == 0


def test_names_cut_to_64_characters_stay_distinct_and_valid(api: APIClient, catalog: Callable[..., None]) -> None:
    stem = "Temu_Product_Search_" + "x" * 50  # longer than 64: two endpoints differ only past it
    catalog(
        extra=[
            {"name": f"{stem}_by_keyword", "description": "Search Temu products by keyword for shopping."},
            {"name": f"{stem}_by_category", "description": "Search Temu products in a category for shopping."},
        ]
    )
    _build()
    body = _recommend(api, [_user("search Temu products for shopping")], k=len(SMALL_CATALOG) + 2)
    by_name = {t["key"].split("/", 1)[1]: t["name"] for t in body["tools"]}
    long_ones = [by_name[f"{stem}_by_keyword"], by_name[f"{stem}_by_category"]]
    assert long_ones[0] != long_ones[1] and all(PROVIDER_NAME.match(f) for f in long_ones)
    for function_name, name in zip(long_ones, [f"{stem}_by_keyword", f"{stem}_by_category"]):
        _feedback(api, body["recommendation_id"], function_name)
        assert UsageEvent.objects.filter(tool__name=name, used=True).count() == 1


def test_a_function_name_never_changes_when_a_colliding_tool_arrives(catalog: Callable[..., None]) -> None:
    catalog()
    before = dict(Tool.objects.values_list("pk", "function_name"))
    catalog(namespace="other")
    assert dict(Tool.objects.filter(pk__in=before).values_list("pk", "function_name")) == before
    assert Tool.objects.values("function_name").distinct().count() == Tool.objects.count()


def test_a_name_with_a_leading_space_is_reported_as_returned(api: APIClient, catalog: Callable[..., None]) -> None:
    catalog()
    _import([{"name": " spaced weather", "description": "Weather forecast for a city, tomorrow and today."}], "x/y")
    _build()
    body = _recommend(api, [_user("weather forecast for Paris tomorrow")], k=len(SMALL_CATALOG) + 1)
    spaced = next(t for t in body["tools"] if t["key"] == "x/y/ spaced weather")
    assert PROVIDER_NAME.match(spaced["name"])
    for reported in (spaced["name"], spaced["key"], " spaced weather"):
        response = _feedback(api, body["recommendation_id"], reported)
        assert response.status_code == 201, response.json()
    assert UsageEvent.objects.get().tool.name == " spaced weather"


def test_implicit_feedback_counts_only_calls_made_after_the_recommendation(api: APIClient, indexed: None) -> None:
    history = [_user("convert 100 dollars to euros"), *_call("currency_convert", "c0")]
    # The call was made before this recommendation: it is not this answer's use.
    first = _recommend(api, [*history, _user("and in yen?")], k=5, conversation_id="conv")
    assert "currency_convert" in [t["name"] for t in first["tools"]]
    _recommend(api, [*history, _user("and in yen?"), _user("thanks")], k=5, conversation_id="conv")
    assert UsageEvent.objects.count() == 0


def test_a_retried_turn_counts_its_calls_once(api: APIClient, indexed: None) -> None:
    first = _recommend(api, [_user("convert 100 dollars to euros")], k=5, conversation_id="conv")
    follow_up = [_user("convert 100 dollars to euros"), *_call("currency_convert", "c1"), _user("and to yen?")]
    second = _recommend(api, follow_up, k=5, conversation_id="conv")
    assert "currency_convert" in [t["name"] for t in second["tools"]]
    _recommend(api, follow_up, k=5, conversation_id="conv")  # the client retried the turn
    events = list(UsageEvent.objects.values_list("recommendation_id", "tool__name"))
    assert [(str(r), n) for r, n in events] == [(first["recommendation_id"], "currency_convert")]


def test_event_ids_are_one_keys_own(api: APIClient, indexed: None) -> None:
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='other')[1]}")
    mine = _recommend(api, [_user("send an email to Bob")], k=2)
    theirs = _recommend(other, [_user("send an email to Bob")], k=2)
    assert _feedback(api, mine["recommendation_id"], mine["tools"][0]["name"], event_id="call-1").json() == {
        "recorded": 1,
        "duplicates": 0,
    }
    response = _feedback(other, theirs["recommendation_id"], theirs["tools"][0]["name"], event_id="call-1")
    assert response.json() == {"recorded": 1, "duplicates": 0}
    assert UsageEvent.objects.filter(event_id="call-1").count() == 2
