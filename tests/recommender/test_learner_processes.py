"""Two learner processes (two Celery workers, or a worker and `rebuild_learning_state`) at
the same time: every claimed recommendation is folded into the published bandit once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from feedback.models import Recommendation
from recommender.engine.bandit import LinearBanditState
from recommender.learning.models import LearningState
from tests.conftest import in_ci

NEEDS = "needs PostgreSQL (DATABASE_URL): processes share the database"
have_postgres = connection.vendor == "postgresql"
if in_ci() and not have_postgres:
    raise RuntimeError(f"CI must run the learner process test: it {NEEDS}")
pytestmark = [pytest.mark.services, pytest.mark.skipif(not have_postgres, reason=NEEDS)]

LEARNER = textwrap.dedent(
    """
    import sys, time
    import django
    django.setup()
    from recommender.learning.learner import learning_batch
    time.sleep(max(0.0, float(sys.argv[1]) - time.time()))  # both start together
    while learning_batch(batch_size=1, delay_seconds=0) is not None:
        pass
    """
)


@pytest.mark.django_db(transaction=True)
def test_two_learner_processes_lose_no_bandit_update(api: APIClient, indexed: Any) -> None:
    k, n = 3, 40
    for i in range(n):
        response = api.post(
            "/api/v1/recommendations",
            {"messages": [{"role": "user", "content": f"send email number {i} to Bob"}], "k": k},
            format="json",
        )
        assert response.status_code == 200
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "toolrec_site.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "PYTHONPATH": str(settings.BASE_DIR),
    }
    start_at = str(time.time() + 4)
    learners = [
        subprocess.Popen(
            [sys.executable, "-c", LEARNER, start_at], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    for learner in learners:
        _, err = learner.communicate(timeout=120)
        assert learner.returncode == 0, err.decode()[-2000:]
    assert not Recommendation.objects.filter(learned_at=None).exists()
    latest = LearningState.objects.order_by("-pk").first()
    assert latest is not None and latest.recommendations_learned == n
    assert LinearBanditState.from_bytes(bytes(latest.bandit)).n_updates == n * k
