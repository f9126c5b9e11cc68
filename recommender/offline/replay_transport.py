"""How a replay's requests reach the service: over HTTP, through the real API endpoints
(`POST /api/v1/recommendations`, `POST /api/v1/feedback`), or by calling the services
directly (`recommendation_create`, `feedback_record`: deterministic, as the replay passes its
own random generator, and what the per-policy replays use).

Over HTTP the requests go through everything a client's do (authentication, rate limits,
the serializers, the middleware, the one error shape), to a server that `local_server`
starts in a thread of this process, or to a running one. An in-process server shares this
process's settings and caches, so a watch's change of the experiments reaches it at once."""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import requests
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.db import connections
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteDatabaseWrapper
from django.test.utils import override_settings

from access.models import ApiKey
from feedback.services import FeedbackItem, feedback_record
from recommender.serving.services import recommendation_create

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    recommendation_id: str | None
    tools: list[str]  # the function names, in rank order
    variant: str
    policy: str  # the name of the policy that served it


class Transport(Protocol):
    def recommend(self, *, text: str, user_id: str, k: int) -> Served: ...

    def feedback(self, *, recommendation_id: str, used: list[str]) -> None: ...


@dataclass
class ServiceTransport:
    api_key: ApiKey
    rng: np.random.Generator

    def recommend(self, *, text: str, user_id: str, k: int) -> Served:
        result = recommendation_create(
            api_key=self.api_key,
            messages=[{"role": "user", "content": text}],
            k=k,
            user_id=user_id,
            rng=self.rng,
        )
        rec_id = str(result.recommendation_id) if result.recommendation_id is not None else None
        return Served(rec_id, [t.name for t in result.tools], result.variant, result.policy)

    def feedback(self, *, recommendation_id: str, used: list[str]) -> None:
        feedback_record(
            api_key=self.api_key,
            recommendation_id=uuid.UUID(recommendation_id),
            items=[FeedbackItem(tool=t, used=True, event_id=f"sim-{uuid.uuid4().hex}") for t in used],
        )


class ReplayHTTPError(RuntimeError):
    pass


class HttpTransport:
    """One keep-alive connection, as an agent's client would hold: the server serves it in one
    thread, which keeps its database connection between requests (CONN_MAX_AGE)."""

    def __init__(self, base_url: str, raw_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {raw_key}"

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.session.post(f"{self.base_url}{path}", json=body, timeout=120)
        if response.status_code >= 300:
            raise ReplayHTTPError(f"POST {path}: {response.status_code} {response.text[:500]}")
        answer: dict[str, Any] = response.json()
        return answer

    def recommend(self, *, text: str, user_id: str, k: int) -> Served:
        body = {"messages": [{"role": "user", "content": text}], "k": k, "user_id": user_id}
        answer = self._post("/api/v1/recommendations", body)
        names = [t["name"] for t in answer["tools"]]
        return Served(answer["recommendation_id"], names, answer["variant"], answer["policy"])

    def feedback(self, *, recommendation_id: str, used: list[str]) -> None:
        events = [{"tool": t, "used": True, "event_id": f"sim-{uuid.uuid4().hex}"} for t in used]
        self._post("/api/v1/feedback", {"recommendation_id": recommendation_id, "events": events})

    def close(self) -> None:
        self.session.close()


class _QuietHandler(WSGIRequestHandler):
    # The server writes a response's headers and body separately; with Nagle's algorithm the
    # body waits for the client's delayed ACK (40 ms on Linux), per request, on a keep-alive
    # connection. urllib3 sets TCP_NODELAY on its side already.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would be tens of thousands of lines; errors surface as statuses


@contextlib.contextmanager
def http_transport(raw_key: str, base_url: str = "") -> Iterator[HttpTransport]:
    """An HTTP client for the replay: to `base_url`, or to a server started for the block."""
    server = contextlib.nullcontext(base_url) if base_url else local_server()
    with server as url:
        transport = HttpTransport(url, raw_key)
        try:
            yield transport
        finally:
            # Before the server stops: the thread serving this connection ends at its close
            # and closes its database connection (a throwaway database cannot be dropped
            # while a connection to it is open).
            transport.close()


@contextlib.contextmanager
def local_server() -> Iterator[str]:
    """The WSGI application served on 127.0.0.1 at a free port, in a thread, while the block
    runs; yields its base URL. Plain HTTP on the loopback: no HTTPS redirect, and no rate
    limit (a replay sends thousands of requests a minute from one key)."""
    connection = connections["default"]
    # An in-memory SQLite database exists only in this connection: the server thread must
    # use it too (what Django's LiveServerThread does); requests are one at a time.
    in_memory = isinstance(connection, SQLiteDatabaseWrapper) and connection.is_in_memory_db()
    shared = {"default": connection} if in_memory else None
    with override_settings(SECURE_SSL_REDIRECT=False, RATE_LIMITS={}, ALLOWED_HOSTS=["127.0.0.1"]):
        server = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler, connections_override=shared)
        server.set_app(WSGIHandler())
        thread = threading.Thread(target=server.serve_forever, name="replay-server", daemon=True)
        if shared:
            connection.inc_thread_sharing()
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()  # joins the threads serving connections
            thread.join()
            if shared:
                connection.dec_thread_sharing()
