"""What a shadow variant writes, per recommendation: on the request (the larger candidate log
and the queue row) and in the shadow worker's run (slates, the queue rows' deletes), as
wall time, Python CPU, the PostgreSQL backend's CPU and WAL bytes (issue 12: a shadow may
add at most 10% to the served p99).

Run from the project root against a prepared latency-bench database (PostgreSQL; the
recommendations of earlier `recommend_latency.py --shadow` runs are ranked again), e.g.::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/toolrec_shadow_new DEBUG=1 \\
    TOOLREC_VAR_DIR=var/bench-shadow-new .venv/bin/python bench/shadow_write_cost.py

It adds `--records` recommendations of its own under the experiment key "write-cost" and
deletes them at the end. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import time
import uuid
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
KEY = "write-cost"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=400, help="recommendations logged per configuration")
    parser.add_argument("--ranked", type=int, default=2000, help="recommendations ranked per worker round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=pathlib.Path, default=ROOT / "bench" / "results" / "shadow_write_cost.json")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toolrec_site.settings")
    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit("needs PostgreSQL (DATABASE_URL): it reads the WAL position and the backend's CPU")
    request = [_request_cost(args.records, limit, queued) for _ in range(args.rounds) for limit, queued in CONFIGS]
    worker = [_worker_cost(args.ranked) for _ in range(args.rounds)]
    result = {
        "benchmark": "shadow_write_cost",
        "request": request,
        "worker": worker,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()},
    }
    print(f"{'per recommendation':<50} {'wall ms':>8} {'Python ms':>10} {'PG ms':>7} {'WAL B':>7}")
    for r in request:
        label = f"logged: {r['log_rows']} candidates ({r['log_bytes']} B), queued {r['queued']}"
        costs = f"{r['wall_ms']:>8.3f} {r['python_ms']:>10.3f} {r['postgres_ms']:>7.3f} {r['wal_bytes']:>7.0f}"
        print(f"{label:<50} {costs}")
    for w in worker:
        label = f"shadow run ({w['recommendations']} ranked)"
        print(f"{label:<50} {'':>8} {w['python_ms']:>10.3f} {w['postgres_ms']:>7.3f} {w['wal_bytes']:>7.0f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.json}")


CONFIGS = ((50, False), (200, False), (200, True))  # LOG_CANDIDATES's default; a shadowed request's log


def _backend_cpu() -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wal() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()")
        return str(cursor.fetchone()[0])


def _wal_bytes(start: str, end: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(%s, %s)", [end, start])
        return int(cursor.fetchone()[0])


def _request_cost(records: int, limit: int, queued: bool) -> dict[str, Any]:
    """recommendation_record as the request path calls it, with a synthetic candidate set of
    200 and a log of its top `limit` (all 200: a shadowed request's)."""
    import numpy as np

    from access.models import ApiKey
    from feedback.models import Recommendation
    from feedback.services import recommendation_record
    from recommender.engine.candidate_log import candidate_log
    from recommender.engine.features import N_FEATURES

    key = ApiKey.objects.order_by("pk").first()
    if key is None:
        sys.exit("no API key: run recommend_latency.py against this database first")
    rng = np.random.default_rng(0)
    n = 200
    tool_ids, shown = np.arange(1, n + 1), np.arange(5)
    features, scores = rng.random((n, N_FEATURES)).astype(np.float32), rng.random(n).astype(np.float32)
    walls, cpus, size = [], [], 0
    pg0, wal0 = _backend_cpu(), _wal()
    for _ in range(records):
        started, cpu = time.perf_counter(), time.thread_time()
        log = candidate_log(tool_ids, features, shown, scores, limit)
        recommendation_record(
            api_key=key,
            user_id="u",
            conversation_id=uuid.uuid4().hex,
            experiment_key=KEY,
            variant="a",
            policy="semantic",
            snapshot_version=1,
            k=5,
            query_text="q",
            called_tools=[],
            latency_ms=1.0,
            shown=[],
            candidate_log=log,
            shadow_pending=queued,
        )
        walls.append(time.perf_counter() - started)
        cpus.append(time.thread_time() - cpu)
        size = len(log)
    pg, wal = (_backend_cpu() - pg0) / records, _wal_bytes(wal0, _wal()) / records
    Recommendation.objects.filter(experiment_key=KEY).delete()  # its queue rows go with it
    return {
        "log_rows": limit,
        "log_bytes": size,
        "queued": queued,
        "wall_ms": 1000 * statistics.median(walls),
        "python_ms": 1000 * statistics.median(cpus),
        "postgres_ms": 1000 * pg,
        "wal_bytes": wal,
    }


def _worker_cost(ranked: int) -> dict[str, Any]:
    """The shadow worker's run over the newest `ranked` recommendations of earlier shadowed
    bench runs: their slates deleted, queued again, ranked by `shadows_rank` in this thread."""
    from experiments.models import ShadowSlate
    from feedback.models import Recommendation, ShadowPending
    from recommender.serving.shadow import shadows_rank

    recs = list(
        Recommendation.objects.filter(experiment_key__startswith="bench-shadow")
        .order_by("-created_at")
        .values_list("pk", "experiment_key")[:ranked]
    )
    if not recs:
        sys.exit("no shadowed recommendations: run recommend_latency.py --shadow thompson against this database first")
    ShadowSlate.objects.filter(recommendation_id__in=[pk for pk, _ in recs]).delete()
    ShadowPending.objects.bulk_create(ShadowPending(recommendation_id=pk, experiment_key=key) for pk, key in recs)
    pg0, wal0, cpu0 = _backend_cpu(), _wal(), time.thread_time()
    run = shadows_rank()
    cpu, pg, wal = time.thread_time() - cpu0, _backend_cpu() - pg0, _wal_bytes(wal0, _wal())
    n = max(1, run.recommendations)
    return {
        "recommendations": run.recommendations,
        "slates": run.slates,
        "python_ms": 1000 * cpu / n,
        "postgres_ms": 1000 * pg / n,
        "wal_bytes": wal / n,
    }


if __name__ == "__main__":
    main()
