"""Learner lag in /healthz and /metrics, and feedback that never waits on a dead broker."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from feedback.models import Recommendation, UsageEvent
from recommender.learning.learner import learning_batch
from toolrec_site import scheduling
from toolrec_site.celery import app


def _recommend(api: APIClient, text: str = "send an email to Bob") -> dict:
    response = api.post("/api/v1/recommendations", {"messages": [{"role": "user", "content": text}]}, format="json")
    assert response.status_code == 200
    return response.json()


def test_health_says_degraded_when_the_oldest_unlearned_recommendation_is_overdue(
    api: APIClient, indexed: None, settings: object
) -> None:
    settings.LEARN_DELAY_SECONDS = 60  # type: ignore[attr-defined]
    settings.LEARNER_LAG_DEGRADED_SECONDS = 120  # type: ignore[attr-defined]
    body = _recommend(api)
    fresh = Client().get("/healthz").json()
    assert fresh["learner_lag_seconds"] == 0 and fresh["checks"]["learner"].startswith("ok")

    Recommendation.objects.filter(pk=body["recommendation_id"]).update(
        created_at=timezone.now() - timedelta(seconds=60 + 300)
    )
    late = Client().get("/healthz").json()
    assert 299 <= late["learner_lag_seconds"] <= 330
    assert late["checks"]["learner"].startswith("lagging") and late["status"] == "degraded"
    assert b"toolrec_learner_lag_seconds 3" in Client().get("/metrics").content

    assert learning_batch(delay_seconds=60) is not None  # learns what came due
    assert Client().get("/healthz").json()["learner_lag_seconds"] == 0


def test_a_use_reported_after_its_recommendation_was_learned_is_due_at_once(
    api: APIClient, indexed: None, settings: object
) -> None:
    settings.LEARNING_AUTO_SCHEDULE = False  # type: ignore[attr-defined]
    body = _recommend(api)
    assert learning_batch(delay_seconds=0) is not None
    response = api.post(
        "/api/v1/feedback",
        {"recommendation_id": body["recommendation_id"], "events": [{"tool": body["tools"][0]["name"], "used": True}]},
        format="json",
    )
    assert response.status_code == 201
    UsageEvent.objects.update(created_at=timezone.now() - timedelta(seconds=40))
    assert 39 <= Client().get("/healthz").json()["learner_lag_seconds"] <= 60


@pytest.fixture
def dead_broker(settings: object) -> Iterator[None]:
    """The app publishes to a port where nothing listens (a broker that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    saved = app.conf.broker_write_url
    settings.CELERY_TASK_ALWAYS_EAGER = False  # type: ignore[attr-defined]
    app.conf.broker_write_url = f"redis://127.0.0.1:{port}/0"  # publishing connects here
    app._pool = None
    app.amqp._producer_pool = None
    scheduling._broker_down_until = 0.0
    yield
    app.conf.broker_write_url = saved
    app._pool = None
    app.amqp._producer_pool = None
    scheduling._broker_down_until = 0.0


@pytest.mark.django_db(transaction=True)
def test_feedback_is_stored_while_the_broker_is_down_and_the_periodic_run_learns_it(
    dead_broker: None, api: APIClient, indexed: None, settings: object
) -> None:
    settings.LEARN_DEBOUNCE_SECONDS = 0  # type: ignore[attr-defined]
    settings.LEARN_DELAY_SECONDS = 0  # type: ignore[attr-defined]
    body = _recommend(api)
    for n in range(3):  # the first publish fails; the next ones are not attempted (backoff)
        response = api.post(
            "/api/v1/feedback",
            {
                "recommendation_id": body["recommendation_id"],
                "events": [{"tool": body["tools"][n]["name"], "used": n == 0, "event_id": f"e{n}"}],
            },
            format="json",
        )
        assert response.status_code == 201, response.content
    assert scheduling._broker_down_until > 0
    with pytest.raises(scheduling.BrokerUnavailable):
        scheduling.run_task(scheduling.LEARN_FROM_FEEDBACK)
    assert UsageEvent.objects.filter(recommendation_id=body["recommendation_id"]).count() == 3

    # What beat runs every few seconds, whatever was or was not published.
    scheduling.task_named(scheduling.LEARN_FROM_FEEDBACK).apply(kwargs={})
    assert UsageEvent.objects.filter(learned_at__isnull=False).count() == 3
    assert Recommendation.objects.get(pk=body["recommendation_id"]).learned_at is not None
