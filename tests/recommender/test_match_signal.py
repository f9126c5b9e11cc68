from __future__ import annotations

from typing import Any

from django.test import override_settings
from rest_framework.test import APIClient

from recommender.learning.learner import learning_batch
from recommender.learning.models import LearningState

URL = "/api/v1/recommendations"


def _ask(api: APIClient, text: str, **extra: Any) -> Any:
    response = api.post(URL, {"messages": [{"role": "user", "content": text}], "k": 3, **extra}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def test_before_any_feedback_the_match_is_the_retrieval_prior(api: APIClient, indexed: None) -> None:
    weather = _ask(api, "What's the weather in Paris tomorrow?")["match"]
    nonsense = _ask(api, "qwzx vbnm plorf kjhg")["match"]
    assert weather["basis"] == nonsense["basis"] == "retrieval"
    assert nonsense["label"] == "none"
    assert weather["probability"] > nonsense["probability"] + 0.3


def test_an_answer_with_no_tools_has_no_match(api: APIClient, indexed: None) -> None:
    assert _ask(api, "weather in Paris", namespace="nowhere")["match"] == {
        "label": "none",
        "probability": 0.0,
        "basis": "retrieval",
    }


@override_settings(MATCH_MIN_SAMPLES=40, MATCH_REFIT_EVERY=10)
def test_the_learner_fits_the_match_on_feedback_and_answers_use_it(api: APIClient, indexed: None) -> None:
    # The agent uses the top tool of every weather question and never the one of mail questions.
    for i in range(30):
        body = _ask(api, f"weather forecast for city number {i}")
        top = body["tools"][0]["name"]
        feedback = {"recommendation_id": body["recommendation_id"], "tool": top, "used": True}
        assert api.post("/api/v1/feedback", feedback, format="json").status_code == 201
        _ask(api, f"search my inbox for the email from sender {i}")
    learning_batch(delay_seconds=0)
    state = LearningState.objects.order_by("-pk").first()
    assert state.match_model is not None and state.match_model["samples"] == 60
    assert state.match_model["positives"] == 30
    weather = _ask(api, "weather forecast for Lyon")["match"]
    mail = _ask(api, "search my inbox for the email from my bank")["match"]
    assert weather["basis"] == mail["basis"] == "feedback"
    assert weather["probability"] > 0.7 and mail["probability"] < weather["probability"] - 0.4
    assert weather["label"] == "good" and mail["label"] != "good"
