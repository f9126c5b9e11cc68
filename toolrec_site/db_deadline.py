"""A deadline on the database for the requests that must answer fast (the API, /healthz).

libpq bounds connecting (connect_timeout), a statement the server runs too long
(statement_timeout) and a connection whose packets are dropped (tcp_user_timeout and
keepalives, settings.py). None of them ends a query whose server, or a middlebox in front of
it (a pooler, a proxy), accepts the bytes and never answers: the kernel acknowledges them,
keepalives are answered, and the server-side timeout never runs. Such a request waited out the
whole outage (20 s in bench/faults.py), and with it one of the worker's threads.

So each request under the watched paths registers its thread's connection with a watchdog
(one thread per process). When the request's deadline passes while that connection is blocked
inside a command (libpq's transaction status is ACTIVE only then), the watchdog shuts the
socket down: the blocked call returns at once with an OperationalError, which the API answers
as a JSON 503, and Django replaces the broken connection on the next request. A request that
is past its deadline but not waiting on the database (ranking, say) is left alone.

Written here because neither psycopg nor Django offers a client-side deadline for the
synchronous API (psycopg's timeouts cover connecting and cancelling, not waiting for results).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse

log = logging.getLogger("toolrec.db")

_RECHECK_SECONDS = 0.1  # past its deadline, a request is looked at again this often


@dataclass
class _Watched:
    due: float  # time.monotonic()
    wrapper: Any  # the request thread's django.db connection wrapper
    label: str
    cut: bool = field(default=False)


def _blocked_in_command(wrapper: Any) -> Any:
    """The psycopg connection if it is waiting inside a command, else None."""
    conn = wrapper.connection
    if conn is None or conn.closed:
        return None
    from psycopg import pq

    return conn if conn.info.transaction_status == pq.TransactionStatus.ACTIVE else None


def _cut(conn: Any) -> None:
    # shutdown() acts on the socket, not on this duplicate descriptor: libpq's own descriptor
    # stays open (no descriptor reuse race) and its blocked read returns end-of-file.
    with socket.socket(fileno=os.dup(conn.fileno())) as sock:
        sock.shutdown(socket.SHUT_RDWR)


class Watchdog:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._watched: dict[int, _Watched] = {}
        self._tokens = count(1)
        self._pid = 0
        self._wakes_at = math.inf  # when the watchdog looks next, unless notified
        self.cuts = 0

    def watch(self, wrapper: Any, seconds: float, label: str) -> int:
        return self.watch_until(wrapper, time.monotonic() + seconds, label)

    def watch_until(self, wrapper: Any, due: float, label: str) -> int:
        with self._cond:
            if self._pid != os.getpid():  # first use in this process (gunicorn forks after import)
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="db-deadline", daemon=True).start()
            token = next(self._tokens)
            self._watched[token] = _Watched(due, wrapper, label)
            if due < self._wakes_at:  # usually not: a later request's deadline comes later
                self._cond.notify()
            return token

    def release(self, token: int) -> None:
        with self._cond:
            self._watched.pop(token, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [w for w in self._watched.values() if w.due <= now and not w.cut]
                for watched in due:
                    self._check(watched)
                pending = [w.due for w in self._watched.values() if w.due > now]
                late = any(not w.cut for w in due)
                wait = _RECHECK_SECONDS if late else (min(pending) - now if pending else None)
                self._wakes_at = math.inf if wait is None else now + wait
                self._cond.wait(timeout=wait)

    def _check(self, watched: _Watched) -> None:
        # Under the lock, so the request cannot release its connection to another request
        # between the check and the cut.
        try:
            conn = _blocked_in_command(watched.wrapper)
            if conn is None:
                return
            _cut(conn)
        except Exception:  # any: a watchdog that dies leaves every later request unguarded
            log.exception("database deadline: could not cut %s", watched.label)
            return
        watched.cut = True
        self.cuts += 1
        log.warning("database deadline passed on %s: its connection was cut", watched.label)


watchdog = Watchdog()
_request = threading.local()  # the deadline of the request this thread serves


def request_deadline() -> float | None:
    """The time.monotonic() by which this thread's request must be done with the database,
    for work it hands to other threads (their connections are watched until then too)."""
    return getattr(_request, "due", None)


@contextmanager
def watched_until(due: float | None, label: str) -> Iterator[None]:
    """Watch this thread's connection until `due` (a request's deadline handed to a helper
    thread); nothing when there is no deadline."""
    if due is None or connections["default"].vendor != "postgresql":
        yield
        return
    token = watchdog.watch_until(connections["default"], due, label)
    _request.due = due  # and it does not start connecting late (toolrec_site/postgresql)
    try:
        yield
    finally:
        watchdog.release(token)
        _request.due = None


class DatabaseDeadlineMiddleware:
    """Registers the request's default connection with the watchdog on the watched paths."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.seconds = float(settings.DB_REQUEST_DEADLINE_SECONDS)
        self.prefixes = tuple(settings.DB_REQUEST_DEADLINE_PATHS)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.seconds <= 0 or not request.path.startswith(self.prefixes):
            return self.get_response(request)
        wrapper = connections["default"]
        if wrapper.vendor != "postgresql":  # SQLite has no network to wait on
            return self.get_response(request)
        _request.due = due = time.monotonic() + self.seconds
        token = watchdog.watch_until(wrapper, due, f"{request.method} {request.path}")
        try:
            return self.get_response(request)
        finally:
            watchdog.release(token)
            _request.due = None
