"""The Done-when of tenancy, small: mixed traffic of tenant A never returns, counts or
touches a tool of tenant B, and a key limited to one namespace never sees another's tool
(bench/tenancy_isolation.py runs the same with 1,000 requests each)."""

from __future__ import annotations

import random

import pytest

from bench.tenancy.mixed import b_fingerprint, namespace_limited, tenant_a_mixed, untouched_violations
from bench.tenancy.world import World, world_build


@pytest.fixture
def world(db: None) -> World:
    from recommender.indexing.snapshots import snapshot_build
    from recommender.serving.holders import snapshots

    built = world_build(shared_tools=100, b_tools=30, mirror_tools=40)  # small: every tool is embedded
    snapshot_build()
    snapshots.reset()
    return built


def test_mixed_traffic_of_one_tenant_never_returns_counts_or_touches_anothers_tool(world: World) -> None:
    before = b_fingerprint(world)
    outcome = tenant_a_mixed(world, 120, random.Random(7))
    assert outcome.violations == []
    assert untouched_violations(world, before) == []
    # the traffic did exercise every path, and B's tools were real competitors
    assert set(outcome.kinds) == {"recommend", "feedback", "implicit", "list", "detail", "write_b", "create"}
    assert outcome.statuses["recommend 200"] > 30 and outcome.tools_seen > 100
    b_answer = world.client_b.post(
        "/api/v1/recommendations", {"messages": [{"role": "user", "content": world.queries[0]}], "k": 3}, format="json"
    ).json()
    assert {t["tool_id"] for t in b_answer["tools"]} & world.b_tool_ids()


def test_a_key_limited_to_one_namespace_never_sees_another_with_explain_on(world: World) -> None:
    outcome = namespace_limited(world, 60, random.Random(11))
    assert outcome.violations == []
    assert outcome.statuses["recommend (mirror only) 200"] == 60 and outcome.tools_seen > 100
