"""The traffic's content: OpenAI-style conversations built from the shared queries (system
prompt, user request, sometimes an assistant tool call with its result and a follow-up; k 5
or 10; some with user/conversation ids, some with a category filter), handed out as sessions."""

from __future__ import annotations

import random
import re
import threading
import uuid
import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any

from . import DATASETS
from .catalog import read_jsonl

_FUNCTION_CHARS = re.compile(r"[^a-zA-Z0-9_-]+")  # as catalog.models.Tool.function_name

read_conversation: Callable[[list[dict[str, Any]]], Any] | None
try:  # pure code (no Django): tells how many texts each request embeds
    from recommender.engine.conversation import read_conversation as _read_conversation

    read_conversation = _read_conversation
except Exception:  # the engine is being edited by others: count nothing rather than fail
    read_conversation = None

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
    toolbench = read_jsonl(DATASETS / "toolbench" / "queries.jsonl")
    metatool = read_jsonl(DATASETS / "metatool" / "queries.jsonl")
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
        sessions.append(_session(kind, q1, q2, categories, rng))
    return sessions


def _session(
    kind: str, q1: dict[str, Any], q2: dict[str, Any] | None, categories: dict[str, str], rng: random.Random
) -> dict[str, Any]:
    # The draws from `rng` keep their order (the key order below): the same seed gives the same sessions.
    category = next((categories[t] for t in q1["relevant"] if categories.get(t)), "")
    # Most tool-call sessions name their conversation, so the second turn records implicit feedback.
    has_conversation = rng.random() < (0.7 if kind == "tool_call" else 0.2)
    return {
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


def turn_body(session: dict[str, Any], turn: int, slate: list[str]) -> dict[str, Any]:
    """The request body of a session's turn 1 or 2; `slate` is what turn 1 recommended."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": session["system"]},
        {"role": "user", "content": session["q1"]},
    ]
    if turn == 2 and session["kind"] == "tool_call":
        messages += _tool_call(session, slate)
    if turn == 2:
        messages += [{"role": "assistant", "content": session["reply"]}, {"role": "user", "content": session["q2"]}]
    body: dict[str, Any] = {"messages": messages, "k": session["k"]}
    for key in ("conversation_id", "user_id", "category"):
        if session[key]:
            body[key] = session[key]
    return body


def _tool_call(session: dict[str, Any], slate: list[str]) -> list[dict[str, Any]]:
    """The assistant's call of one tool (shown in turn 1, or one relevant to it) and its result."""
    pool = slate if session["from_slate"] and slate else [function_name(t) for t in session["relevant"]]
    name = pool[session["pick"] % len(pool)] if pool else "unknown_tool"
    call_id = f"call_{zlib.crc32((session['q1'] + name).encode()):010d}"
    return [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": call_id, "content": session["tool_result"]},
    ]


class SessionSource:
    """Hands out sessions to client threads; wraps around (and says so) when queries run out."""

    def __init__(self, sessions: list[dict[str, Any]], pool: int = 0) -> None:
        self._sessions = sessions[:pool] if pool else sessions
        self._next = 0
        self._lock = threading.Lock()
        self._texts: Counter[str] = Counter()
        self.wrapped = False

    def __len__(self) -> int:
        return len(self._sessions)

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
