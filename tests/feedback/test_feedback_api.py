from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from catalog.models import Tool
from feedback.models import UsageEvent
from recommender.learning.learner import learning_batch
from recommender.learning.models import ToolStats

REC = "/api/v1/recommendations"
FEEDBACK = "/api/v1/feedback"


def _recommend(api: APIClient, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    response = api.post(REC, {"messages": messages, **extra}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def test_feedback_is_recorded_and_counted_by_the_learner(api: APIClient, indexed: None) -> None:
    body = _recommend(api, [_user("send an email to Bob")], k=3)
    used = body["tools"][0]["name"]
    response = api.post(
        FEEDBACK,
        {
            "recommendation_id": body["recommendation_id"],
            "events": [
                {"tool": used, "used": True, "event_id": "e-1"},
                {"tool": body["tools"][1]["name"], "used": False},
            ],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json() == {"recorded": 2, "duplicates": 0}
    assert ToolStats.objects.get(tool__name=used).times_used == 0  # logged, not learned yet
    learning_batch(delay_seconds=0)
    stats = ToolStats.objects.get(tool__name=used)
    assert stats.times_used == 1 and stats.last_used_at is not None and stats.times_recommended == 1


def test_a_retried_event_counts_once(api: APIClient, indexed: None) -> None:
    body = _recommend(api, [_user("send an email to Bob")], k=3)
    payload = {
        "recommendation_id": body["recommendation_id"],
        "tool": body["tools"][0]["name"],
        "used": True,
        "event_id": "retry-me",
    }
    assert api.post(FEEDBACK, payload, format="json").json() == {"recorded": 1, "duplicates": 0}
    assert api.post(FEEDBACK, payload, format="json").json() == {"recorded": 0, "duplicates": 1}
    # The same use reported under another event id is still one use.
    payload["event_id"] = "another-id"
    assert api.post(FEEDBACK, payload, format="json").json() == {"recorded": 0, "duplicates": 1}
    learning_batch(delay_seconds=0)
    assert ToolStats.objects.get(tool__name=body["tools"][0]["name"]).times_used == 1
    assert UsageEvent.objects.count() == 1


def test_repeats_within_one_call_count_once(api: APIClient, indexed: None) -> None:
    body = _recommend(api, [_user("send an email to Bob")], k=3)
    first, second = body["tools"][0]["name"], body["tools"][1]["name"]
    events = [
        {"tool": first, "used": True, "event_id": "same"},
        {"tool": first, "used": True, "event_id": "same"},  # a client that sent one event twice
        {"tool": first, "used": True, "event_id": "other"},  # the same use under another id
        {"tool": second, "used": False, "event_id": "miss"},
    ]
    response = api.post(FEEDBACK, {"recommendation_id": body["recommendation_id"], "events": events}, format="json")
    assert response.json() == {"recorded": 2, "duplicates": 2}
    assert sorted(UsageEvent.objects.values_list("event_id", "used")) == [("miss", False), ("same", True)]
    learning_batch(delay_seconds=0)
    assert ToolStats.objects.get(tool__name=first).times_used == 1


def test_unknown_recommendation_is_404_and_unknown_tool_400(api: APIClient, indexed: None) -> None:
    response = api.post(
        FEEDBACK,
        {"recommendation_id": "00000000-0000-0000-0000-000000000000", "tool": "mail_send", "used": True},
        format="json",
    )
    assert response.status_code == 404
    assert "Unknown recommendation" in response.json()["error"]["message"]
    body = _recommend(api, [_user("send an email to Bob")], k=2)
    response = api.post(
        FEEDBACK,
        {
            "recommendation_id": body["recommendation_id"],
            "events": [{"tool": body["tools"][0]["name"], "used": True}, {"tool": "no_such_tool", "used": True}],
        },
        format="json",
    )
    assert response.status_code == 400
    assert "no_such_tool" in response.json()["error"]["message"]
    assert UsageEvent.objects.count() == 0  # nothing of a rejected request is stored


def test_feedback_validation_errors(api: APIClient, indexed: None) -> None:
    cases = [
        {},
        {"recommendation_id": "not-a-uuid", "tool": "x", "used": True},
        {"recommendation_id": "00000000-0000-0000-0000-000000000000"},
        {"recommendation_id": "00000000-0000-0000-0000-000000000000", "tool": "x", "used": "perhaps"},
        {"recommendation_id": "00000000-0000-0000-0000-000000000000", "events": []},
    ]
    for payload in cases:
        response = api.post(FEEDBACK, payload, format="json")
        assert response.status_code == 400, payload
        assert response.json()["error"]["message"]


def test_a_key_cannot_give_feedback_on_another_keys_recommendation(api: APIClient, indexed: None) -> None:
    from access.services import api_key_create

    body = _recommend(api, [_user("send an email to Bob")], k=2)
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='other')[1]}")
    response = other.post(
        FEEDBACK,
        {"recommendation_id": body["recommendation_id"], "tool": body["tools"][0]["name"], "used": True},
        format="json",
    )
    assert response.status_code == 404


def test_tool_calls_in_the_next_request_count_as_use_once(api: APIClient, indexed: None) -> None:
    first = _recommend(api, [_user("convert 100 dollars to euros")], k=3, conversation_id="conv-1")
    assert "currency_convert" in [t["name"] for t in first["tools"]]
    follow_up = [
        _user("convert 100 dollars to euros"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "currency_convert", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "92 EUR"},
        _user("thanks, now email that to Ann"),
    ]
    _recommend(api, follow_up, k=3, conversation_id="conv-1")
    event = UsageEvent.objects.get()
    assert event.source == "implicit" and event.used and str(event.recommendation_id) == first["recommendation_id"]
    # The agent also reports the same use explicitly: still one use.
    response = api.post(
        FEEDBACK,
        {"recommendation_id": first["recommendation_id"], "tool": "currency_convert", "used": True},
        format="json",
    )
    assert response.json() == {"recorded": 0, "duplicates": 1}
    learning_batch(delay_seconds=0)
    assert ToolStats.objects.get(tool=Tool.objects.get(name="currency_convert")).times_used == 1
