from __future__ import annotations

from django.test import Client

from toolrec_site.readiness import mark_warm, mark_warming


def test_health_reports_each_dependency(indexed: None) -> None:
    from recommender.serving.holders import snapshots

    snapshots.get()  # this process now serves the fixture's snapshot
    response = Client().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"].startswith("ok")
    assert body["snapshot"]["tools"] == 12
    assert body["status"] in {"ok", "degraded"}
    assert body["serving"]["snapshot_version"] == body["snapshot"]["version"]


def test_health_shows_the_learned_state_this_process_serves(api, indexed: None) -> None:
    from recommender.learning.learner import learning_batch
    from recommender.serving.holders import learned

    api.post("/api/v1/recommendations", {"messages": [{"role": "user", "content": "send an email"}]}, format="json")
    outcome = learning_batch(delay_seconds=0)
    assert outcome is not None
    learned.get()
    assert Client().get("/healthz").json()["serving"]["learned_state_version"] == outcome.version


def test_health_says_degraded_without_an_index(db: None) -> None:
    body = Client().get("/healthz").json()
    assert body["status"] == "degraded" and body["snapshot"] is None


def test_metrics_and_schema_are_served(indexed: None) -> None:
    client = Client()
    assert b"tool_recommendation_latency_seconds" in client.get("/metrics").content
    schema = client.get("/api/v1/schema")
    assert schema.status_code == 200 and b"/api/v1/recommendations" in schema.content
    assert client.get("/api/v1/docs").status_code == 200


def test_health_says_starting_while_the_process_warms_up(db: None) -> None:
    """A load balancer holds traffic back from a process still loading what requests need."""
    mark_warming()
    try:
        response = Client().get("/healthz")
        assert response.status_code == 503 and response.json()["status"] == "starting"
    finally:
        mark_warm()
    assert Client().get("/healthz").json()["status"] != "starting"
