"""PostgreSQL faults, for real: a connection the server dropped is replaced before a
request uses it, and /healthz answers (503, "down") when the database refuses
connections or accepts them and never answers, instead of hanging."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import OperationalError, close_old_connections, connection, connections
from django.test import Client
from rest_framework.test import APIClient

from bench.fault_proxy import FaultProxy
from toolrec_site.db_deadline import watchdog, watched_until

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL)")


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_dropped_is_not_a_failed_request(api: APIClient, indexed: None) -> None:
    connection.settings_dict["CONN_MAX_AGE"] = 60  # kept between requests, as in production
    try:
        question = {"messages": [{"role": "user", "content": "send an email to Bob"}]}
        assert api.post("/api/v1/recommendations", question, format="json").status_code == 200
        assert connection.connection is not None
        pid = connection.connection.info.backend_pid
        db = connection.settings_dict
        with psycopg.connect(
            host=db["HOST"], port=db["PORT"], user=db["USER"], password=db["PASSWORD"], dbname=db["NAME"]
        ) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])  # a restart or failover, for this connection
        for _ in range(3):
            # What Django's request handler does at the start of every request (its test
            # client skips it): the kept connection is health-checked before first use.
            close_old_connections()
            response = api.post("/api/v1/recommendations", question, format="json")
            assert response.status_code == 200, response.json()
        assert connection.connection.info.backend_pid != pid
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = 0
        connection.close()


@pytest.fixture
def unanswering_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a blackholed database)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for sock in accepted:
        sock.close()
    server.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fault", ["refused", "unanswered"])
def test_health_says_down_when_the_database_is_unreachable(fault: str, unanswering_server: int) -> None:
    saved = connection.settings_dict["HOST"], connection.settings_dict["PORT"]
    connection.close()
    port = _closed_port() if fault == "refused" else unanswering_server
    connection.settings_dict["HOST"], connection.settings_dict["PORT"] = "127.0.0.1", port
    answer: dict[str, Any] = {}

    def ask() -> None:
        answer["response"] = Client().get("/healthz")

    try:
        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        asking.join(timeout=60)  # hang detection only: without a connect timeout it never returns
        assert not asking.is_alive(), "/healthz hung on an unreachable database"
    finally:
        connection.close()
        connection.settings_dict["HOST"], connection.settings_dict["PORT"] = saved
    response = answer["response"]
    assert response.status_code == 503
    assert response.json()["status"] == "down" and response.json()["checks"]["database"].startswith("error")


@pytest.fixture
def proxied_database() -> Iterator[FaultProxy]:
    """The test database reached through a switchable proxy, the connection kept between
    requests as in production."""
    saved = connection.settings_dict["HOST"], connection.settings_dict["PORT"], connection.settings_dict["CONN_MAX_AGE"]
    proxy = FaultProxy(_closed_port(), str(saved[0] or "127.0.0.1"), int(saved[1] or 5432))
    proxy.start()
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=proxy.listen_port, CONN_MAX_AGE=60)
    try:
        yield proxy
    finally:
        proxy.set_mode("pass")
        connection.close()
        connection.settings_dict.update(HOST=saved[0], PORT=saved[1], CONN_MAX_AGE=saved[2])
        proxy.stop()


def _in_a_thread(steps: Any) -> dict[str, Any]:
    """Runs `steps(record)` in a thread of its own, as a server's worker thread would (Django's
    connections belong to a thread), with hang detection; closes that thread's connection."""
    record: dict[str, Any] = {}

    def run() -> None:
        try:
            steps(record)
        finally:
            connection.close()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=30)  # hang detection only: without the deadline it waits for ever
    assert not worker.is_alive(), "the request hung on a database that stopped answering"
    return record


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/healthz", "/api/v1/tools"])
def test_a_query_in_flight_when_the_database_stops_answering_is_cut_at_the_deadline(
    path: str, proxied_database: FaultProxy, api: APIClient, settings: Any
) -> None:
    """The kept connection is open and healthy; then the database (a proxy in front of it)
    takes the bytes and never answers. No libpq timeout ends that wait: the request's
    deadline does, with a JSON 503, and the next request after recovery is served."""

    def steps(record: dict[str, Any]) -> None:
        record["before"] = api.get(path).status_code  # opens this thread's kept connection
        record["pid"] = connection.connection.info.backend_pid
        proxied_database.set_mode("blackhole")
        started = time.monotonic()
        record["during"] = api.get(path)
        record["seconds"] = time.monotonic() - started
        proxied_database.set_mode("pass")
        close_old_connections()  # what the request handler does at the start of each request
        record["after"] = api.get(path).status_code
        record["new_pid"] = connection.connection.info.backend_pid

    record = _in_a_thread(steps)
    assert record["before"] == 200 and record["after"] == 200
    response = record["during"]
    assert response.status_code == 503, response.content
    assert response["Content-Type"].startswith("application/json")
    deadline = settings.DB_REQUEST_DEADLINE_SECONDS
    # cut at the deadline, and no new connection started so late (toolrec_site/postgresql)
    assert deadline <= record["seconds"] < deadline + 1, record["seconds"]
    assert record["new_pid"] != record["pid"]  # the cut connection was replaced


@pytest.mark.django_db(transaction=True)
def test_a_recommendation_whose_signals_are_read_in_the_pool_keeps_the_deadline(
    proxied_database: FaultProxy, api: APIClient, indexed: None, settings: Any
) -> None:
    """With a user id, the user's history is read by a pool thread on its own connection:
    the request's deadline holds for that connection too (it waited 5 s, then blocked the
    pool thread for the whole outage)."""
    question = {"messages": [{"role": "user", "content": "send an email to Bob"}], "user_id": "u-1"}
    # As in production, the served snapshot and learned state are checked every few seconds,
    # not on every request (tests check on every one), so the user's history is the first read.
    settings.SNAPSHOT_CHECK_SECONDS = settings.LEARNING_CHECK_SECONDS = 600

    def steps(record: dict[str, Any]) -> None:
        for _ in range(2):  # the second finds the per-process caches (key, policy) warm, as in production
            record["before"] = api.post("/api/v1/recommendations", question, format="json").status_code
        proxied_database.set_mode("blackhole")
        started = time.monotonic()
        record["during"] = api.post("/api/v1/recommendations", question, format="json")
        record["seconds"] = time.monotonic() - started
        proxied_database.set_mode("pass")

    record = _in_a_thread(steps)
    assert record["before"] == 200
    response = record["during"]
    assert response.status_code == 503, response.content
    assert response["Content-Type"].startswith("application/json")
    assert record["seconds"] < settings.DB_REQUEST_DEADLINE_SECONDS + 1, record["seconds"]


@pytest.mark.django_db(transaction=True)
def test_the_watchdog_cuts_only_a_connection_waiting_in_a_command() -> None:
    # A statement still running at the deadline is cut...
    connection.ensure_connection()
    token = watchdog.watch(connections["default"], 0.2, "test")  # this thread's wrapper
    try:
        with pytest.raises(OperationalError), connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(3)")
    finally:
        watchdog.release(token)
    connection.close()
    # ...while time spent outside the database is not: the connection stays usable.
    token = watchdog.watch(connections["default"], 0.1, "test")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        time.sleep(0.4)  # past the deadline, not in a command
        with connection.cursor() as cursor:
            cursor.execute("SELECT 2")
            assert cursor.fetchone() == (2,)
    finally:
        watchdog.release(token)


@pytest.mark.django_db(transaction=True)
def test_a_request_at_its_deadline_does_not_start_a_new_connection() -> None:
    """The watchdog cannot cut a connection still being made (an unanswering server holds a
    connect for connect_timeout, 2 s): so late in a request, none is started."""
    connection.close()
    with watched_until(time.monotonic() + 0.5, "test"), pytest.raises(OperationalError, match="deadline"):
        connection.ensure_connection()
    with watched_until(time.monotonic() + 3, "test"):  # early in a request: connects
        connection.ensure_connection()
    assert connection.connection is not None
