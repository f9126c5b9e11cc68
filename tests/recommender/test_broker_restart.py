"""A real Celery worker survives its Redis broker being killed (-9) and restarted while it
holds an unacknowledged message, and keeps learning afterwards (issue 11: it used to exit
with `AttributeError: 'NoneType' object has no attribute 'hostname'`).

The test starts its own redis-server (never the shared one): port FAULT_REDIS_PORT, 6411
unless set."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from feedback.models import Recommendation, UsageEvent
from tests.conftest import in_ci
from toolrec_site.celery import app
from toolrec_site.scheduling import LEARN_FROM_FEEDBACK

NEEDS = "needs PostgreSQL (DATABASE_URL), shared with the worker, and a redis-server binary"
have_services = connection.vendor == "postgresql" and shutil.which("redis-server") is not None
if in_ci() and not have_services:
    raise RuntimeError(f"CI must run the broker restart test: it {NEEDS}")
pytestmark = [pytest.mark.services, pytest.mark.skipif(not have_services, reason=NEEDS)]

PORT = int(os.environ.get("FAULT_REDIS_PORT", "6411"))
BROKER = f"redis://127.0.0.1:{PORT}/0"


class OwnRedis:
    def __init__(self, port: int, folder: str) -> None:
        self.port, self.folder = port, folder
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", self.folder],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout != b"PONG\n":
            assert time.monotonic() < deadline, f"redis-server on port {self.port} did not start"
            time.sleep(0.1)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    folder = tempfile.mkdtemp(prefix="toolrec-redis-")
    redis = OwnRedis(PORT, folder)
    redis.start()
    yield redis
    if redis.process and redis.process.poll() is None:
        redis.kill()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def worker(own_redis: OwnRedis) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "toolrec_site.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": BROKER,
        "REDIS_URL": f"redis://127.0.0.1:{PORT}/1",
        "TOOLREC_VAR_DIR": str(settings.VAR_DIR),
        "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
        "LEARN_DELAY_SECONDS": "0",
    }
    log = Path(settings.VAR_DIR) / "broker-restart-worker.log"
    with log.open("wb") as out:
        # The prefork pool, as in production (the crash was in the consumer, whatever the pool).
        command = [sys.executable, "-m", "celery", "-A", "toolrec_site", "worker", "-c", "1", "-l", "INFO"]
        process = subprocess.Popen(
            [*command, "-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "--without-gossip", "--without-mingle"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    yield process, log
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    print(log.read_text()[-4000:])


def _send_learning(countdown: float = 0) -> None:
    with app.connection_for_write(BROKER) as conn:
        app.send_task(
            LEARN_FROM_FEEDBACK, countdown=countdown, connection=conn, queue=settings.CELERY_TASK_DEFAULT_QUEUE
        )


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, f"the worker exited (code {process.returncode}) while waiting for {what}"
        assert time.monotonic() < deadline, f"no {what} within {seconds} s"
        time.sleep(0.25)


def _feedback(api: APIClient, text: str) -> str:
    body = api.post("/api/v1/recommendations", {"messages": [{"role": "user", "content": text}]}, format="json").json()
    tool = body["tools"][0]["name"]
    response = api.post(
        "/api/v1/feedback",
        {"recommendation_id": body["recommendation_id"], "events": [{"tool": tool, "used": True}]},
        format="json",
    )
    assert response.status_code == 201
    return str(body["recommendation_id"])


@pytest.mark.django_db(transaction=True)
def test_a_worker_keeps_learning_after_its_redis_is_killed_and_restarted(
    own_redis: OwnRedis, worker: tuple[subprocess.Popen[bytes], Path], api: APIClient, indexed: None, settings: object
) -> None:
    process, log = worker
    settings.LEARNING_AUTO_SCHEDULE = False  # type: ignore[attr-defined]  # this test sends the tasks itself
    before = _feedback(api, "send an email to Bob")
    _send_learning()
    learned = Recommendation.objects.filter(learned_at__isnull=False)
    _wait_for(lambda: learned.filter(pk=before).exists(), process, 90, "learning")

    # A task with a countdown: the worker holds its message, unacknowledged, until it is due.
    _send_learning(countdown=600)
    _wait_for(lambda: log.read_text().count("received") >= 2, process, 30, "the delayed task at the worker")
    own_redis.kill()
    time.sleep(3)  # the worker notices the lost connection and tries to reconnect
    own_redis.start()

    after = _feedback(api, "what is the weather in Paris tomorrow")
    deadline = time.monotonic() + 90
    while not Recommendation.objects.filter(pk=after, learned_at__isnull=False).exists():
        assert process.poll() is None, f"the worker exited (code {process.returncode}) after the broker restart"
        assert time.monotonic() < deadline, "the worker did not learn within 90 s of the broker's restart"
        _send_learning()  # lost with the broker's data, as a failed publish would be: sent again
        time.sleep(2)
    assert UsageEvent.objects.filter(recommendation_id=after, learned_at__isnull=False).count() == 1
    assert "Unrecoverable error" not in log.read_text()
