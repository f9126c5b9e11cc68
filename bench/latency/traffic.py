"""The load: HTTP clients sending sessions' turns to ``POST /api/v1/recommendations`` (one
client, concurrent clients each with its own persistent connection, or sessions arriving at a
fixed rate whatever the server's pace) and, with learning on, posting explicit feedback after
each recommendation on the same connection, untimed."""

from __future__ import annotations

import queue
import random
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from .conversations import SessionSource, turn_body
from .report import pcts

STOP = threading.Event()  # set on Ctrl-C or an error: client threads stop claiming requests


def parse_server_timing(header: str) -> dict[str, float]:
    parts: dict[str, float] = {}
    for item in header.split(","):
        name, _, rest = item.strip().partition(";")
        match = re.search(r"dur=([0-9.]+)", rest)
        if name and match:
            parts[name] = float(match.group(1))
    return parts


def _error_text(response: httpx.Response) -> str:
    title = re.search(r"<title>(.*?)</title>", response.text, re.IGNORECASE | re.DOTALL)
    text = title.group(1) if title else response.text
    return " ".join(text.split())[:200]


def send(client: httpx.Client, body: dict[str, Any], source: SessionSource, phase: str) -> dict[str, Any]:
    """One timed recommendation: the request's shape, its end-to-end time, the server's parts."""
    row = _request_shape(body, source, phase)
    started = time.perf_counter()
    try:
        response = client.post("/api/v1/recommendations", json=body)
        row["e2e"] = (time.perf_counter() - started) * 1000
        row["status"] = response.status_code
        row["bytes"] = len(response.content)
        row.update(parse_server_timing(response.headers.get("server-timing", "")))
        _read_answer(row, response)
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:  # ValueError etc.: a malformed 200 body
        row.update(e2e=(time.perf_counter() - started) * 1000, status=0, error=f"{type(exc).__name__}: {exc}")
    return row


def _request_shape(body: dict[str, Any], source: SessionSource, phase: str) -> dict[str, Any]:
    n_texts, repeated = source.embedded_texts(body)
    return {
        "phase": phase,
        "k": body["k"],
        "messages": len(body["messages"]),
        "tool_call": any(m.get("tool_calls") for m in body["messages"]),
        "conversation": "conversation_id" in body,
        "user": "user_id" in body,
        "filtered": "category" in body,
        "texts": n_texts,
        "repeated_texts": repeated,
    }


def _read_answer(row: dict[str, Any], response: httpx.Response) -> None:
    if response.status_code != 200:
        row["error"] = f"HTTP {response.status_code}: {_error_text(response)}"
        return
    answer = response.json()
    row["slate"] = [t["function"]["function"]["name"] for t in answer["tools"]]
    row["names"] = [t["name"] for t in answer["tools"]]  # as in the catalog: the queries' `relevant`
    row["recommendation_id"] = answer["recommendation_id"]


class FeedbackPoster:
    """Explicit feedback as an agent would post it after using tools: the shown tools relevant to
    the query, as used. Posted by the client on its connection after the recommendation; its
    time is recorded here, never in the recommendation's row."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def post(self, client: httpx.Client, row: dict[str, Any], relevant: list[str], phase: str) -> None:
        if "names" not in row:  # the recommendation failed
            return
        wanted = set(relevant)
        used = [(rank, name) for rank, name in enumerate(row["names"], 1) if name in wanted]
        row["relevant_shown"] = len(used)
        if not used or STOP.is_set():
            return
        rec_id = row["recommendation_id"]
        body = {
            "recommendation_id": rec_id,
            "events": [{"tool": name, "used": True, "event_id": f"bench:{rec_id}:{rank}"} for rank, name in used],
        }
        post = self._timed_post(client, body)
        post.update(phase=phase, events=len(used))
        with self._lock:
            self.posts.append(post)

    @staticmethod
    def _timed_post(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            response = client.post("/api/v1/feedback", json=body)
            post: dict[str, Any] = {"ms": (time.perf_counter() - started) * 1000, "status": response.status_code}
            if response.status_code == 201:
                post.update(response.json())  # recorded, duplicates
            else:
                post["error"] = f"HTTP {response.status_code}: {_error_text(response)}"
        except (httpx.HTTPError, ValueError) as exc:
            post = {"ms": (time.perf_counter() - started) * 1000, "status": 0, "error": f"{type(exc).__name__}: {exc}"}
        return post

    def summary(self, phase: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            posts = [p for p in self.posts if p["phase"] == phase]
        judged = [r for r in rows if "relevant_shown" in r]
        return {
            "posts": len(posts),
            "events_sent": sum(p["events"] for p in posts),
            "recorded": sum(p.get("recorded", 0) for p in posts),
            "duplicates": sum(p.get("duplicates", 0) for p in posts),
            "errors": sum(1 for p in posts if "error" in p),
            "error_examples": list(dict.fromkeys(p["error"] for p in posts if "error" in p))[:3],
            "ms": pcts([p["ms"] for p in posts if p["status"] == 201]),
            # share of recommendations showing at least one relevant tool (a rough hit rate)
            "relevant_shown_share": sum(1 for r in judged if r["relevant_shown"]) / len(judged) if judged else None,
        }


def run_session(
    client: httpx.Client,
    source: SessionSource,
    phase: str,
    keep_going: Callable[[], bool],
    feedback: FeedbackPoster | None,
) -> list[dict[str, Any]]:
    """A session's first turn and, if `keep_going()`, its second; each followed by its feedback."""
    session = source.take()
    rows = [send(client, turn_body(session, 1, []), source, phase)]
    if feedback:
        feedback.post(client, rows[0], session["relevant"], phase)
    if session["kind"] != "single" and keep_going():
        rows.append(send(client, turn_body(session, 2, rows[0].get("slate", [])), source, phase))
        if feedback:
            feedback.post(client, rows[1], session["relevant_2"], phase)
    return rows


def new_client(base_url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30.0)


def run_sequential(
    base_url: str, key: str, source: SessionSource, n: int, phase: str, feedback: FeedbackPoster | None = None
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def room_for_second_turn() -> bool:
        return len(rows) + 1 < n  # the first turn is sent but not yet in `rows`

    with new_client(base_url, key) as client:
        while len(rows) < n and not STOP.is_set():
            rows += run_session(client, source, phase, room_for_second_turn, feedback)
    return rows


def run_concurrent(
    base_url: str,
    key: str,
    source: SessionSource,
    clients: int,
    duration: float,
    count: int,
    phase: str,
    feedback: FeedbackPoster | None = None,
) -> list[dict[str, Any]]:
    """`clients` threads, each with its own persistent connection, until the deadline or count."""
    deadline = time.monotonic() + (duration if not count else 1800.0)
    claimed = [0]
    lock = threading.Lock()
    results: list[list[dict[str, Any]]] = [[] for _ in range(clients)]

    def claim() -> bool:
        with lock:
            if STOP.is_set() or time.monotonic() >= deadline or (count and claimed[0] >= count):
                return False
            claimed[0] += 1
            return True

    def worker(slot: int) -> None:
        with new_client(base_url, key) as client:
            while claim():  # one request claimed; a session's second turn claims another
                results[slot] += run_session(client, source, phase, claim, feedback)

    threads = [
        threading.Thread(target=worker, args=(i,), name=f"bench-client-{i}", daemon=True) for i in range(clients)
    ]
    return _run_all(threads, results)


def _run_all(threads: list[threading.Thread], results: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Start the threads, wait for all of them, and return their rows, slot by slot."""
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [row for slot in results for row in slot]


def run_open_loop(
    base_url: str,
    key: str,
    source: SessionSource,
    rate: float,
    duration: float,
    phase: str,
    feedback: FeedbackPoster | None = None,
    *,
    connections: int = 16,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Sessions arriving at random (a Poisson process) at `rate` a second for `duration` s,
    whatever the server's pace: an open loop, as agents' traffic arrives. The closed loop of
    `run_concurrent` sends the next request only when one returns, so at saturation its
    latency measures the machine's CPU per request, not the latency at a given load. Each
    session's first request is timed from when it was due, so a request that waited for a free
    connection is charged its wait (no coordinated omission); its second turn follows at once,
    as in the closed loop. The same `seed` gives the same arrival times (paired blocks)."""
    rng = random.Random(seed)
    due: queue.Queue[float | None] = queue.Queue()
    results: list[list[dict[str, Any]]] = [[] for _ in range(connections)]
    # The clients first: making one takes milliseconds (its TLS context), and made by the
    # connections' threads as the first sessions arrived they queued those for 200 ms.
    clients = [new_client(base_url, key) for _ in range(connections)]
    start = time.perf_counter()

    def pace() -> None:
        at = rng.expovariate(rate)
        while at < duration and not STOP.is_set():
            wait = start + at - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            due.put(start + at)
            at += rng.expovariate(rate)
        for _ in range(connections):
            due.put(None)

    def worker(slot: int) -> None:
        with clients[slot] as client:
            while (arrived := due.get()) is not None:
                queued = (time.perf_counter() - arrived) * 1000
                rows = run_session(client, source, phase, lambda: not STOP.is_set(), feedback)
                rows[0]["queued_ms"] = queued
                rows[0]["due_s"] = arrived - start  # when in the phase it arrived
                rows[0]["e2e"] += queued
                results[slot] += rows

    threads = [threading.Thread(target=pace, name="bench-pacer", daemon=True)] + [
        threading.Thread(target=worker, args=(i,), name=f"bench-open-{i}", daemon=True) for i in range(connections)
    ]
    return _run_all(threads, results)
