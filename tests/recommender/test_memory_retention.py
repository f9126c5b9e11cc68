"""The memory of past contexts keeps only the newest MEMORY_MAX_CONTEXTS rows."""

from __future__ import annotations

from typing import Any

from django.test import override_settings
from rest_framework.test import APIClient

from recommender.learning.learner import learning_batch
from recommender.learning.models import MemoryEntry


def _recommend_and_use(api: APIClient, text: str) -> None:
    body = api.post(
        "/api/v1/recommendations", {"messages": [{"role": "user", "content": text}], "k": 2}, format="json"
    ).json()
    response = api.post(
        "/api/v1/feedback",
        {"recommendation_id": body["recommendation_id"], "tool": body["tools"][0]["name"], "used": True},
        format="json",
    )
    assert response.status_code == 201


@override_settings(MEMORY_MAX_CONTEXTS=3)
def test_learning_forgets_the_oldest_contexts_beyond_the_limit(api: APIClient, indexed: Any) -> None:
    for text in ("send an email", "weather in Paris", "stock price of ACME"):
        _recommend_and_use(api, text)
    assert learning_batch(delay_seconds=0) is not None
    first_three = list(MemoryEntry.objects.order_by("pk").values_list("pk", flat=True))
    assert len(first_three) == 3
    for text in ("convert dollars to euros", "translate hello to French"):
        _recommend_and_use(api, text)
    assert learning_batch(delay_seconds=0) is not None
    kept = list(MemoryEntry.objects.order_by("pk").values_list("pk", flat=True))
    assert len(kept) == 3 and kept[0] == first_three[2]  # the two oldest went, the newest stay
