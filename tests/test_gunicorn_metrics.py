"""/metrics under gunicorn with two workers reports the sum over the workers, and a worker
that dies is no longer counted as up (the multiprocess setup of toolrec_site.gunicorn_config).

The server runs as `make serve` runs it, on its own SQLite file (the test database of
pytest-django lives in memory or in a transaction no other process can see)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from prometheus_client import multiprocess
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import small_catalog_jsonl

PORTS = range(8160, 8170)  # this project's ports for test servers
REQUESTS = 24

SETUP = textwrap.dedent(
    """
    import sys
    import django
    django.setup()
    from django.core.management import call_command
    from access.services import api_key_create
    from catalog.importers import parse_tools
    from catalog.services import tool_import
    from recommender.indexing.snapshots import snapshot_build
    from recommender.learning.learner import learning_publish_stats
    call_command("migrate", verbosity=0)
    tool_import(records=parse_tools(open(sys.argv[1]).read(), "jsonl"), schedule_rebuild=False)
    snapshot_build()
    learning_publish_stats()
    print(api_key_create(name="gunicorn test")[1])
    """
)


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    pytest.skip(f"no free port in {PORTS}")


def _get(url: str, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _post(url: str, body: dict[str, Any], key: str) -> int:
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status


def _scrape(base: str) -> dict[str, float]:
    status, body = _get(f"{base}/metrics")
    assert status == 200
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def _recommendations_by_pid(folder: Path) -> dict[int, float]:
    """Each worker's own count, read from its file (what the scrape adds up)."""
    counts = {}
    for path in folder.glob("counter_*.db"):
        families = multiprocess.MultiProcessCollector.merge([str(path)])
        counts[int(path.stem.split("_")[1])] = sum(
            s.value for f in families if f.name == "toolrec_recommendations" for s in f.samples
        )
    return counts


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("gunicorn")
    folder = tmp_path / "prometheus"
    folder.mkdir()
    # A previous server's file: the config must clean it at start, or its count would be added.
    stale = MmapedDict(str(folder / "counter_999999.db"))
    stale.write_value(
        mmap_key("toolrec_recommendations_total", "toolrec_recommendations_total", ["variant"], ["default"], "x"),
        1000.0,
        0.0,
    )
    stale.close()
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_BROKER_URL", "DATABASE_URL"}}
    port = _free_port()
    env.update(
        DJANGO_SETTINGS_MODULE="toolrec_site.settings",
        SECRET_KEY="gunicorn-test-" + "k" * 50,
        DEBUG="false",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        TOOLREC_VAR_DIR=str(tmp_path / "var"),
        TOOLREC_WARMUP="false",
        PROMETHEUS_MULTIPROC_DIR=str(folder),
        BIND=f"127.0.0.1:{port}",
        WEB_WORKERS="2",
        WEB_THREADS="1",  # one request at a time per worker: concurrent requests must spread
        METRICS_REFRESH_SECONDS="0",
        PYTHONPATH=str(settings.BASE_DIR),
    )
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text(small_catalog_jsonl())
    setup = subprocess.run(
        [sys.executable, "-c", SETUP, str(catalog)], env=env, capture_output=True, text=True, timeout=300
    )
    assert setup.returncode == 0, setup.stderr[-3000:]
    key = setup.stdout.strip().splitlines()[-1]
    log = (tmp_path / "gunicorn.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:toolrec_site.gunicorn_config", "toolrec_site.wsgi"],
        env=env,
        cwd=settings.BASE_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if _get(f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()[-3000:]
            time.sleep(0.3)
        yield {"base": base, "key": key, "folder": folder, "master": proc.pid, "log": tmp_path / "gunicorn.log"}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _workers(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def test_metrics_add_up_over_two_workers(server: dict[str, Any]) -> None:
    base, key = server["base"], server["key"]
    assert not (server["folder"] / "counter_999999.db").exists()
    before = _recommendations_by_pid(server["folder"])
    scraped = _scrape(base)
    queries = ["send an email to Bob", "weather in Paris", "meeting on Monday", "convert USD to EUR"]

    def ask(i: int) -> int:
        body = {"messages": [{"role": "user", "content": f"{queries[i % 4]} #{i}"}], "k": 3}
        return _post(f"{base}/api/v1/recommendations", body, key)

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(ask, range(REQUESTS))) == [200] * REQUESTS

    after = _recommendations_by_pid(server["folder"])
    per_worker = {pid: n - before.get(pid, 0.0) for pid, n in after.items()}
    assert len([n for n in per_worker.values() if n > 0]) == 2, per_worker  # both workers answered
    assert sum(per_worker.values()) == REQUESTS
    totals = _scrape(base)
    for name in ("toolrec_recommendations_total", "tool_recommendation_latency_seconds_count"):
        assert totals[name] - scraped.get(name, 0.0) == REQUESTS
    assert totals["toolrec_web_workers"] == 2
    assert totals["toolrec_active_tools"] == 12


def test_a_dead_worker_is_not_counted_up_and_its_counts_stay(server: dict[str, Any]) -> None:
    base, key = server["base"], server["key"]
    for i in range(4):
        assert _post(f"{base}/api/v1/recommendations", {"messages": [{"role": "user", "content": f"mail {i}"}]}, key)
    before = _scrape(base)["toolrec_recommendations_total"]
    victim = _workers(server["master"])[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while victim in _workers(server["master"]) or len(_workers(server["master"])) < 2:
        assert time.monotonic() < deadline, "gunicorn did not replace the worker"
        time.sleep(0.2)
    # The replacement sets its gauge once its app is loaded; the dead one's must be gone.
    while _scrape(base).get("toolrec_web_workers") != 2:
        assert time.monotonic() < deadline, _scrape(base).get("toolrec_web_workers")
        time.sleep(0.3)
    assert not list(server["folder"].glob(f"gauge_live*_{victim}.db"))
    assert _scrape(base)["toolrec_recommendations_total"] == before
