"""Mixed traffic of tenant A through the real API, checked for any trace of tenant B.

Every answer is searched for B's marker word and for B's tool ids (under "id"/"tool_id"),
every listing's count is compared with a count made independently of the code under test
(all tools, filtered in Python), and at the end the database is checked for anything of
A's that touched a B tool (impressions, uses, called tools) and for any change to B's tools.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.tenancy.world import B_MARKER, World
from catalog.models import Tool
from feedback.models import Impression, Recommendation, UsageEvent

RECOMMEND, FEEDBACK, TOOLS = "/api/v1/recommendations", "/api/v1/feedback", "/api/v1/tools"
UNKNOWN_ID = 2_000_000_000


@dataclass
class Outcome:
    kinds: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    recommend_ms: list[float] = field(default_factory=list)
    tools_seen: int = 0

    def check(
        self,
        kind: str,
        response: Any,
        expected: set[int] | None = None,
        forbidden: frozenset[int] | set[int] = frozenset(),
    ) -> Any:
        self.kinds[kind] += 1
        self.statuses[f"{kind} {response.status_code}"] += 1
        if response.status_code >= 500:
            self.violations.append(f"{kind}: server error {response.status_code}")
        text = response.content.decode()
        if B_MARKER in text:
            self.violations.append(f"{kind}: B's marker in the answer")
        body = response.json() if text else None
        ids = set(_ids(body))
        if ids & forbidden:
            self.violations.append(f"{kind}: B tool ids {sorted(ids & forbidden)[:5]} in the answer")
        if expected is not None and not ids <= expected:
            self.violations.append(f"{kind}: ids outside what the key may see: {sorted(ids - expected)[:5]}")
        return body


def _ids(value: Any) -> list[int]:
    found: list[int] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("id", "tool_id") and isinstance(item, int):
                found.append(item)
            else:
                found.extend(_ids(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_ids(item))
    return found


def _visible_to_a(world: World, namespace: str | None = None, search: str | None = None) -> int:
    """The count tool_list must give A, made without the selectors: every tool, in Python."""
    count = 0
    for tenant_id, ns, name, description in Tool.objects.values_list("tenant_id", "namespace", "name", "description"):
        if tenant_id not in (None, world.a.pk) or (namespace and ns != namespace):
            continue
        if search and search.lower() not in name.lower() and search.lower() not in description.lower():
            continue
        count += 1
    return count


def _recommend_payload(world: World, rng: random.Random, explain: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "messages": [{"role": "user", "content": rng.choice(world.queries)}],
        "k": rng.randint(1, 10),
        "explain": explain,
    }
    b_names = ["default/g_web_search", "globex/web_search", "g_news_search", "default/web_search"]
    payload.update(
        rng.choice(
            [
                {},
                {"namespace": "default"},
                {"namespace": "globex"},
                {"namespace": "mirror"},
                {"filters": {"include": rng.sample(b_names, 2)}},
                {"filters": {"exclude": rng.sample(b_names, 2)}},
                {"category": rng.choice(["search", "mail", "code", "finance"])},
            ]
        )
    )
    return payload


def tenant_a_mixed(world: World, n: int, rng: random.Random) -> Outcome:
    """n requests of tenant A's full key: recommendations (with filters naming B's tools),
    feedback (naming B's tools too), implicit uses of B's tools, listings, reads, writes."""
    out, forbidden = Outcome(), world.b_tool_ids()
    b_ids, created = sorted(forbidden), set()
    recs: list[tuple[str, list[str], str]] = []
    unknown = world.client_a.get(f"{TOOLS}/{UNKNOWN_ID}").json()
    client = world.client_a
    for i in range(n):
        kind = rng.choices(
            ["recommend", "feedback", "implicit", "list", "detail", "write_b", "create"], [45, 15, 5, 15, 10, 5, 5]
        )[0]
        if kind in ("feedback", "implicit") and not recs:
            kind = "recommend"
        if kind == "recommend":
            started = time.perf_counter()
            payload = _recommend_payload(world, rng, explain=rng.random() < 0.5)
            payload["conversation_id"] = f"conv-{i}"
            response = client.post(RECOMMEND, payload, format="json")
            out.recommend_ms.append((time.perf_counter() - started) * 1000)
            body = out.check(kind, response, forbidden=forbidden)
            if response.status_code == 200:
                recs.append((body["recommendation_id"], [t["name"] for t in body["tools"]], f"conv-{i}"))
                out.tools_seen += len(body["tools"])
        elif kind == "feedback":
            rec, names, _ = rng.choice(recs)
            tool = rng.choice(names) if names and rng.random() < 0.5 else rng.choice(["g_web_search", "g_news_search"])
            event = {"recommendation_id": rec, "tool": tool, "used": True, "event_id": f"ev-{i}"}
            out.check(kind, client.post(FEEDBACK, event, format="json"), forbidden=forbidden)
        elif kind == "implicit":
            rec, names, conversation = rng.choice(recs)
            calls = [rng.choice(["g_web_search", "g_news_search", "web_search"]), *names[:1]]
            messages = [
                {"role": "user", "content": rng.choice(world.queries)},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": str(j), "type": "function", "function": {"name": c, "arguments": "{}"}}
                        for j, c in enumerate(calls)
                    ],
                },
                {"role": "user", "content": rng.choice(world.queries)},
            ]
            payload = {"messages": messages, "conversation_id": conversation, "k": 5}
            out.check(kind, client.post(RECOMMEND, payload, format="json"), forbidden=forbidden)
        elif kind == "list":
            params: dict[str, str] = rng.choice(
                [{}, {"namespace": "globex"}, {"namespace": "default"}, {"search": "g_"}, {"search": B_MARKER}]
            )
            body = out.check(kind, client.get(TOOLS, {**params, "limit": "50"}), forbidden=forbidden)
            expected = _visible_to_a(world, params.get("namespace"), params.get("search"))
            if body["count"] != expected:
                out.violations.append(f"list {params}: count {body['count']} != {expected}")
        elif kind == "detail":
            response = client.get(f"{TOOLS}/{rng.choice(b_ids)}")
            out.check(kind, response, forbidden=forbidden)
            if (response.status_code, response.json()) != (404, unknown):
                out.violations.append("detail: a B tool answered unlike an unknown one")
        elif kind == "write_b":
            target = f"{TOOLS}/{rng.choice(b_ids)}"
            response = (
                client.patch(target, {"description": "hijacked"}, format="json")
                if rng.random() < 0.5
                else client.delete(target)
            )
            out.check(kind, response, forbidden=forbidden)
            if response.status_code != 404:
                out.violations.append(f"write_b: {response.status_code}, not 404")
        else:
            name = rng.choice(["web_search", "news_search", "image_search"])  # B has them in "globex"
            response = client.post(
                TOOLS, {"namespace": "globex", "name": name, "description": "acme's own"}, format="json"
            )
            out.check(kind, response, forbidden=forbidden)
            if response.status_code != (409 if name in created else 201):
                out.violations.append(f"create globex/{name}: {response.status_code}")
            created.add(name)
    return out


def namespace_limited(world: World, n: int, rng: random.Random) -> Outcome:
    """n recommendations (explain on) of A's key limited to "mirror", with filters that name
    other namespaces: every tool must be one of "mirror"'s."""
    out, mirror, forbidden = Outcome(), world.mirror_tool_ids(), world.b_tool_ids()
    for _ in range(n):
        started = time.perf_counter()
        response = world.client_ns.post(RECOMMEND, _recommend_payload(world, rng, explain=True), format="json")
        out.recommend_ms.append((time.perf_counter() - started) * 1000)
        body = out.check("recommend (mirror only)", response, expected=mirror, forbidden=forbidden)
        if response.status_code == 200:
            out.tools_seen += len(body["tools"])
    return out


def b_fingerprint(world: World) -> list[tuple[Any, ...]]:
    return list(
        Tool.objects.filter(tenant=world.b).order_by("pk").values_list("pk", "content_hash", "enabled", "updated_at")
    )


def untouched_violations(world: World, before: list[tuple[Any, ...]]) -> list[str]:
    """What in the database of A's requests touched a B tool, and whether B's tools changed."""
    forbidden = world.b_tool_ids()
    mine = Recommendation.objects.filter(api_key__tenant=world.a)
    problems = []
    if Impression.objects.filter(recommendation__in=mine, tool_id__in=forbidden).exists():
        problems.append("an impression of A's shows a B tool")
    if UsageEvent.objects.filter(recommendation__in=mine, tool_id__in=forbidden).exists():
        problems.append("a use on a B tool was recorded for A")
    if any(set(ids) & forbidden for ids in mine.values_list("called_tool_ids", flat=True)):
        problems.append("a B tool was logged as called in A's conversation")
    if b_fingerprint(world) != before:
        problems.append("B's tools changed")
    return problems
