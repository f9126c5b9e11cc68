"""A shadow run or a learning batch holds its recommendations while it works on them; a use
reported for one of them meanwhile (the conversation's next turn, explicit feedback) must not
wait for it. The use's foreign-key check takes FOR KEY SHARE on its recommendation, which a
claim FOR UPDATE blocked: the next turns of shadowed conversations waited for shadow runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from feedback.models import Recommendation, ShadowPending, UsageEvent
from recommender.learning.learner import _claim
from recommender.serving.shadow import shadows_claim

CLAIMS: dict[str, Callable[[], Any]] = {
    "shadow run": lambda: shadows_claim(10),
    "learning batch": lambda: _claim(cutoff=timezone.now() + timedelta(seconds=1), size=10),
}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("claim", list(CLAIMS))
def test_a_use_reported_while_its_recommendation_is_claimed_does_not_wait(
    api: APIClient, indexed: None, claim: str
) -> None:
    messages = [{"role": "user", "content": "send an email"}]
    body = api.post("/api/v1/recommendations", {"messages": messages}, format="json").json()
    ShadowPending.objects.bulk_create(
        ShadowPending(recommendation=r, experiment_key=r.experiment_key) for r in Recommendation.objects.all()
    )
    claimed, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                assert CLAIMS[claim]()
                claimed.set()
                release.wait(15)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert claimed.wait(15)
        started = time.monotonic()
        feedback = {"recommendation_id": body["recommendation_id"], "tool": body["tools"][0]["name"], "used": True}
        assert api.post("/api/v1/feedback", feedback, format="json").status_code == 201
        waited = time.monotonic() - started
    finally:
        release.set()
        holder.join()
    assert waited < 2.0, f"the use waited {waited:.1f} s for the {claim}"
    assert UsageEvent.objects.filter(used=True).count() == 1
