"""Tenant isolation under mixed traffic, and what the tenant mask costs the engine.

Usage (a throwaway database is created and dropped; the configured one is not touched):

    DEBUG=1 .venv/bin/python bench/tenancy_isolation.py [--requests 1000] [--mask-tools 10000]

1. Two tenants over one catalog and one index (bench/tenancy/world.py). Tenant A sends
   --requests mixed requests (recommendations with filters naming B's tools, explicit and
   implicit feedback naming B's tools, listings, reads and writes of B's tool ids, creates
   with B's names); then A's key limited to the namespace "mirror" sends --requests
   recommendations with explain on. Every answer is checked for B's tools (ids and a marker
   word), every listing's count against an independent count, and the database for anything
   of A's that touched a B tool (bench/tenancy/mixed.py). Violations must be 0.
2. The engine's search over --mask-tools random tools with no mask, with a tenant mask that
   hides 10% of the rows (another tenant's), and with a one-namespace policy mask (5% left),
   plus the cost of computing the mask itself.

Prints a table and writes JSON; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toolrec_site.settings")
os.environ.setdefault("DEBUG", "true")

import django

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connections  # noqa: E402
from django.test.utils import override_settings, setup_databases, teardown_databases  # noqa: E402

from recommender.engine.ranking_metrics import percentiles  # noqa: E402
from toolrec_site.env import Rate  # noqa: E402


def _isolation(requests: int) -> dict[str, Any]:
    from bench.tenancy.mixed import b_fingerprint, namespace_limited, tenant_a_mixed, untouched_violations
    from bench.tenancy.world import world_build
    from recommender.indexing.snapshots import snapshot_build

    world = world_build()
    snapshot = snapshot_build()
    before = b_fingerprint(world)
    mixed = tenant_a_mixed(world, requests, random.Random(1))
    stored = untouched_violations(world, before)
    limited = namespace_limited(world, requests, random.Random(2))
    return {
        "tools": snapshot.tool_count if snapshot else None,
        "tenant_a_requests": dict(sorted(mixed.kinds.items())),
        "tenant_a_statuses": dict(sorted(mixed.statuses.items())),
        "tenant_a_violations": mixed.violations + stored,
        "tenant_a_tools_returned": mixed.tools_seen,
        "tenant_a_recommend_ms": percentiles(mixed.recommend_ms, (50, 99)),
        "namespace_limited_requests": sum(limited.kinds.values()),
        "namespace_limited_statuses": dict(limited.statuses),
        "namespace_limited_violations": limited.violations,
        "namespace_limited_tools_returned": limited.tools_seen,
        "namespace_limited_recommend_ms": percentiles(limited.recommend_ms, (50, 99)),
    }


def _interleaved_ms(steps: dict[str, Callable[[], object]], runs: int) -> dict[str, dict[str, float]]:
    """Each step's p50/p99, the steps run in turn (round after round) so that a busy moment
    of a shared machine falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():
        step()  # warm up
    for _ in range(runs):
        for name, step in steps.items():
            started = time.perf_counter()
            step()
            times[name].append((time.perf_counter() - started) * 1000)
    return {name: percentiles(values, (50, 99)) for name, values in times.items()}


def _mask_cost(n: int, runs: int) -> dict[str, dict[str, float]]:
    """The engine's search with and without the masks serving applies, on random tools."""
    from recommender.engine.conversation import read_conversation
    from recommender.engine.retrieval import RetrievalIndex
    from recommender.engine.types import ToolDoc, ToolFilter

    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(3000)]
    docs = [
        ToolDoc(
            key=f"ns{i % 20}/tool_{i}",
            name=f"tool_{i}",
            description=" ".join(rng.choice(words, 12)),
            namespace=f"ns{i % 20}",
        )
        for i in range(n)
    ]
    vectors = rng.standard_normal((n, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = RetrievalIndex.build(docs, vectors)
    context = read_conversation([{"role": "user", "content": " ".join(rng.choice(words, 8))}])
    query = rng.standard_normal((len(context.queries()), 384)).astype(np.float32)
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    tenants = np.where(rng.random(n) < 0.1, 2, 0)  # 10% belong to another tenant
    tenant_mask = (tenants == 0) | (tenants == 1)
    namespace_mask = index.mask(ToolFilter(namespaces=frozenset({"ns3"})))
    assert namespace_mask is not None
    namespace_mask &= tenant_mask
    return _interleaved_ms(
        {
            "search, no mask": lambda: index.search(context, query, n_candidates=200),
            "search, tenant mask (90% rows)": lambda: index.search(
                context, query, n_candidates=200, allowed=tenant_mask
            ),
            "search, namespace policy (5% rows)": lambda: index.search(
                context, query, n_candidates=200, allowed=namespace_mask
            ),
            "mask: tenant + namespace policy": lambda: (
                ((tenants == 0) | (tenants == 1)) & index.mask(ToolFilter(namespaces=frozenset({"ns3"})))
            ),
        },
        runs,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--mask-tools", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", type=Path, default=Path("bench/results/tenancy_isolation.json"))
    parser.add_argument("--mask-only", action="store_true", help="Only the engine's mask cost (no database).")
    args = parser.parse_args()
    if args.mask_only:
        for name, ms in _mask_cost(args.mask_tools, args.runs).items():
            print(f"{name:<40} p50 {ms['p50']:8.3f} ms  p99 {ms['p99']:8.3f} ms")
        return
    connection = connections["default"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = (
        None if connection.vendor == "sqlite" else f"toolrec_bench_tenancy_{os.getpid()}"
    )
    old = setup_databases(verbosity=0, interactive=False, aliases={"default"})  # type: ignore[arg-type]
    try:
        with override_settings(
            SNAPSHOT_DIR=Path(settings.VAR_DIR) / "bench-tenancy-snapshots",
            QDRANT_PATH=Path(settings.VAR_DIR) / "bench-tenancy-qdrant",
            SNAPSHOT_CHECK_SECONDS=0.0,
            LEARNING_AUTO_SCHEDULE=False,
            RATE_LIMITS={"recommend": None, "feedback": None, "catalog_write": Rate(10_000, 60)},
        ):
            isolation = _isolation(args.requests)
    finally:
        from recommender.serving.holders import learned, snapshots
        from recommender.serving.request_signals import request_signals_stop

        for refreshing in (learned, snapshots):
            refreshing.stop()
        request_signals_stop()
        teardown_databases(old, verbosity=0)
    masks = _mask_cost(args.mask_tools, args.runs)
    report = {
        "database": connection.vendor,
        "isolation": isolation,
        "mask_cost_ms": {"tools": args.mask_tools, **masks},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    iso: dict[str, Any] = isolation
    print(f"{'traffic':<34} {'requests':>9} {'tools returned':>15} {'violations':>11} {'p50 ms':>8} {'p99 ms':>8}")
    for label, prefix, count in (
        ("tenant A, mixed", "tenant_a", sum(iso["tenant_a_requests"].values())),
        ("A's key limited to 'mirror'", "namespace_limited", iso["namespace_limited_requests"]),
    ):
        ms = iso[f"{prefix}_recommend_ms"]
        print(
            f"{label:<34} {count:>9} {iso[f'{prefix}_tools_returned']:>15} "
            f"{len(iso[f'{prefix}_violations']):>11} {ms['p50']:>8.1f} {ms['p99']:>8.1f}"
        )
    print(f"\n{'engine, ' + str(args.mask_tools) + ' tools':<40} {'p50 ms':>8} {'p99 ms':>8}")
    for name, mask_ms in masks.items():
        print(f"{name:<40} {mask_ms['p50']:>8.3f} {mask_ms['p99']:>8.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {args.json}")
    violations = iso["tenant_a_violations"] + iso["namespace_limited_violations"]
    if violations:
        print("VIOLATIONS:", *violations[:20], sep="\n  ")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
