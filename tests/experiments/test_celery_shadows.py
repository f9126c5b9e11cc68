"""A real Celery worker, on the real broker, ranks the shadow variants of the requests a
web process served with its background work on (as in production): the request only queues
itself, the process asks for a run at most once per SHADOW_ASK_SECONDS, and the runs ask for
the next ones."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest
from rest_framework.test import APIClient

from experiments.models import ShadowSlate
from experiments.selectors import reset_cache
from experiments.services import VariantSpec, experiment_create, experiment_start
from feedback.models import Recommendation, ShadowPending
from tests.recommender.test_celery_rebuild import pytestmark as needs_services
from tests.recommender.test_celery_rebuild import worker  # noqa: F401  (the fixture)

pytestmark = needs_services


@pytest.mark.django_db(transaction=True)
def test_a_worker_ranks_the_shadows_of_served_requests(
    worker: subprocess.Popen[bytes],  # noqa: F811
    api: APIClient,
    indexed: None,
    settings: Any,
) -> None:
    settings.BACKGROUND_THREADS = True  # publish to the broker, as a web process does
    settings.SHADOW_DELAY_SECONDS = 0.2
    settings.SHADOW_ASK_SECONDS = 60.0  # this process asks once: the runs must find the rest
    settings.LEARNING_AUTO_SCHEDULE = False
    variants = [VariantSpec("control", "semantic", is_control=True), VariantSpec("shadow", "thompson", role="shadow")]
    experiment_start(experiment=experiment_create(key="sw", variants=variants, actor="t"), actor="t")
    reset_cache()
    for i in range(10):
        body = {"messages": [{"role": "user", "content": "send an email"}], "user_id": f"u{i}", "k": 3}
        assert api.post("/api/v1/recommendations", body, format="json").status_code == 200
        # Some requests inside one run's window, some after it; and a pause of several runs
        # with nothing to rank, after which only the runs, not an ask, find the next requests.
        time.sleep(3.0 if i == 4 else 0.05 * (i % 3))
    recs = Recommendation.objects.filter(experiment_key="sw")
    assert recs.count() == 10
    deadline = time.monotonic() + 60
    pending = ShadowPending.objects.filter(experiment_key="sw")
    while pending.exists():
        assert worker.poll() is None, "the worker died"
        if time.monotonic() > deadline:
            pytest.fail(f"{pending.count()} recommendations still pending after 60 s")
        time.sleep(0.2)
    slates = ShadowSlate.objects.filter(experiment_key="sw", variant="shadow")
    assert sorted(s.recommendation_id for s in slates) == sorted(recs.values_list("pk", flat=True))
    assert all(len(s.tool_ids) == 3 and len(s.served_target) == 3 for s in slates)
