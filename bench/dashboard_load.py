"""The dashboard at scale: server time of every page and the rollup of one busy hour, with
millions of impressions in PostgreSQL.

Usage (a throwaway database `<configured name>_<pid>` is created and dropped; the configured
one is not touched):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/toolrec_bench .venv/bin/python bench/dashboard_load.py \\
        [--impressions 10000000] [--tools 10000] [--busy-share 0.01] [--json OUT] [--keep-db NAME]

`--keep-db NAME` uses (and keeps) the database NAME instead: a log already generated there is
reused (migrated, rolled up again), since generating 10 million rows takes minutes.

Generates the log with generate_series in SQL (recommendations of k=5 tools spread over 90
days, popularity skewed, about 6% of impressions used; one busy hour holding `--busy-share`
of all impressions: the default 1% is, at 10M, 100k impressions in an hour, some 22 times the
mean hour of 90 days and well past a daily peak, such as a launch or a batch of agents),
rolls up all 90 days, times the rollup of the busy hour, then times each page's server time
(median of 5 requests through Django's test client, staff signed in: view, queries and
template, no network). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toolrec_site.settings")
os.environ.setdefault("DEBUG", "true")
# Generating millions of rows in one statement outlasts the web processes' statement timeout.
os.environ.setdefault("DB_STATEMENT_TIMEOUT_MS", "0")

import django

django.setup()

from django.db import connection, connections  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402
from django.utils import timezone  # noqa: E402

K = 5
DAYS = 90

TOOLS_SQL = """
INSERT INTO catalog_tool (namespace, name, function_name, description, parameters, category, tags, family, source,
                          extra, enabled, content_hash, created_at, updated_at)
SELECT 'ns' || (g %% 5), 'tool_' || g, 'ns' || (g %% 5) || '__tool_' || g, 'generated tool ' || g, '{}', '', '[]', '',
       'bench', '{}',
       g %% 50 <> 0, md5(g::text), now() - interval '120 days' + (g %% 125) * interval '1 day', now()
FROM generate_series(1, %(tools)s) g
"""

RECOMMENDATIONS_SQL = """
INSERT INTO feedback_recommendation (id, api_key_id, user_id, conversation_id, experiment_key, variant, policy,
    snapshot_version, k, query_text, called_tools, called_tool_ids, call_count, latency_ms, embed_cache_hits,
    embed_cache_lookups, personalized, best_similarity, created_at, learned_at)
SELECT md5('r' || g)::uuid, (%(keys)s::int[])[1 + g %% 3], 'u' || (g %% 20000), '', '', 'default', 'bandit', 1, %(k)s,
       '', '[]', '[]', 0, 8 + 60 * random() ^ 3, (g %% 3 = 0)::int, 1, g %% 9 = 0, 0.15 + 0.7 * random(),
       CASE WHEN g <= %(busy)s THEN %(busy_start)s + interval '1 hour' * (g::float / (%(busy)s + 1))
            ELSE now() - interval '1 day' * %(days)s * random() END,
       now()
FROM generate_series(1, %(recs)s) g
"""

IMPRESSIONS_SQL = """
INSERT INTO feedback_impression (recommendation_id, tool_id, rank, score, propensity, features, explored)
SELECT r.id, %(first_tool)s + (base + rk * 1543) %% %(tools)s, rk, 1.0 / rk, 1.0, '[]', rk = %(k)s AND random() < 0.2
FROM (SELECT id, floor(%(tools)s * random() ^ 3)::int AS base FROM feedback_recommendation) r
CROSS JOIN generate_series(1, %(k)s) rk
"""

USES_SQL = """
INSERT INTO feedback_usageevent (event_id, recommendation_id, tool_id, used, reward, source, created_at, learned_at)
SELECT 'e' || i.id, i.recommendation_id, i.tool_id, true, NULL, 'explicit', r.created_at + interval '30 seconds', now()
FROM feedback_impression i JOIN feedback_recommendation r ON r.id = i.recommendation_id
WHERE random() < 0.12 / i.rank
"""


def _sql(sql: str, **params: Any) -> float:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    return time.perf_counter() - started


def generate(*, impressions: int, tools: int, busy_share: float) -> dict[str, Any]:
    from access.services import api_key_create
    from catalog.models import Tool
    from recommender.indexing.models import IndexSnapshot

    keys = [api_key_create(name=f"agent {n}")[0].pk for n in range(3)]
    timings = {"tools": _sql(TOOLS_SQL, tools=tools)}
    first_tool = Tool.objects.order_by("pk").values_list("pk", flat=True)[0]
    recs = impressions // K
    busy = int(recs * busy_share)
    busy_start = (timezone.now() - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    timings["recommendations"] = _sql(
        RECOMMENDATIONS_SQL, keys=keys, k=K, busy=busy, busy_start=busy_start, days=DAYS, recs=recs
    )
    timings["impressions"] = _sql(IMPRESSIONS_SQL, first_tool=first_tool, tools=tools, k=K)
    timings["uses"] = _sql(USES_SQL)
    timings["analyze"] = _sql("ANALYZE")
    for n in range(20):  # a rebuild history for the catalog page
        IndexSnapshot.objects.create(
            status="ready", is_active=n == 19, embedding_model="all-MiniLM-L6-v2", tool_count=tools,
            embedded_count=tools if n == 0 else 50, reused_count=0 if n == 0 else tools - 50, index_kind="flat",
            build_seconds=120.0 if n == 0 else 4.0 + n % 3, finished_at=timezone.now(),
        )  # fmt: skip
    return {"seconds": timings, "busy_start": busy_start, "busy_recommendations": busy, "keys": keys}


def recover(*, busy_share: float) -> dict[str, Any]:
    """What `generate` returned, read back from a kept database's log."""
    from access.models import ApiKey

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT date_trunc('hour', created_at), count(*) FROM feedback_recommendation "
            "GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
        )
        busy_start, busy = cursor.fetchone()
    keys = list(ApiKey.objects.order_by("pk").values_list("pk", flat=True))
    return {"seconds": {}, "busy_start": busy_start, "busy_recommendations": busy, "keys": keys, "reused": True}


def _count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return int(cursor.fetchone()[0])


def time_pages(tool_id: int, key: int) -> list[dict[str, Any]]:
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    operator, _ = User.objects.get_or_create(username="bench-operator", defaults={"is_staff": True})  # kept db: exists
    client.force_login(operator)
    urls = [
        "/dashboard/?range=hour", "/dashboard/?range=day", "/dashboard/?range=week", "/dashboard/?range=90d",
        f"/dashboard/?range=90d&namespace=ns1&key={key}",
        "/dashboard/tools/?range=day", "/dashboard/tools/?range=week", "/dashboard/tools/?range=90d&sort=usage_rate",
        "/dashboard/tools/?range=90d&view=never_used", "/dashboard/tools/?range=90d&view=never_recommended",
        "/dashboard/tools/?range=90d&view=new", f"/dashboard/tools/{tool_id}/?range=90d",
        "/dashboard/learning/", "/dashboard/catalog/", "/dashboard/experiments/",
    ]  # fmt: skip
    rows = []
    for url in urls:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        rows.append({"page": url, "median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impressions", type=int, default=10_000_000)
    parser.add_argument("--tools", type=int, default=10_000)
    parser.add_argument("--busy-share", type=float, default=0.01)
    parser.add_argument("--json", type=Path, default=Path("bench/results/dashboard_load.json"))
    parser.add_argument("--keep-db", default="", help="use and keep this database; reuse its log if it has one")
    parser.add_argument("--generate-only", action="store_true", help="stop after generating (with --keep-db)")
    parser.add_argument(
        "--skip-backfill", action="store_true", help="with --keep-db: keep the 90 days' rollups of an earlier run"
    )
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("set DATABASE_URL to a PostgreSQL server: the bench measures PostgreSQL")

    from dashboard.models import Rollup
    from dashboard.rollups import rollup_day, rollup_hour, rollup_range, tool_ranges_refresh

    name = args.keep_db or f"{connections['default'].settings_dict['NAME']}_{os.getpid()}"
    connections["default"].settings_dict.setdefault("TEST", {})["NAME"] = name
    keep = bool(args.keep_db)
    # serialized_aliases: no copy of a kept 10M-row log for test rollbacks (minutes, gigabytes)
    old = setup_databases(verbosity=0, interactive=False, keepdb=keep, aliases={"default"}, serialized_aliases=set())  # type: ignore[arg-type]
    try:
        started = time.perf_counter()
        if keep and _count("feedback_recommendation"):
            generated = recover(busy_share=args.busy_share)
        else:
            generated = generate(impressions=args.impressions, tools=args.tools, busy_share=args.busy_share)
        generate_seconds = time.perf_counter() - started
        counts = {t: _count(t) for t in ("feedback_recommendation", "feedback_impression", "feedback_usageevent")}
        print(f"generated {counts} in {generate_seconds:.0f} s: {generated['seconds']}", flush=True)
        if args.generate_only:
            return
        now = timezone.now()
        started = time.perf_counter()
        if args.skip_backfill and Rollup.objects.exists():
            hours, full_rollup_seconds = 0, 0.0  # rolled up by an earlier run of the same code
        else:
            hours = rollup_range(now - timedelta(days=DAYS, hours=1), now, refresh_tool_ranges=False)
            full_rollup_seconds = time.perf_counter() - started
        started = time.perf_counter()
        tool_ranges_refresh()
        tool_ranges_seconds = time.perf_counter() - started
        print(f"rolled up {hours} hours in {full_rollup_seconds:.0f} s", flush=True)
        busy = generated["busy_start"]
        busy_load = os.getloadavg()[0]
        started = time.perf_counter()
        rollup_hour(busy)
        busy_hour_seconds = time.perf_counter() - started
        started = time.perf_counter()
        rollup_day(busy.date())
        busy_day_seconds = time.perf_counter() - started
        busy_impressions = list(Rollup.objects.filter(period="hour", start=busy).values_list("impressions", flat=True))
        from feedback.models import Impression

        tool_id = Impression.objects.values_list("tool_id", flat=True).first()
        assert tool_id is not None
        load_before = os.getloadavg()
        pages = time_pages(tool_id, generated["keys"][0])
        load = {"before_pages": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]}
    finally:
        teardown_databases(old, verbosity=0, keepdb=keep)
    report: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "config": {
            "impressions": args.impressions,
            "tools": args.tools,
            "k": K,
            "days": DAYS,
            "busy_share": args.busy_share,
        },
        "rows": counts,
        "log_reused": bool(generated.get("reused")),
        "generate_seconds": round(generate_seconds, 1),
        "generate_parts_seconds": {k: round(v, 1) for k, v in generated["seconds"].items()},
        "rollup_all_days": {"hours": hours, "seconds": round(full_rollup_seconds, 1)},
        "tool_ranges_refresh_seconds": round(tool_ranges_seconds, 2),
        "busy_hour": {
            "impressions": int(sum(busy_impressions)),
            "rollup_hour_seconds": round(busy_hour_seconds, 2),
            "rollup_day_seconds": round(busy_day_seconds, 2),
            "goal_seconds": 10,
            "load_average_1min": round(busy_load, 2),
        },
        "load_average_1_5_15": load,
        "pages": pages,
        "page_goal_ms": 300,
    }
    print(f"log: {counts}  generated in {generate_seconds:.0f} s")
    print(
        f"rollup of all {hours} hours: {full_rollup_seconds:.0f} s; "
        f"per-tool week/90-day sums: {tool_ranges_seconds:.1f} s"
    )
    print(
        f"busy hour ({report['busy_hour']['impressions']} impressions): hour {busy_hour_seconds:.2f} s, "
        f"its day {busy_day_seconds:.2f} s (goal 10 s)"
    )
    print(f"load average (1, 5, 15 min) before the pages {load['before_pages']}, after {load['after']}")
    print(f"{'page':<62} {'median ms':>10} {'max ms':>8}")
    for row in pages:
        print(f"{row['page']:<62} {row['median_ms']:>10} {row['max_ms']:>8}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
