"""A real Celery worker, on the real broker, rebuilds the index after an import."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from catalog.importers import parse_tools
from catalog.services import tool_import
from recommender.indexing.models import IndexSnapshot
from recommender.indexing.snapshots import snapshot_build
from tests.conftest import in_ci, small_catalog_jsonl

NEEDS = "needs PostgreSQL (DATABASE_URL) and a broker (CELERY_BROKER_URL)"
have_services = bool(settings.CELERY_BROKER_URL) and connection.vendor == "postgresql"
if in_ci() and not have_services:
    raise RuntimeError(f"CI must run the Celery integration test: it {NEEDS}")
pytestmark = [pytest.mark.services, pytest.mark.skipif(not have_services, reason=NEEDS)]

NEW_TOOL = {
    "id": "aquarium_feed_fish",
    "name": "aquarium_feed_fish",
    "category": "home",
    "description": "Dispense a measured portion of food into the smart aquarium to feed the fish.",
    "parameters": {"type": "object", "properties": {"grams": {"type": "number"}}},
}


@pytest.fixture
def worker() -> Iterator[subprocess.Popen[bytes]]:
    db = connection.settings_dict
    env: dict[str, str] = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "toolrec_site.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "TOOLREC_VAR_DIR": str(settings.VAR_DIR),
        "CACHE_KEY_PREFIX": str(settings.CACHES["default"].get("KEY_PREFIX", "toolrec")),
        "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
    }
    log = Path(settings.VAR_DIR) / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "toolrec_site",
                "worker",
                "--pool=solo",
                "--concurrency=1",
                "--loglevel=INFO",
                "-Q",
                settings.CELERY_TASK_DEFAULT_QUEUE,
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    print(log.read_text()[-3000:])


@pytest.mark.django_db(transaction=True)
def test_a_worker_rebuilds_after_an_import_and_the_next_answer_has_the_new_tool(
    worker: subprocess.Popen[bytes], api: APIClient, settings: object
) -> None:
    settings.REBUILD_DEBOUNCE_SECONDS = 1  # type: ignore[attr-defined]
    tool_import(records=parse_tools(small_catalog_jsonl(), "jsonl"), schedule_rebuild=False)
    first = snapshot_build()
    assert first is not None
    question = {"messages": [{"role": "user", "content": "please feed the fish in my aquarium"}], "k": 3}
    assert "aquarium_feed_fish" not in [
        t["name"] for t in api.post("/api/v1/recommendations", question, format="json").json()["tools"]
    ]

    # Importing schedules a debounced rebuild through the broker; this process builds nothing.
    tool_import(records=parse_tools(small_catalog_jsonl([NEW_TOOL]), "jsonl"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert worker.poll() is None, "the worker died"
        active = IndexSnapshot.objects.filter(is_active=True).first()
        if active is not None and active.pk != first.pk:
            break
        time.sleep(0.5)
    else:
        pytest.fail("no new snapshot within 120 s")
    assert active.tool_count == 13 and active.embedded_count == 1
    top = api.post("/api/v1/recommendations", question, format="json").json()["tools"]
    assert top[0]["name"] == "aquarium_feed_fish"
