"""End-to-end latency of POST /api/v1/recommendations, served by gunicorn as in production.

What it does, in order:

1. Builds a catalog of N tools (default 10,000): the shared ToolBench (2,479) and MetaTool
   (199) tools plus seeded variants of them (renamed endpoints and toolkits, reworded
   descriptions), written as JSONL in the shared datasets' format to the work dir.
2. Prepares an isolated environment in the work dir (``TOOLREC_VAR_DIR``): migrate,
   ``import_tools --no-rebuild``, ``rebuild_index`` (vectors are kept in Qdrant local mode
   under the work dir, so keep it between runs: only the first run embeds), an API key.
3. Starts gunicorn on 127.0.0.1, waits for /healthz, warms up.
4. Sends realistic OpenAI-style conversations built from the shared queries (system
   prompt, user request, sometimes an assistant tool call with its result and a
   follow-up; k 5 or 10; some with user/conversation ids, some with a category filter):
   (a) one client, ``--requests`` requests; (b) ``--clients`` concurrent clients for
   ``--duration`` seconds (or ``--concurrent-requests``). Each query text is used once per
   run and the embedding cache gets a fresh key prefix, so the cache does not flatter the
   numbers; ``--repeat-queries`` cycles a small pool instead (the warm-cache case).
5. Reports p50/p95/p99/max of the end-to-end time and of each ``Server-Timing`` part,
   throughput, errors and where the time goes; writes JSON with machine info and raw rows.

``--learning`` measures with learning on (issue 4: the latency goals must still hold). The
server runs with ``LEARN_DELAY_SECONDS=--learn-delay`` (default 2 s instead of 60 s), so
learning batches run and new states are published and swapped in while latency is measured.
Before measuring, ``--seed-feedback`` recommendations (default 2000) from queries kept out of
the measured phases are sent, with explicit feedback (``POST /api/v1/feedback``) marking as
used the shown tools that are relevant to the query; then everything pending is learned (a
``learning_batch`` loop in a ``manage.py shell`` subprocess) and the learned state printed.
In every phase each client also posts such feedback after each recommendation, on the same
connection, untimed (its latency is reported on its own line); the report says how many
learned-state versions were published during each phase.
``--broker-url`` sets ``CELERY_BROKER_URL`` and starts a Celery worker with beat (as in
production) for the run; without it background work (learning) runs in the web processes.

Usage (from the project root)::

    .venv/bin/python bench/recommend_latency.py \\
        --database-url postgres://postgres@127.0.0.1:5432/toolrec_bench \\
        --redis-url redis://127.0.0.1:6379/3
    # later runs: same database and work dir, no import or embedding (migrate still runs)
    .venv/bin/python bench/recommend_latency.py --skip-setup --database-url ... --redis-url ... --clients 4
    .venv/bin/python bench/recommend_latency.py --skip-setup --database-url ... --redis-url ... --repeat-queries
    # learning on, background work in a Celery worker with beat
    .venv/bin/python bench/recommend_latency.py --skip-setup --database-url ... --redis-url ... \\
        --learning --broker-url redis://127.0.0.1:6379/4

Without ``--database-url`` it uses ``DATABASE_URL`` if set, else SQLite in the work dir.
``--repeat-queries`` is exact only with ``--redis-url``: the local-memory cache is per
worker and a keep-alive connection sticks to one worker. Without ``--broker-url`` no broker
is configured, so background tasks run in the process, as in the embedded default.
The caller's REDIS_URL, CELERY_BROKER_URL, QDRANT_*, EMBEDDING_MODEL are not passed on.
A benchmark, not a test: it asserts nothing about timings. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import platform
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
import zlib
from collections import Counter
from typing import Any

import httpx
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
PY = ROOT / ".venv" / "bin" / "python"
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
CELERY = ROOT / ".venv" / "bin" / "celery"
PARTS = ("prepare", "embed", "engine", "store")
# The parts of "engine": candidate retrieval, learning signals read (database / memory),
# features and policy; "compute" = retrieve + rank, the engine's own time.
ENGINE_DETAIL = ("retrieve", "signals", "rank", "compute")
STOP = threading.Event()  # set on Ctrl-C or an error: client threads stop claiming requests
_FUNCTION_CHARS = re.compile(r"[^a-zA-Z0-9_-]+")  # as catalog.models.Tool.function_name

try:  # pure code (no Django): tells how many texts each request embeds
    sys.path.insert(0, str(ROOT))
    from recommender.engine.conversation import read_conversation
except Exception:  # the engine is being edited by others: count nothing rather than fail
    read_conversation = None


# -- catalog ------------------------------------------------------------------------------


def _table(text: str) -> dict[str, list[str]]:
    """``word: alternative, alternative`` lines -> {word: [alternatives]}."""
    pairs = (line.split(":", 1) for line in text.strip().splitlines())
    return {word.strip(): [alt.strip() for alt in alts.split(",")] for word, alts in pairs}


# Endpoint verbs, nouns and phrasing that variants swap, so generated texts differ realistically.
VERBS = _table("""
get: Fetch, Retrieve, List, Lookup, Read, Query, Show
search: Find, Lookup, Query, Discover, Browse
list: Get, Browse, Enumerate, Fetch All
create: Add, New, Make, Register
update: Edit, Modify, Change
delete: Remove, Drop, Erase
fetch: Get, Retrieve, Load
check: Verify, Validate, Test
""")
NOUNS = _table("""
information: details, data, info
info: details, data
weather: forecast, climate
user: account, member, profile
users: accounts, members
product: item, listing
products: items, listings
price: cost, rate, quote
prices: costs, rates
movie: film, title
movies: films, titles
song: track, tune
songs: tracks, tunes
music: audio, songs
video: clip, footage
videos: clips, recordings
news: headlines, stories
company: business, firm, organisation
stock: equity, share
stocks: equities, shares
location: place, position, address
city: town, municipality
recipe: dish, meal
recipes: dishes, meals
book: title, volume
books: titles, publications
game: match, fixture
games: matches, fixtures
team: club, squad
player: athlete
players: athletes
image: picture, photo
images: pictures, photos
details: information, specifics
data: records, information
search: lookup, query
country: nation
countries: nations
email: mail, message
message: note, text
order: purchase
orders: purchases
hotel: accommodation, lodging
flight: air travel, trip
currency: money, exchange
crypto: cryptocurrency, token
job: position, vacancy
jobs: positions, vacancies
event: happening, occasion
events: happenings, occasions
category: group, section
categories: groups, sections
returns: gives back, provides, yields
provides: offers, supplies, returns
allows: lets, enables
latest: newest, most recent, current
popular: trending, top
""")
TOOLKIT_SUFFIXES = ["Pro", "Plus", "Hub", "Cloud", "Lite", "Express", "Connect", "Live", "360", "Central"]
TOOLKIT_SUFFIXES += ["Direct", "v2", "Next", "Labs", "Gateway", "One", "API"]
TOOLKIT_PREFIXES = ["Open", "Smart", "Quick", "Global", "My", "Easy", "Super", "Rapid", "Neo", "Fast", "True"]
IMPERATIVES = set(VERBS) | {"find", "retrieve", "generate", "convert", "provide", "send", "return", "lookup", "show"}
DESC_PREFIXES = ["Use this endpoint to ", "This API lets you ", "Call this to ", "Endpoint that helps you ", ""]
DESC_SUFFIXES = [
    " Results are returned as JSON.",
    " Data provided by {toolkit}.",
    " Rate limited per API key.",
    " Supports pagination.",
    " Updated daily.",
    "",
    "",
]
_NOUN_RE = re.compile(r"\b(" + "|".join(sorted(NOUNS, key=len, reverse=True)) + r")\b", re.IGNORECASE)


def _case_like(word: str, replacement: str) -> str:
    if word.isupper() and len(word) > 1:
        return replacement.upper()
    return replacement[:1].upper() + replacement[1:] if word[:1].isupper() else replacement


def _reword(text: str, rng: random.Random, rate: float) -> str:
    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        return _case_like(word, rng.choice(NOUNS[word.lower()])) if rng.random() < rate else word

    return _NOUN_RE.sub(swap, text)


def _rename_endpoint(name: str, rng: random.Random) -> str:
    words = name.split()
    if words and words[0].lower() in VERBS:
        words[0] = rng.choice(VERBS[words[0].lower()])
    elif rng.random() < 0.5:
        words.insert(0, rng.choice(["Get", "Fetch", "List", "Search", "Lookup"]))
    return _reword(" ".join(words), rng, 0.6)


def _rename_toolkit(toolkit: str, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.45:
        return f"{toolkit} {rng.choice(TOOLKIT_SUFFIXES)}"
    if roll < 0.8:
        return f"{rng.choice(TOOLKIT_PREFIXES)} {toolkit}"
    return f"{rng.choice(TOOLKIT_PREFIXES)} {_reword(toolkit, rng, 1.0)} {rng.choice(TOOLKIT_SUFFIXES)}"


def _reword_description(text: str, toolkit: str, rng: random.Random) -> str:
    body = _reword(text or "", rng, 0.5).strip()
    first = body.split(maxsplit=1)[0].lower() if body else ""
    if first in IMPERATIVES:  # "Get the ..." -> "Use this endpoint to get the ..."
        body = rng.choice(DESC_PREFIXES) + body[:1].lower() + body[1:]
    return (body + rng.choice(DESC_SUFFIXES).format(toolkit=toolkit)).strip()


def _variant(base: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    row = dict(base)
    row["source"] = f"bench/generated:{base.get('source') or ''}"
    if base.get("toolkit"):  # a ToolBench endpoint: new toolkit, new endpoint name
        toolkit = _rename_toolkit(base["toolkit"], rng)
        name = _rename_endpoint(base["name"], rng) if rng.random() < 0.7 else base["name"]
        row.update(toolkit=toolkit, name=name, id=f"{toolkit}::{name}")
        row["description"] = _reword_description(base.get("description") or "", toolkit, rng)
    else:  # a MetaTool plugin: a competitor with a similar pitch
        stem = _reword(base["name"], rng, 1.0)
        name = rng.choice([f"{stem}_{rng.choice(TOOLKIT_SUFFIXES).lower()}", f"{rng.choice(TOOLKIT_PREFIXES)}{stem}"])
        row.update(name=name, id=name)
        row["description"] = _reword_description(base.get("description") or "", name, rng)
        if base.get("description_for_model"):
            row["description_for_model"] = _reword(base["description_for_model"], rng, 0.5)
    return row


def _read_jsonl(path: pathlib.Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_catalog(n_tools: int, seed: int, path: pathlib.Path) -> dict[str, Any]:
    base = _read_jsonl(DATASETS / "toolbench" / "tools.jsonl") + _read_jsonl(DATASETS / "metatool" / "tools.jsonl")
    rows = base[:n_tools]
    seen = {r["id"] for r in rows}
    rng = random.Random(seed)
    order = list(range(len(base)))
    while len(rows) < n_tools:  # bounded: every pass adds at least one new id per base tool
        rng.shuffle(order)
        for i in order:
            if len(rows) >= n_tools:
                break
            row = _variant(base[i], rng)
            for attempt in range(2, 100):
                if row["id"] not in seen:
                    break
                suffix = f" {attempt}"
                row["name"] += suffix
                row["id"] += suffix
                if row.get("toolkit"):
                    row["toolkit"] += suffix
            seen.add(row["id"])
            rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return {
        "path": str(path),
        "tools": len(rows),
        "from_datasets": min(len(base), n_tools),
        "generated": max(0, len(rows) - len(base)),
    }


# -- conversations ------------------------------------------------------------------------

SYSTEM_PROMPTS = [
    "You are a helpful assistant. Use the available tools when they help answer the user.",
    "You are an autonomous agent. Think step by step, call tools to gather facts, then answer concisely.",
    "You are a customer-facing assistant for a travel and lifestyle app. Be friendly and accurate; "
    "prefer tools over guessing and never invent data.",
    "You are a research assistant. Cite the tool results you rely on. If a tool fails, try another one.",
]
ASSISTANT_REPLIES = [
    "Sure, let me look into that for you.",
    "Here is what I found based on the results.",
    "I have the first part; let me know if you need anything else.",
]
TOOL_RESULTS = [
    '{"status": 200, "data": {"results": [{"id": 1, "title": "First match"}, {"id": 2, "title": "Second"}]}}',
    '{"ok": true, "count": 3, "items": ["alpha", "beta", "gamma"], "error": null}',
    '{"status": 429, "error": "Too Many Requests: rate limit exceeded, retry later"}',
    '{"result": {"value": 42.5, "unit": "USD", "updated": "2024-05-01T10:00:00Z"}}',
]


def function_name(tool_id: str) -> str:
    return _FUNCTION_CHARS.sub("_", tool_id).strip("_")[:64] or "tool"


def load_queries(seed: int) -> list[dict[str, Any]]:
    """Both query sets, shuffled, ToolBench (long, multi-need) interleaved at about 40%."""
    rng = random.Random(seed + 1)
    toolbench = _read_jsonl(DATASETS / "toolbench" / "queries.jsonl")
    metatool = _read_jsonl(DATASETS / "metatool" / "queries.jsonl")
    for rows, name in ((toolbench, "toolbench"), (metatool, "metatool")):
        rng.shuffle(rows)
        for r in rows:
            r["set"] = name
    out: list[dict[str, Any]] = []
    while toolbench or metatool:
        pick = toolbench if toolbench and (not metatool or rng.random() < 0.4) else metatool
        out.append(pick.pop())
    return out


def build_sessions(queries: list[dict[str, Any]], categories: dict[str, str], seed: int) -> list[dict[str, Any]]:
    """Session specs: one or two turns; the second turn may call a tool the first recommended."""
    rng = random.Random(seed + 2)
    sessions: list[dict[str, Any]] = []
    i = 0
    while i < len(queries):
        q1 = queries[i]
        roll = rng.random()
        kind = "single" if roll < 0.35 or i + 1 >= len(queries) else ("tool_call" if roll < 0.8 else "chat")
        q2 = queries[i + 1] if kind != "single" else None
        i += 1 if q2 is None else 2
        category = next((categories[t] for t in q1["relevant"] if categories.get(t)), "")
        # Most tool-call sessions name their conversation, so the second turn records implicit feedback.
        has_conversation = rng.random() < (0.7 if kind == "tool_call" else 0.2)
        sessions.append(
            {
                "kind": kind,
                "q1": q1["query"],
                "q2": q2 and q2["query"],
                "relevant": q1["relevant"],
                "relevant_2": q2["relevant"] if q2 else [],  # the second turn asks for q2
                "k": 10 if rng.random() < 0.3 else 5,
                "category": category if category and rng.random() < 0.3 else "",
                "conversation_id": f"conv-{uuid.UUID(int=rng.getrandbits(128))}" if has_conversation else "",
                "user_id": f"user-{rng.randrange(500)}" if rng.random() < 0.5 else "",
                "system": rng.choice(SYSTEM_PROMPTS),
                "reply": rng.choice(ASSISTANT_REPLIES),
                "tool_result": rng.choice(TOOL_RESULTS),
                "from_slate": rng.random() < 0.6,
                "pick": rng.randrange(5),
            }
        )
    return sessions


def turn_body(session: dict[str, Any], turn: int, slate: list[str]) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": session["system"]},
        {"role": "user", "content": session["q1"]},
    ]
    if turn == 2 and session["kind"] == "tool_call":
        pool = slate if session["from_slate"] and slate else [function_name(t) for t in session["relevant"]]
        name = pool[session["pick"] % len(pool)] if pool else "unknown_tool"
        call_id = f"call_{zlib.crc32((session['q1'] + name).encode()):010d}"
        messages += [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": call_id, "content": session["tool_result"]},
            {"role": "assistant", "content": session["reply"]},
            {"role": "user", "content": session["q2"]},
        ]
    elif turn == 2:
        messages += [{"role": "assistant", "content": session["reply"]}, {"role": "user", "content": session["q2"]}]
    body: dict[str, Any] = {"messages": messages, "k": session["k"]}
    for key in ("conversation_id", "user_id", "category"):
        if session[key]:
            body[key] = session[key]
    return body


class SessionSource:
    """Hands out sessions to client threads; wraps around (and says so) when queries run out."""

    def __init__(self, sessions: list[dict[str, Any]], pool: int = 0) -> None:
        self._sessions = sessions[:pool] if pool else sessions
        self._next = 0
        self._lock = threading.Lock()
        self._texts: Counter[str] = Counter()
        self.wrapped = False

    def take(self) -> dict[str, Any]:
        with self._lock:
            if self._next >= len(self._sessions):
                self._next, self.wrapped = 0, True
            session = self._sessions[self._next]
            self._next += 1
            return session

    def embedded_texts(self, body: dict[str, Any]) -> tuple[int, int]:
        """(texts this request embeds, how many of them were already sent in this run)."""
        if read_conversation is None:
            return 0, 0
        texts = read_conversation(body["messages"]).queries()
        with self._lock:
            repeated = sum(1 for t in texts if self._texts[t])
            self._texts.update(texts)
        return len(texts), repeated


# -- load ---------------------------------------------------------------------------------


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
    n_texts, repeated = source.embedded_texts(body)
    row: dict[str, Any] = {
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
    started = time.perf_counter()
    try:
        response = client.post("/api/v1/recommendations", json=body)
        row["e2e"] = (time.perf_counter() - started) * 1000
        row["status"] = response.status_code
        row["bytes"] = len(response.content)
        row.update(parse_server_timing(response.headers.get("server-timing", "")))
        if response.status_code == 200:
            answer = response.json()
            row["slate"] = [t["function"]["function"]["name"] for t in answer["tools"]]
            row["names"] = [t["name"] for t in answer["tools"]]  # as in the catalog: the queries' `relevant`
            row["recommendation_id"] = answer["recommendation_id"]
        else:
            row["error"] = f"HTTP {response.status_code}: {_error_text(response)}"
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:  # ValueError etc.: a malformed 200 body
        row.update(e2e=(time.perf_counter() - started) * 1000, status=0, error=f"{type(exc).__name__}: {exc}")
    return row


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
        post: dict[str, Any] = {"phase": phase, "events": len(used)}
        started = time.perf_counter()
        try:
            response = client.post("/api/v1/feedback", json=body)
            post.update(ms=(time.perf_counter() - started) * 1000, status=response.status_code)
            if response.status_code == 201:
                post.update(response.json())  # recorded, duplicates
            else:
                post["error"] = f"HTTP {response.status_code}: {_error_text(response)}"
        except (httpx.HTTPError, ValueError) as exc:
            post.update(ms=(time.perf_counter() - started) * 1000, status=0, error=f"{type(exc).__name__}: {exc}")
        with self._lock:
            self.posts.append(post)

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
            "ms": _pcts([p["ms"] for p in posts if p["status"] == 201]),
            # share of recommendations showing at least one relevant tool (a rough hit rate)
            "relevant_shown_share": sum(1 for r in judged if r["relevant_shown"]) / len(judged) if judged else None,
        }


def feedback_line(f: dict[str, Any]) -> str:
    ms = f["ms"]
    timing = f"POST /feedback p50 {ms['p50']:.1f} p99 {ms['p99']:.1f} max {ms['max']:.1f} ms" if ms else "no timings"
    share = f"{100 * f['relevant_shown_share']:.0f}%" if f["relevant_shown_share"] is not None else "-"
    errors = f", {f['errors']} errors {f['error_examples']}" if f["errors"] else ""
    return (
        f"feedback: {f['posts']} posts, {f['events_sent']} uses sent, {f['recorded']} recorded, "
        f"{f['duplicates']} duplicates{errors}; {timing}; a relevant tool shown in {share} of recommendations"
    )


def run_session(
    client: httpx.Client, source: SessionSource, phase: str, keep_going: Any, feedback: FeedbackPoster | None
) -> list[dict[str, Any]]:
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
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [row for slot in results for row in slot]


# -- measurement ----------------------------------------------------------------------------


def _proc_cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def _with_descendants(pid: int) -> list[int]:
    """The process and all its descendants (gunicorn workers; a Celery worker's pool and beat)."""
    children: dict[int, list[int]] = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def _machine_busy_seconds() -> tuple[float, float]:
    fields = [int(v) for v in pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK"), sum(fields) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU used during a phase by the server (and the Celery worker, if any), by this client
    and by everything else (noise)."""

    def __init__(self, server_pid: int, worker_pid: int | None = None) -> None:
        self.groups = {"server": _with_descendants(server_pid)}
        if worker_pid is not None:
            self.groups["celery_worker"] = _with_descendants(worker_pid)

    def __enter__(self) -> CpuMeter:
        self.t0, self.busy0 = time.monotonic(), _machine_busy_seconds()[0]
        self.used0 = {name: _proc_cpu_seconds(pids) for name, pids in self.groups.items()}
        self.client0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self.t0
        busy = _machine_busy_seconds()[0] - self.busy0
        used = {name: _proc_cpu_seconds(pids) - self.used0[name] for name, pids in self.groups.items()}
        client = time.process_time() - self.client0
        self.cores = {
            "machine_busy": busy / wall,
            **{name: seconds / wall for name, seconds in used.items()},
            "bench_client": client / wall,
            "others": max(0.0, busy - sum(used.values()) - client) / wall,
        }


def _pcts(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    arr = np.asarray(values, dtype=float)
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(arr.max()),
        "mean": float(arr.mean()),
        "n": len(values),
    }


def summarise(rows: list[dict[str, Any]], wall: float, cpu: dict[str, float]) -> dict[str, Any]:
    ok = [r for r in rows if r["status"] == 200]
    for r in ok:
        if all(p in r for p in PARTS):  # no Server-Timing header: no split, only end-to-end
            r["server"] = sum(r[p] for p in PARTS)
            r["overhead"] = r["e2e"] - r["server"]
        if "retrieve" in r and "rank" in r:
            r["compute"] = r["retrieve"] + r["rank"]
    names = ("e2e", *PARTS, *ENGINE_DETAIL, "server", "overhead")
    series = {name: _pcts([r[name] for r in ok if name in r]) for name in names}
    by_texts = {
        str(n): {
            "count": len(g),
            "embed_p50": _pcts([r.get("embed", 0.0) for r in g])["p50"],
            "e2e_p50": _pcts([r["e2e"] for r in g])["p50"],
        }
        for n in sorted({r["texts"] for r in ok})
        if (g := [r for r in ok if r["texts"] == n])
    }
    # Request shapes that take a different path: implicit feedback (a tool call in a named
    # conversation) in prepare, per-user signals and a category filter in the engine.
    slices = {
        f"{part} {label}": {
            flag: (_pcts([r[part] for r in ok if part in r and test(r) == flag]) or {}).get("p50")
            for flag in ("yes", "no")
        }
        for part, label, test in (
            ("prepare", "with implicit feedback", lambda r: "yes" if r["tool_call"] and r["conversation"] else "no"),
            ("engine", "with user_id", lambda r: "yes" if r["user"] else "no"),
            ("engine", "with category filter", lambda r: "yes" if r["filtered"] else "no"),
        )
    }
    return {
        "requests": len(rows),
        "ok": len(ok),
        "errors": len(rows) - len(ok),
        "error_kinds": dict(Counter(r["error"].split(":")[0] for r in rows if "error" in r)),
        "error_examples": list(dict.fromkeys(r["error"] for r in rows if "error" in r))[:5],
        "wall_seconds": wall,
        "throughput_rps": len(ok) / wall if wall else 0.0,
        "ms": series,
        "by_embedded_texts": by_texts,
        "p50_ms_by_request_shape": slices,
        "texts_per_request": float(np.mean([r["texts"] for r in rows])) if rows else 0.0,
        "repeated_texts": sum(r["repeated_texts"] for r in rows),
        "cpu_cores_used": cpu,
    }


def print_phase(title: str, s: dict[str, Any]) -> None:
    print(
        f"\n== {title}: {s['requests']} requests in {s['wall_seconds']:.1f} s, "
        f"{s['throughput_rps']:.1f} req/s, {s['errors']} errors {s['error_kinds'] or ''}"
    )
    print(f"{'ms':<26}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}{'mean':>8}")
    labels = {"e2e": "end-to-end (client)", "server": "server (sum of parts)", "overhead": "HTTP/DRF/auth remainder"}
    rows = ["e2e", "server", "prepare", "embed", "engine", *ENGINE_DETAIL, "store", "overhead"]
    labels |= {n: f"    {n}" for n in ENGINE_DETAIL} | {"compute": "    compute (retrieve+rank)"}
    for name in rows:
        stats = s["ms"].get(name)
        if stats:
            label = labels.get(name, f"  {name}")
            print(f"{label:<26}" + "".join(f"{stats[c]:>8.1f}" for c in ("p50", "p95", "p99", "max", "mean")))
    mean = s["ms"]["e2e"]["mean"] if s["ms"]["e2e"] else 0.0
    if mean:
        shares = ", ".join(
            f"{n} {s['ms'][n]['mean']:.1f} ({100 * s['ms'][n]['mean'] / mean:.0f}%)"
            for n in (*PARTS, "overhead")
            if s["ms"][n]
        )
        print(f"where the time goes (mean ms of {mean:.1f}): {shares}")
    shapes = ", ".join(
        f"{n} text(s): n={g['count']} embed p50 {g['embed_p50']:.1f} e2e p50 {g['e2e_p50']:.1f}"
        for n, g in s["by_embedded_texts"].items()
    )
    print(f"by texts embedded: {shapes}")
    slices = "; ".join(
        f"{name} {v['yes']:.1f} vs {v['no']:.1f}"
        for name, v in s["p50_ms_by_request_shape"].items()
        if v["yes"] is not None and v["no"] is not None
    )
    print(f"p50 by request shape (yes vs no): {slices}")
    cpu = s["cpu_cores_used"]
    worker = f" + celery worker {cpu['celery_worker']:.2f}" if "celery_worker" in cpu else ""
    print(
        f"CPU cores busy: machine {cpu['machine_busy']:.2f} = server {cpu['server']:.2f}{worker} + bench client "
        f"{cpu['bench_client']:.2f} + others {cpu['others']:.2f} (of {os.cpu_count()})"
    )
    for example in s["error_examples"]:
        print(f"  error: {example}")


# -- environment, setup, server -------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpuinfo = pathlib.Path("/proc/cpuinfo").read_text()
    meminfo = pathlib.Path("/proc/meminfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    mem = re.search(r"MemTotal:\s*(\d+)", meminfo)
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model.group(1).strip() if model else "unknown",
        "ram_gb": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit,
        "load_average_at_start": os.getloadavg(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def ensure_postgres_database(url: str) -> None:
    parsed = urllib.parse.urlsplit(url)
    name = parsed.path.lstrip("/")
    maintenance = urllib.parse.urlunsplit(parsed._replace(path="/postgres"))
    found = subprocess.run(
        ["psql", maintenance, "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    if found != "1":
        print(f"creating database {name}")
        subprocess.run(["psql", maintenance, "-c", f'CREATE DATABASE "{name}"'], check=True, timeout=60)


def bench_env(args: argparse.Namespace, work_dir: pathlib.Path, run_id: str) -> tuple[dict[str, str], str]:
    env = dict(os.environ)
    # Isolation: nothing of the caller's integrations leaks in; each is set below or defaulted.
    for name in (
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "QDRANT_URL",
        "QDRANT_PATH",
        "SNAPSHOT_DIR",
        "STATIC_ROOT",
        "CACHE_KEY_PREFIX",
        "EMBEDDING_MODEL",
        "DJANGO_SETTINGS_MODULE",
    ):
        env.pop(name, None)
    database_url = args.database_url or os.environ.get("DATABASE_URL", "")
    env.update(
        TOOLREC_VAR_DIR=str(work_dir),
        SECRET_KEY="bench",
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1",
        HF_HUB_OFFLINE="1",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LOG_LEVEL="WARNING",
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    else:
        env.pop("DATABASE_URL", None)
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
        # A fresh key prefix per run keeps earlier runs' embeddings out (unless measuring warm-cache),
        # and a short TTL keeps them from piling up in Redis.
        env["CACHE_KEY_PREFIX"] = "toolrec-bench-warm" if args.repeat_queries else f"toolrec-bench-{run_id}"
        env["EMBEDDING_CACHE_SECONDS"] = "21600"
    if args.broker_url:
        env["CELERY_BROKER_URL"] = args.broker_url
    if args.learning:  # learned within seconds, so new states are published while latency is measured
        env["LEARN_DELAY_SECONDS"] = str(args.learn_delay)
    kind = urllib.parse.urlsplit(database_url).scheme.split("+")[0] if database_url else "sqlite"
    return env, kind


def manage(env: dict[str, str], *argv: str, timeout: float = 3600) -> tuple[str, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(PY), "manage.py", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"manage.py {' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
    return done.stdout.strip(), seconds


def setup(args: argparse.Namespace, env: dict[str, str], db_kind: str, work_dir: pathlib.Path) -> dict[str, Any]:
    if db_kind.startswith("postgres"):
        ensure_postgres_database(env["DATABASE_URL"])
    report: dict[str, Any] = {"seconds": {}, "output": {}}
    catalog_path = work_dir / f"catalog_{args.tools}_seed{args.seed}.jsonl"
    started = time.perf_counter()
    report["catalog"] = build_catalog(args.tools, args.seed, catalog_path)
    report["seconds"]["build_catalog"] = time.perf_counter() - started
    steps = [
        ("migrate", ["migrate", "--noinput"]),
        ("import_tools", ["import_tools", str(catalog_path), "--format", "jsonl", "--no-rebuild"]),
        ("rebuild_index", ["rebuild_index"]),
        ("create_api_key", ["create_api_key", "bench"]),
    ]
    for name, argv in steps:
        print(f"setup: {name} ...", flush=True)
        output, seconds = manage(env, *argv)
        report["seconds"][name] = seconds
        report["output"][name] = output if name != "create_api_key" else "(key written to the work dir)"
        last_line = output.splitlines()[-1] if output and name != "create_api_key" else ""
        print(f"setup: {name} {seconds:.1f} s {last_line}", flush=True)
        if name == "create_api_key":
            (work_dir / "api_key").write_text(output.splitlines()[-1].strip())
    return report


def start_server(args: argparse.Namespace, env: dict[str, str], work_dir: pathlib.Path) -> subprocess.Popen[bytes]:
    try:
        httpx.get(f"http://127.0.0.1:{args.port}/healthz", timeout=1.0)
        sys.exit(f"port {args.port} is already in use; pass --port")
    except httpx.HTTPError:
        pass
    log = open(work_dir / "gunicorn.log", "ab")  # noqa: SIM115 - lives as long as the server
    return subprocess.Popen(
        [
            str(GUNICORN),
            "toolrec_site.wsgi",
            "--bind",
            f"127.0.0.1:{args.port}",
            "--workers",
            str(args.workers),
            "--threads",
            str(args.threads),
            "--access-logfile",
            "-",
        ],
        cwd=ROOT,
        env={**env, "TOOLREC_WARMUP": "true"},
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,  # Ctrl-C reaches us only; we stop it in `finally`
    )


def wait_healthy(base_url: str, server: subprocess.Popen[bytes], work_dir: pathlib.Path) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    last = ""
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = (work_dir / "gunicorn.log").read_text(errors="replace")[-3000:]
            sys.exit(f"gunicorn exited with {server.returncode}:\n{tail}")
        try:
            response = httpx.get(f"{base_url}/healthz", timeout=5.0)
            body = response.json()
            if response.status_code == 200 and body.get("snapshot"):
                return body
            last = response.text[:300]
        except (httpx.HTTPError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.5)
    sys.exit(f"/healthz not ready after 180 s: {last}")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


# -- learning ---------------------------------------------------------------------------------

# Run in `manage.py shell -c` (the server exposes no learned-state version): the newest
# published state and the size of what was learned.
LEARNING_STATUS = """
import json
from django.db.models import Count, Q
from feedback.models import Recommendation, UsageEvent
from recommender.learning.models import CoUse, UserToolStats
from recommender.learning.models import LearningState, MemoryEntry
state = LearningState.objects.order_by("-pk").values(
    "pk", "created_at", "recommendations_learned", "events_learned", "learn_seconds").first()
print(json.dumps({
    "latest_state": state and {**state, "created_at": state["created_at"].isoformat()},
    "recommendations": Recommendation.objects.aggregate(
        total=Count("pk"), unlearned=Count("pk", filter=Q(learned_at=None))),
    "usage_events": UsageEvent.objects.aggregate(
        total=Count("pk"), used=Count("pk", filter=Q(used=True)), unlearned=Count("pk", filter=Q(learned_at=None)),
        explicit=Count("pk", filter=Q(source="explicit")), implicit=Count("pk", filter=Q(source="implicit"))),
    "memory_entries": MemoryEntry.objects.count(),
    "user_tool_stats": UserToolStats.objects.count(),
    "co_use_pairs": CoUse.objects.count(),
}))
"""
# Learn everything pending now, as the Celery task would, without waiting for the delay.
LEARN_PENDING = """
import json, time
from recommender.learning.learner import learning_batch
started, batches = time.perf_counter(), []
while (outcome := learning_batch(delay_seconds=0)) is not None:
    batches.append([outcome.version, outcome.recommendations, outcome.events, outcome.seconds])
print(json.dumps({"batches": batches, "seconds": time.perf_counter() - started}))
"""


def manage_json(env: dict[str, str], code: str) -> dict[str, Any] | None:
    """Run code in `manage.py shell -c` and read the JSON it prints last; None (and a note) on failure."""
    try:
        done = subprocess.run(
            [str(PY), "manage.py", "shell", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        lines = done.stdout.strip().splitlines()
        if done.returncode == 0 and lines:
            return json.loads(lines[-1])
        print(f"NOTE: manage.py shell failed ({done.returncode}): {done.stderr.strip()[-600:]}")
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        print(f"NOTE: manage.py shell failed: {type(exc).__name__}: {exc}")
    return None


def status_line(status: dict[str, Any] | None) -> str:
    if status is None:
        return "learned state: unknown"
    state, ev, recs = status["latest_state"], status["usage_events"], status["recommendations"]
    published = (
        f"learned state v{state['pk']} ({state['recommendations_learned']} recommendations, "
        f"{state['events_learned']} events learned, by the state's counters)"
        if state
        else "no learned state published"
    )
    return (
        f"{published}; log: {recs['total']} recommendations ({recs['unlearned']} not learned yet), "
        f"{ev['total']} usage events ({ev['explicit']} explicit, {ev['implicit']} implicit, {ev['unlearned']} "
        f"not learned yet); {status['memory_entries']} context memory entries, {status['user_tool_stats']} "
        f"user-tool rows, {status['co_use_pairs']} co-use pairs"
    )


class LearningProbe:
    """Reads the published learned states straight from the database at a phase's edges.

    A `manage.py shell` takes seconds, in which the learner (several versions a second under
    load, keeping only about the last 20) would already have deleted the version to count from.
    """

    def __init__(self, database_url: str, work_dir: pathlib.Path) -> None:
        scheme = urllib.parse.urlsplit(database_url).scheme.split("+")[0] if database_url else "sqlite"
        if scheme.startswith("postgres"):
            import psycopg

            url = urllib.parse.urlunsplit(urllib.parse.urlsplit(database_url)._replace(scheme="postgresql"))
            self.db: Any = psycopg.connect(url, autocommit=True)
            self.mark = "%s"
        elif scheme == "sqlite":
            import sqlite3

            path = urllib.parse.urlsplit(database_url).path if database_url else str(work_dir / "toolrec.sqlite3")
            self.db, self.mark = sqlite3.connect(path, isolation_level=None), "?"
        else:
            raise ValueError(f"no probe for {scheme} databases")
        self.sqlite = self.mark == "?"

    def _rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.sqlite:  # Django keeps aware datetimes in SQLite as naive UTC text
            params = tuple(
                p.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(p, dt.datetime) else p
                for p in params
            )
        return list(self.db.execute(sql.replace("%s", self.mark), params).fetchall())

    def latest(self) -> int:
        return int(self._rows("SELECT COALESCE(MAX(id), 0) FROM recommender_learningstate")[0][0])

    def phase(self, first: int, t0: float, t1: float) -> dict[str, Any]:
        """What was learned and published between t0 and t1 (epoch seconds); `first` was the
        newest version at t0. Call at once after t1: later versions would count too."""
        last = self.latest()
        since, until = dt.datetime.fromtimestamp(t0, dt.UTC), dt.datetime.fromtimestamp(t1, dt.UTC)
        kept = self._rows(
            "SELECT created_at, learn_seconds FROM recommender_learningstate WHERE id > %s AND id <= %s ORDER BY id",
            first,
            last,
        )
        learned = {
            table: self._rows(f"SELECT COUNT(*) FROM {table} WHERE learned_at >= %s AND learned_at <= %s", since, until)
            for table in ("feedback_recommendation", "feedback_usageevent")
        }
        at = [
            (c if isinstance(c, dt.datetime) else dt.datetime.fromisoformat(c).replace(tzinfo=dt.UTC)) for c, _ in kept
        ]
        return {
            "versions_published": last - first,
            "from_version": first,
            "to_version": last,
            "recommendations_learned": learned["feedback_recommendation"][0][0],
            "events_learned": learned["feedback_usageevent"][0][0],
            # of the versions the learner still keeps: when each was published, how long it took to learn
            "published_at_seconds": [round(a.timestamp() - t0, 2) for a in at],
            "learn_ms": [round(secs * 1000, 1) for _, secs in kept],
        }

    def close(self) -> None:
        self.db.close()


def print_phase_learning(learning: dict[str, Any]) -> None:
    learn_ms, at = learning["learn_ms"], learning["published_at_seconds"]
    kept = (
        f"; of the {len(at)} the server still keeps: published {at[0]:.1f} to {at[-1]:.1f} s into the "
        f"phase, learning took p50 {np.median(learn_ms):.0f} max {max(learn_ms):.0f} ms a batch"
        if at
        else ""
    )
    print(
        f"learning: {learning['versions_published']} learned-state versions published during the phase "
        f"(v{learning['from_version']} -> v{learning['to_version']}), {learning['recommendations_learned']} "
        f"recommendations and {learning['events_learned']} usage events learned{kept}"
    )


def seed_learning(
    args: argparse.Namespace,
    env: dict[str, str],
    base_url: str,
    key: str,
    source: SessionSource,
    feedback: FeedbackPoster,
    probe: LearningProbe | None,
) -> dict[str, Any]:
    """Fill the learned state before measuring: recommendations with explicit feedback, then
    learn all that is pending and give the web processes time to swap the new state in."""
    report: dict[str, Any] = {}
    if args.seed_feedback:
        clients = max(2, args.workers * 2)
        print(f"seeding: {args.seed_feedback} recommendations with feedback over {clients} connections ...", flush=True)
        started = time.perf_counter()
        rows = run_concurrent(base_url, key, source, clients, 0, args.seed_feedback, "seed", feedback)
        report.update(
            seconds=time.perf_counter() - started,
            requests=len(rows),
            errors=sum(r["status"] != 200 for r in rows),
            feedback=feedback.summary("seed", rows),
        )
        print(
            f"seeding: {len(rows)} recommendations in {report['seconds']:.1f} s, {report['errors']} errors; "
            + feedback_line(report["feedback"])
        )
    if probe is not None:  # let the server's own learners finish first: two at once can lose an update
        report["quiet_after_seconds"] = wait_learning_quiet(probe)
        print(
            f"the server's learners published their last state {report['quiet_after_seconds']:.1f} s after the seeding"
        )
    learned = manage_json(env, LEARN_PENDING)
    report["learn_pending"] = learned
    if learned is not None:
        recs, events = sum(b[1] for b in learned["batches"]), sum(b[2] for b in learned["batches"])
        print(
            f"learned what was pending: {len(learned['batches'])} batches, {recs} recommendations, "
            f"{events} events in {learned['seconds']:.1f} s"
        )
    time.sleep(3)  # web processes look for a newer state every LEARNING_CHECK_SECONDS (1 s) and swap it in
    return report


def wait_learning_quiet(probe: LearningProbe, quiet: float = 3.0, limit: float = 60.0) -> float:
    """Seconds until no new learned state was published for `quiet` seconds (or `limit`)."""
    started = last_change = time.monotonic()
    version = probe.latest()
    while time.monotonic() - last_change < quiet and time.monotonic() - started < limit:
        time.sleep(0.25)
        if (now := probe.latest()) != version:
            version, last_change = now, time.monotonic()
    return last_change - started


def start_worker(env: dict[str, str], work_dir: pathlib.Path, run_id: str) -> tuple[subprocess.Popen[bytes], str]:
    """A Celery worker with beat, as production runs it; a fresh beat schedule per run, so no
    periodic task (an index rebuild, a ranker training) comes due merely because the last run was long ago."""
    name = f"bench-{run_id}@{platform.node()}"
    schedule = work_dir / f"celerybeat-schedule-{run_id}"
    log = open(work_dir / "celery.log", "ab")  # noqa: SIM115 - lives as long as the worker
    worker = subprocess.Popen(
        [
            *(str(CELERY), "-A", "toolrec_site", "worker", "--beat", "-l", "warning", "--concurrency", "1"),
            *("--hostname", name, "--schedule", str(schedule)),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    return worker, name


def wait_worker(broker_url: str, name: str, worker: subprocess.Popen[bytes], work_dir: pathlib.Path) -> float:
    from celery import Celery

    started = time.perf_counter()
    control = Celery(broker=broker_url).control
    while time.perf_counter() - started < 180:
        if worker.poll() is not None:
            tail = (work_dir / "celery.log").read_text(errors="replace")[-3000:]
            sys.exit(f"the celery worker exited with {worker.returncode}:\n{tail}")
        try:
            if control.ping(destination=[name], timeout=1.0):
                return time.perf_counter() - started
        except Exception as exc:  # a broker not up yet: try again until the deadline
            print(f"waiting for the celery worker: {type(exc).__name__}: {exc}")
            time.sleep(1.0)
    sys.exit(f"the celery worker {name} did not answer a ping in 180 s; see {work_dir / 'celery.log'}")


def stop_worker(worker: subprocess.Popen[bytes], work_dir: pathlib.Path, run_id: str) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)  # warm shutdown: the running task finishes
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)  # its own session (start_new_session): pool and beat too
            worker.wait(timeout=10)
    for path in work_dir.glob(f"celerybeat-schedule-{run_id}*"):
        path.unlink(missing_ok=True)


# -- main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tools", type=int, default=10_000, help="catalog size (default 10000)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--work-dir", type=pathlib.Path, default=ROOT / "var" / "bench")
    p.add_argument("--database-url", default="", help="default: $DATABASE_URL, else SQLite in the work dir")
    p.add_argument("--redis-url", default="", help="default: no Redis (local-memory cache per worker)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--requests", type=int, default=300, help="phase (a): sequential requests, one client")
    p.add_argument("--clients", type=int, default=8, help="phase (b): concurrent clients")
    p.add_argument("--duration", type=float, default=30.0, help="phase (b): seconds")
    p.add_argument("--concurrent-requests", type=int, default=0, help="phase (b): a request count instead")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--repeat-queries", action="store_true", help="cycle a small pool: the warm-cache case")
    p.add_argument("--repeat-pool", type=int, default=64)
    p.add_argument("--skip-setup", action="store_true", help="reuse a prepared work dir (only migrate runs)")
    p.add_argument(
        "--learning", action="store_true", help="seed feedback, then post feedback and learn while measuring"
    )
    p.add_argument("--seed-feedback", type=int, default=2000, help="--learning: recommendations with feedback first")
    p.add_argument("--learn-delay", type=float, default=2.0, help="--learning: the server's LEARN_DELAY_SECONDS")
    p.add_argument("--broker-url", default="", help="CELERY_BROKER_URL; starts a Celery worker with beat for the run")
    p.add_argument("--json", type=pathlib.Path, default=ROOT / "bench" / "results" / "recommend_latency.json")
    return p.parse_args()


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the run like Ctrl-C: through `finally`, server stopped


def log_problems(path: pathlib.Path, offset: int) -> dict[str, Any]:
    """Tracebacks and ERROR lines a log got since `offset` (background failures show only there)."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return {"tracebacks": 0, "error_lines": []}
    errors = [line for line in lines if "ERROR" in line or "Error:" in line or "Exception:" in line]
    return {"tracebacks": sum("Traceback" in line for line in lines), "error_lines": list(dict.fromkeys(errors))[:5]}


def _size(path: pathlib.Path) -> int:
    return path.stat().st_size if path.exists() else 0


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    args = parse_args()
    work_dir = args.work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:12]
    env, db_kind = bench_env(args, work_dir, run_id)
    info = machine_info()
    learning = f"on (delay {args.learn_delay:g} s, {args.seed_feedback} seeded)" if args.learning else "off"
    background = "a Celery worker with beat" if args.broker_url else "the web processes"
    print(
        f"toolrec recommend latency, commit {info['git_commit']}, {info['nproc']} CPUs ({info['cpu_model']}), "
        f"{info['ram_gb']} GB, load {info['load_average_at_start'][0]:.2f}, db {db_kind}, "
        f"redis {'yes' if args.redis_url else 'no'}, {args.workers} workers x {args.threads} threads, "
        f"learning {learning}, background work in {background}"
    )
    if args.skip_setup:  # migrate still: the code under test may have moved on since the work dir was made
        setup_report = {"skipped": True, "seconds": {"migrate": manage(env, "migrate", "--noinput")[1]}}
    else:
        setup_report = setup(args, env, db_kind, work_dir)
    key_file = work_dir / "api_key"
    if not key_file.exists():
        key_file.write_text(manage(env, "create_api_key", "bench")[0].splitlines()[-1].strip())
    key = key_file.read_text().strip()

    catalog_tools = (
        _read_jsonl(work_dir / f"catalog_{args.tools}_seed{args.seed}.jsonl")
        if (work_dir / f"catalog_{args.tools}_seed{args.seed}.jsonl").exists()
        else []
    )
    categories = {t["id"]: t["category"] for t in catalog_tools if t.get("category")}
    queries, seed_queries = load_queries(args.seed), []
    if args.learning and args.seed_feedback:  # the seeding's queries are never sent in a measured phase
        n_seed = min(args.seed_feedback, len(queries) // 2)
        queries, seed_queries = queries[:-n_seed], queries[-n_seed:]
    sessions = build_sessions(queries, categories, args.seed)
    source = SessionSource(sessions, pool=args.repeat_pool if args.repeat_queries else 0)
    feedback = FeedbackPoster() if args.learning else None

    base_url = f"http://127.0.0.1:{args.port}"
    logs = {name: (work_dir / name, _size(work_dir / name)) for name in ("gunicorn.log", "celery.log")}
    server = start_server(args, env, work_dir)
    worker: subprocess.Popen[bytes] | None = None
    probe: LearningProbe | None = None
    results: dict[str, Any] = {
        "benchmark": "recommend_latency",
        "run_id": run_id,
        "machine": info,
        "config": {
            k: str(v) if isinstance(v, pathlib.Path) else v
            for k, v in vars(args).items()
            if k not in ("database_url", "redis_url", "broker_url")
        },
        "db_kind": db_kind,
        "redis": bool(args.redis_url),
        "learning": args.learning,
        "background": "celery worker with beat" if args.broker_url else "in the web processes",
        "setup": setup_report,
    }
    try:
        if args.broker_url:  # started with the server, so the two load their code at the same time
            worker, worker_name = start_worker(env, work_dir, run_id)
        started = time.perf_counter()
        health = wait_healthy(base_url, server, work_dir)
        results["server_start_seconds"] = time.perf_counter() - started
        results["health"] = health
        served = health["snapshot"]["tools"]
        print(
            f"server up in {results['server_start_seconds']:.1f} s, snapshot v{health['snapshot']['version']} "
            f"with {served} tools, checks {health['checks']}"
        )
        if served != args.tools:
            print(f"NOTE: the served snapshot has {served} tools, not --tools {args.tools} (a reused database?)")
        if worker is not None:
            ready = wait_worker(args.broker_url, worker_name, worker, work_dir)
            print(f"celery worker {worker_name} answered a ping after {ready:.1f} s")
        if args.learning:
            try:
                probe = LearningProbe(env.get("DATABASE_URL", ""), work_dir)
            except Exception as exc:  # a benchmark of latency first: the count of versions is a bonus
                print(f"NOTE: learned versions per phase not counted: {type(exc).__name__}: {exc}")
            seed_sessions = build_sessions(seed_queries, categories, args.seed + 100)
            seed_source = SessionSource(seed_sessions) if seed_sessions else source
            results["seeding"] = seed_learning(args, env, base_url, key, seed_source, feedback, probe)
        # Warm-cache mode: every pool text through every worker (a local-memory cache is per process).
        warm = args.warmup if not args.repeat_queries else 2 * len(source._sessions) * max(1, args.workers)
        warm_clients = max(2, args.workers * 2)
        warm_rows = run_concurrent(base_url, key, source, warm_clients, 0, warm, "warmup", feedback)
        print(
            f"warm-up: {len(warm_rows)} requests over {warm_clients} connections, "
            f"{sum(r['status'] != 200 for r in warm_rows)} errors"
        )
        if warm_rows and all(r["status"] != 200 for r in warm_rows):
            sys.exit(f"every warm-up request failed, e.g. {warm_rows[0]['error']}; see {work_dir / 'gunicorn.log'}")
        if args.learning:
            results["learning_before"] = manage_json(env, LEARNING_STATUS)
            print(f"before measuring: {status_line(results['learning_before'])}")
        phases: dict[str, Any] = {}
        raw: list[dict[str, Any]] = []
        amount = f"{args.concurrent_requests} requests" if args.concurrent_requests else f"{args.duration:.0f} s"
        with_feedback = ", each posting feedback" if args.learning else ""
        plan = [
            ("sequential", f"(a) 1 client, {args.requests} requests{with_feedback}"),
            ("concurrent", f"(b) {args.clients} clients, {amount}{with_feedback}"),
        ]
        for phase, title in plan:
            first_version = probe.latest() if probe else 0
            with CpuMeter(server.pid, worker.pid if worker else None) as meter:
                t0, epoch0 = time.perf_counter(), time.time()
                if phase == "sequential":
                    rows = run_sequential(base_url, key, source, args.requests, phase, feedback)
                else:
                    rows = run_concurrent(
                        base_url, key, source, args.clients, args.duration, args.concurrent_requests, phase, feedback
                    )
                wall, epoch1 = time.perf_counter() - t0, time.time()
            learned = probe.phase(first_version, epoch0, epoch1) if probe else None
            phases[phase] = summarise(rows, wall, meter.cores)
            phases[phase]["load_average_after"] = os.getloadavg()
            print_phase(title, phases[phase])
            if feedback is not None:
                phases[phase]["feedback"] = feedback.summary(phase, rows)
                print(feedback_line(phases[phase]["feedback"]))
            if learned is not None:
                phases[phase]["learning"] = learned
                print_phase_learning(learned)
            raw += rows
        if args.learning:
            results["learning_after"] = manage_json(env, LEARNING_STATUS)
            print(f"\nafter measuring: {status_line(results['learning_after'])}")
        repeated = sum(p["repeated_texts"] for p in phases.values())
        texts_note = (
            f"query texts cycled from a pool of {len(source._sessions)} sessions (warm embedding cache)"
            if args.repeat_queries
            else f"each query text sent once per run; {repeated} embedded texts repeated an earlier request's"
            + (" (queries ran out and wrapped)" if source.wrapped else "")
        )
        counter = "read_conversation" if read_conversation else "nothing (engine import failed)"
        print(f"\n{texts_note}; texts counted with {counter}")
        hidden = ("slate", "names", "recommendation_id")
        results.update(
            phases=phases,
            texts=texts_note,
            raw=[
                {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k not in hidden} for r in raw
            ],
        )
    finally:
        STOP.set()
        if probe is not None:
            probe.close()
        stop_server(server)
        if worker is not None:
            stop_worker(worker, work_dir, run_id)
    results["log_problems"] = {name: log_problems(path, offset) for name, (path, offset) in logs.items()}
    for name, found in results["log_problems"].items():
        if found["tracebacks"] or found["error_lines"]:
            print(f"{name}: {found['tracebacks']} tracebacks during the run, e.g. {found['error_lines'][:2]}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1, default=str))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (the server and worker were stopped)")
