from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from feedback.models import Impression, Recommendation
from recommender.learning.learner import learning_batch
from recommender.learning.models import ToolStats

URL = "/api/v1/recommendations"


def _ask(api: APIClient, text: str, **extra: Any) -> Any:
    return api.post(URL, {"messages": [{"role": "user", "content": text}], **extra}, format="json")


def test_weather_question_gets_weather_tools_first(api: APIClient, indexed: None) -> None:
    response = _ask(api, "What's the weather in Paris tomorrow?", k=3, explain=True)
    assert response.status_code == 200, response.json()
    body = response.json()
    names = [t["name"] for t in body["tools"]]
    assert names[0] == "weather_get_forecast"
    assert "weather_get_current" in names
    assert body["tools"][0]["function"]["function"]["name"] == "weather_get_forecast"
    assert "semantic similarity" in body["tools"][0]["reason"]
    assert body["variant"] == "default" and body["policy"] == settings.RECOMMEND_POLICY["name"]


def test_every_answer_is_logged_as_an_impression(api: APIClient, indexed: None) -> None:
    body = _ask(api, "send an email to my boss", k=4, user_id="u1", conversation_id="c1").json()
    recommendation = Recommendation.objects.get(pk=body["recommendation_id"])
    impressions = list(Impression.objects.filter(recommendation=recommendation).order_by("rank"))
    assert [i.rank for i in impressions] == [1, 2, 3, 4]
    assert [i.tool_id for i in impressions] == [t["tool_id"] for t in body["tools"]]
    assert recommendation.user_id == "u1" and recommendation.k == 4
    learning_batch(delay_seconds=0)
    assert ToolStats.objects.get(tool_id=impressions[0].tool_id).times_recommended == 1


def test_a_recommendation_costs_a_bounded_number_of_queries(
    api: APIClient, indexed: None, django_assert_max_num_queries: Any
) -> None:
    _ask(api, "warm up the snapshot and the embedder")
    messages = [
        {"role": "user", "content": "convert 100 dollars to euros"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "currency_convert", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "1", "content": "92.1 EUR"},
        {"role": "user", "content": "and what's the Apple stock price?"},
    ]
    with django_assert_max_num_queries(12):
        response = api.post(URL, {"messages": messages, "conversation_id": "c9", "user_id": "u"}, format="json")
    assert response.status_code == 200


def test_filters_restrict_the_tools(api: APIClient, indexed: None) -> None:
    body = _ask(api, "What's the weather in Paris tomorrow?", k=5, category="mail").json()
    assert [t["name"] for t in body["tools"]] and all(t["name"].startswith("mail_") for t in body["tools"])
    body = _ask(api, "weather in Paris", k=3, filters={"exclude": ["weather_get_forecast"]}).json()
    assert "weather_get_forecast" not in [t["name"] for t in body["tools"]]
    body = _ask(api, "weather in Paris", k=3, filters={"tags": ["meetings"]}).json()
    assert {t["name"] for t in body["tools"]} == {"calendar_create_event", "calendar_list_events"}
    body = _ask(api, "weather in Paris", k=3, namespace="nowhere").json()
    assert body["tools"] == []


@pytest.mark.django_db
def test_it_needs_a_valid_key() -> None:
    anonymous = APIClient()
    assert _ask(anonymous, "hi").status_code == 401
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer trk_wrong")
    response = _ask(anonymous, "hi")
    assert response.status_code == 401
    assert "Invalid" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "role"),
        ({"messages": [{"role": "user", "content": 5}]}, "content"),
        ({"messages": [{"role": "user", "content": "x"}], "k": 51}, "k"),
        ({"messages": [{"role": "user", "content": "x"}], "k": "many"}, "k"),
        ({"messages": [{"role": "user", "content": "x"}], "filters": {"tags": "x"}}, "tags"),
    ],
)
def test_bad_requests_get_a_clear_400(api: APIClient, indexed: None, payload: dict[str, Any], fragment: str) -> None:
    response = api.post(URL, payload, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and fragment in error["message"]
    assert Recommendation.objects.count() == 0


def test_malformed_json_is_a_400(api: APIClient, indexed: None) -> None:
    response = api.post(URL, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2048)
def test_an_oversized_payload_is_a_413(api: APIClient, indexed: None) -> None:
    response = _ask(api, "x" * 5000)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_messages_without_text_are_a_400(api: APIClient, indexed: None) -> None:
    response = api.post(URL, {"messages": [{"role": "user", "content": None}]}, format="json")
    assert response.status_code == 400
    assert "no text" in response.json()["error"]["message"]


def test_without_an_index_the_answer_is_503(api: APIClient) -> None:
    response = _ask(api, "anything")
    assert response.status_code == 503
    assert "rebuild_index" in response.json()["error"]["message"]


def test_a_revoked_key_is_refused(api: APIClient, indexed: None) -> None:
    from access.models import ApiKey
    from access.services import api_key_revoke

    assert _ask(api, "weather in Paris").status_code == 200
    api_key_revoke(api_key=ApiKey.objects.get())
    assert _ask(api, "weather in Paris").status_code == 401


def test_the_context_vector_is_the_mean_of_the_recent_turns(indexed: None) -> None:
    import numpy as np

    from recommender.engine.conversation import read_conversation
    from recommender.indexing.embedders import embed_cached
    from recommender.serving.candidates import embed_queries

    messages = [
        {"role": "user", "content": "I am planning a trip to Lisbon next month"},
        {"role": "assistant", "content": "Nice! How can I help?"},
        {"role": "user", "content": "what will the weather be like?"},
    ]
    context = read_conversation(messages)
    vectors = embed_queries(context, messages)
    assert vectors.shape[0] == len(context.queries())
    turns = embed_cached([messages[2]["content"], messages[0]["content"]])
    expected = turns.mean(axis=0) / np.linalg.norm(turns.mean(axis=0))
    assert np.allclose(vectors[-1], expected, atol=1e-5)
    assert np.allclose(vectors[0], turns[0], atol=1e-6)


def test_nul_characters_in_messages_are_dropped_not_a_server_error(api: APIClient, indexed: None) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "send\u0000_email", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "send an\u0000 email to Bob"},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "binary\u0000output"},
        {"role": "user", "content": [{"type": "text", "text": "and the weather\u0000 in Paris"}]},
    ]
    response = api.post(URL, {"messages": messages, "conversation_id": "c1", "user_id": "u1"}, format="json")
    assert response.status_code == 200, response.json()
    stored = Recommendation.objects.get(pk=response.json()["recommendation_id"])
    assert "\u0000" not in stored.query_text and stored.query_text.endswith("weather in Paris")
