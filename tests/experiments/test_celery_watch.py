"""A real Celery worker, on the real broker, runs the experiments' watch and its guardrail
stops an experiment (what beat does every minute)."""

from __future__ import annotations

import subprocess
import time

import pytest
from rest_framework.test import APIClient

from experiments.models import Experiment, ExperimentEvent
from experiments.services import VariantSpec, experiment_create, experiment_start
from tests.recommender.test_celery_rebuild import pytestmark as needs_services
from tests.recommender.test_celery_rebuild import worker  # noqa: F401  (the fixture)
from toolrec_site.scheduling import WATCH_EXPERIMENTS, task_named

pytestmark = needs_services


@pytest.mark.django_db(transaction=True)
def test_a_worker_watch_stops_an_experiment_past_its_latency_ceiling(
    worker: subprocess.Popen[bytes],  # noqa: F811
    api: APIClient,
    indexed: None,
) -> None:
    variants = [VariantSpec("control", "semantic", is_control=True), VariantSpec("slow", "semantic")]
    experiment = experiment_create(
        key="w", variants=variants, actor="t", guardrails={"min_units": 1, "max_p99_ms": 0.001}
    )
    experiment_start(experiment=experiment, actor="t")
    for i in range(12):
        body = {"messages": [{"role": "user", "content": "send an email"}], "user_id": f"u{i}"}
        assert api.post("/api/v1/recommendations", body, format="json").status_code == 200
    task_named(WATCH_EXPERIMENTS).apply_async()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert worker.poll() is None, "the worker died"
        experiment.refresh_from_db()
        if experiment.status == Experiment.Status.STOPPED:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the watch did not stop the experiment within 90 s")
    event = ExperimentEvent.objects.get(experiment=experiment, action="guardrail")
    assert event.actor == "automatic" and "p99 latency" in event.reason
