"""PostgreSQL faults, for real: a connection the server dropped is replaced before a
request uses it, and /healthz answers (503, "down") when the database refuses
connections or accepts them and never answers, instead of hanging."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import close_old_connections, connection
from django.test import Client
from rest_framework.test import APIClient

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
