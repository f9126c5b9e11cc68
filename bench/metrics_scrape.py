"""What one /metrics scrape costs on PostgreSQL with a busy log: the success gauges'
queries (`toolrec_site.success_metrics`, on the dashboard's rollup rows, which the periodic
rollup task writes first) and the whole view, uncached and cached.

A benchmark, not a test: it fills a throwaway database (dropped at the end unless --keep)
with a generated log, prints a table and writes JSON with the machine.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/toolrec \\
      .venv/bin/python bench/metrics_scrape.py [--recommendations 200000] [--window-share 0.3] \\
      [--json bench/results/metrics_scrape.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _database(base_url: str) -> str:
    import psycopg

    name = f"toolrec_bench_metrics_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def _drop(base_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fill(recommendations: int, tools: int, window_share: float, learn_delay: float) -> dict[str, int]:
    """Recommendations before the window's end: window_share of them 15 to 45 minutes into
    the hour's window (a slow fill does not move them out), the others 70 minutes to 3 hours
    before; 5 impressions each, a use on every tenth shown tool."""
    from django.db import connection

    from access.services import api_key_create
    from catalog.models import Tool

    api_key, _ = api_key_create(name="bench")
    Tool.objects.bulk_create(
        [Tool(name=f"tool_{i}", description="bench", content_hash="x") for i in range(tools)], batch_size=5000
    )
    first_tool = Tool.objects.order_by("pk").values_list("pk", flat=True)[0]
    features = json.dumps([0.0] * 17 + [1.0] + [0.0] * 5)
    in_window = int(recommendations * window_share)
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO feedback_recommendation (id, api_key_id, user_id, conversation_id, experiment_key, variant,
                policy, snapshot_version, k, query_text, called_tools, called_tool_ids, latency_ms, created_at,
                learned_at)
            SELECT gen_random_uuid(), %s, '', '', '', 'default', 'bandit', 1, 5, '', '[]', '[]', 10,
                   now() - make_interval(secs => %s)
                   - CASE WHEN g <= %s THEN make_interval(secs => 900 + random() * 1800)
                          ELSE make_interval(secs => 4200 + random() * 7200) END,
                   now()
            FROM generate_series(1, %s) g
            """,
            [api_key.pk, learn_delay, in_window, recommendations],
        )
        cur.execute(
            """
            INSERT INTO feedback_impression (recommendation_id, tool_id, rank, score, propensity, features)
            SELECT r.id, %s + ((abs(hashtext(r.id::text)::bigint) + s * 7919) %% %s), s, 1.0 / s, 1.0,
                   CASE WHEN s = 5 THEN %s::jsonb ELSE '[]'::jsonb END
            FROM feedback_recommendation r, generate_series(1, 5) s
            """,
            [first_tool, tools, features],
        )
        cur.execute(
            """
            INSERT INTO feedback_usageevent (event_id, recommendation_id, tool_id, used, reward, source, created_at,
                learned_at)
            SELECT 'bench:' || i.id, i.recommendation_id, i.tool_id, true, 1.0, 'explicit', now(), now()
            FROM feedback_impression i WHERE i.id % 10 = 0
            """
        )
        # the learner's per-tool counts: half the catalog recommended in the last week
        cur.execute(
            """
            INSERT INTO recommender_toolstats (tool_id, times_recommended, times_used, last_recommended_at)
            SELECT id, 10, 1, now() - make_interval(days => (id % 14)::int) FROM catalog_tool
            """
        )
        cur.execute("ANALYZE")
    return {"recommendations": recommendations, "in_window": in_window, "impressions": recommendations * 5}


def _timed(step: Any, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        step()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recommendations", type=int, default=200_000)
    parser.add_argument("--tools", type=int, default=10_000)
    parser.add_argument("--window-share", type=float, default=0.3, help="share of them in the last hour's window")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    args = parser.parse_args()
    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database (a throwaway one is created beside it)")
    name = _database(base_url)
    os.environ["DATABASE_URL"] = base_url.rsplit("/", 1)[0] + "/" + name
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toolrec_site.settings")
    os.environ.setdefault("SECRET_KEY", "bench")
    os.environ.pop("REDIS_URL", None)  # measure the computation, not a cache hit
    os.environ["METRICS_WINDOW_SECONDS"] = "3600"  # the view's window is the one generated and timed
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.cache import cache
        from django.core.management import call_command
        from django.test import Client

        from toolrec_site.scrape import SUCCESS_KEY
        from toolrec_site.success_metrics import success_metrics

        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        size = _fill(args.recommendations, args.tools, args.window_share, settings.LEARN_DELAY_SECONDS)
        fill_s = time.perf_counter() - started
        from dashboard.tasks import rollup_dashboard
        from feedback.models import Recommendation

        started = time.perf_counter()
        rollup_dashboard()  # what the periodic task does: the gauges read its rows
        rollup_s = time.perf_counter() - started
        found = success_metrics(window_seconds=3600)
        assert found.window_end is not None
        in_window = Recommendation.objects.filter(
            created_at__gte=found.window_end - timedelta(seconds=found.window_seconds), created_at__lt=found.window_end
        ).count()
        assert found.recommendations == in_window, (found.recommendations, in_window, size)
        compute = _timed(lambda: success_metrics(window_seconds=3600), args.runs)
        client = Client()

        def uncached() -> None:
            cache.delete(SUCCESS_KEY)
            assert client.get("/metrics").status_code == 200

        view_uncached = _timed(uncached, args.runs)
        view_cached = _timed(lambda: client.get("/metrics"), args.runs)
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            _drop(base_url, name)
    rows = {"success_metrics()": compute, "/metrics, computing": view_uncached, "/metrics, cached": view_cached}
    print(
        f"{size['recommendations']:,} recommendations ({size['in_window']:,} in the window), "
        f"{size['impressions']:,} impressions, {args.tools:,} tools; filled in {fill_s:.0f} s, "
        f"rolled up in {rollup_s:.1f} s ({found.recommendations:,} in the gauges' window)"
    )
    print(f"{'step':<24}{'median ms':>12}{'max ms':>10}")
    for label, times in rows.items():
        print(f"{label:<24}{sorted(times)[len(times) // 2]:>12.1f}{max(times):>10.1f}")
    print(f"usage rate {found.usage_rate:.4f}, hit rate {found.hit_rate:.4f}, coverage {found.coverage:.4f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
            "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
            "config": {"window_seconds": 3600, "window_share": args.window_share, "database": "postgresql"},
            "size": {**size, "tools": args.tools, "in_gauge_window": found.recommendations},
            "rollup_seconds": round(rollup_s, 2),
            "runs": args.runs,
            "ms": {label: {"median": sorted(t)[len(t) // 2], "max": max(t), "all": t} for label, t in rows.items()},
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
