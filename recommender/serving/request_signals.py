"""The learning signals of one request that the database holds: the user's history with
each tool and the co-use counts after the tools already called in the conversation.

Neither needs the candidates, so the recommendation path starts reading them in a small
thread pool before it embeds the queries (ONNX and psycopg both release the GIL) and
collects them after retrieval: a database round trip or two that no longer adds to the
request. PostgreSQL only: SQLite has no network wait to hide,
and its test databases live in memory, shared badly across threads.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections, connection

from recommender.learning.selectors import co_use_counts_all, user_tool_counts_all
from toolrec_site.db_deadline import request_deadline, watched_until

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestSignals:
    """What the database knows about this request's user and the tools already called: the
    user's (uses, shows) per tool and the co-use counts after the called tools, per tool."""

    user: dict[int, tuple[int, int]]
    co_use: dict[int, int]


def request_signals_read(*, user_id: str, called_ids: list[int]) -> RequestSignals:
    return RequestSignals(
        user=user_tool_counts_all(user_id=user_id, limit=settings.USER_SIGNALS_MAX_TOOLS),
        co_use=co_use_counts_all(called_ids=called_ids),
    )


_POOL_THREADS = 2
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def _read_in_pool(user_id: str, called_ids: list[int], due: float | None) -> RequestSignals:
    close_old_connections()  # this thread's connection outlives requests: replace a dead one
    try:
        # The request's database deadline holds here too: a read stuck on an unanswering
        # database is cut with the request's, not left holding this thread for good.
        with watched_until(due, "request signals"):
            return request_signals_read(user_id=user_id, called_ids=called_ids)
    except Exception:
        connection.close()
        raise
    finally:
        if connection.settings_dict.get("CONN_MAX_AGE") == 0:  # no persistent connections wanted
            connection.close()


def request_signals_start(*, user_id: str, called_ids: list[int]) -> Future[RequestSignals] | None:
    """Start reading the request's signals in the background; None to read them in place."""
    global _pool, _pool_pid
    if not (user_id or called_ids) or connection.vendor != "postgresql":
        return None
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():  # pools do not survive a fork
            _pool, _pool_pid = ThreadPoolExecutor(_POOL_THREADS, thread_name_prefix="toolrec-signals"), os.getpid()
        pool = _pool
    return pool.submit(_read_in_pool, user_id, called_ids, request_deadline())


def request_signals_finish(
    started: Future[RequestSignals] | None, *, user_id: str, called_ids: list[int]
) -> RequestSignals:
    if started is not None:
        due = request_deadline()
        try:
            return started.result(timeout=5 if due is None else max(due - time.monotonic(), 0.05))
        except Exception:
            log.warning("background read of the request signals failed; reading them in place", exc_info=True)
    if not (user_id or called_ids):
        return RequestSignals(user={}, co_use={})
    return request_signals_read(user_id=user_id, called_ids=called_ids)


def request_signals_stop() -> None:
    """Close the pool's database connections and stop its threads (before dropping a
    database, e.g. in a benchmark); the next request starts a new pool."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is None:
        return
    # One job per thread: each waits until all are running, so no thread takes two.
    barrier = threading.Barrier(_POOL_THREADS)

    def close_own_connection() -> None:
        barrier.wait(timeout=10)
        connection.close()

    for job in [pool.submit(close_own_connection) for _ in range(_POOL_THREADS)]:
        job.result(timeout=15)
    pool.shutdown(wait=True)
