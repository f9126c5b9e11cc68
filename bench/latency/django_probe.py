"""What the latency benchmark needs Django for, run in a subprocess with the benchmark's
environment (the server's database and settings), so the client process never sets up Django::

    python -m bench.latency.django_probe status         # the newest learned state, the log's size
    python -m bench.latency.django_probe learn-pending  # learn everything pending now
    BENCH_SHADOW_POLICY=thompson python -m bench.latency.django_probe shadow-set  # (no policy: none)
    python -m bench.latency.django_probe shadow-status
    python -m bench.latency.django_probe vacuum         # VACUUM (ANALYZE) on PostgreSQL, as autovacuum would

Run from the project root. Each prints one JSON object, on the last line of its output.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

# The models below are imported inside the functions: Django allows it only after django.setup().


def status() -> dict[str, Any]:
    """The newest published learned state and the size of what was learned (the server exposes
    no learned-state version)."""
    from django.db.models import Count, Q

    from feedback.models import Recommendation, UsageEvent
    from recommender.learning.models import CoUse, LearningState, MemoryEntry, UserToolStats

    fields = ("pk", "created_at", "recommendations_learned", "events_learned", "learn_seconds")
    state = LearningState.objects.order_by("-pk").values(*fields).first()
    unlearned = Q(learned_at=None)
    return {
        "latest_state": state and {**state, "created_at": state["created_at"].isoformat()},
        "recommendations": Recommendation.objects.aggregate(total=Count("pk"), unlearned=Count("pk", filter=unlearned)),
        "usage_events": UsageEvent.objects.aggregate(
            total=Count("pk"),
            used=Count("pk", filter=Q(used=True)),
            unlearned=Count("pk", filter=unlearned),
            explicit=Count("pk", filter=Q(source="explicit")),
            implicit=Count("pk", filter=Q(source="implicit")),
        ),
        "memory_entries": MemoryEntry.objects.count(),
        "user_tool_stats": UserToolStats.objects.count(),
        "co_use_pairs": CoUse.objects.count(),
    }


def learn_pending() -> dict[str, Any]:
    """Learn everything pending now, batch after batch as the Celery task would, without
    waiting for LEARN_DELAY_SECONDS; each batch as [version, recommendations, events, seconds]."""
    from recommender.learning.learner import learning_batch

    started, batches = time.perf_counter(), []
    while (outcome := learning_batch(delay_seconds=0)) is not None:
        batches.append([outcome.version, outcome.recommendations, outcome.events, outcome.seconds])
    return {"batches": batches, "seconds": time.perf_counter() - started}


SHADOW_KEY = "bench-shadow"


def shadow_set() -> dict[str, Any]:
    """Stop any running experiment; with BENCH_SHADOW_POLICY set, start one on all traffic whose
    only live variant serves the default policy and whose shadow ranks every request; with
    BENCH_SHADOW_BASELINE=experiment and no policy, the same experiment without the shadow."""
    from experiments.models import Experiment
    from experiments.selectors import default_policy
    from experiments.services import VariantSpec, experiment_create, experiment_start, experiment_stop

    for running in Experiment.objects.filter(status=Experiment.Status.RUNNING):
        experiment_stop(experiment=running, actor="bench", reason="latency bench")
    policy = os.environ.get("BENCH_SHADOW_POLICY", "")
    baseline = os.environ.get("BENCH_SHADOW_BASELINE", "") == "experiment"
    if not policy and not baseline:
        return {"shadow": None}
    key = f"{SHADOW_KEY}-{int(time.time())}" if policy else f"bench-baseline-{int(time.time())}"
    variants = [VariantSpec("served", default_policy(), is_control=True)]
    if policy:
        variants.append(VariantSpec("shadow", json.loads(policy) if policy.startswith("{") else policy, role="shadow"))
    experiment = experiment_create(key=key, unit="conversation", variants=variants, actor="bench")
    experiment_start(experiment=experiment, actor="bench")
    return {"shadow": policy or None, "experiment": key}


def shadow_status() -> dict[str, Any]:
    """Per bench shadow experiment: its recommendations, how many still wait for the shadow
    worker, the slates it stored, and how long after its recommendation each slate was stored."""
    from django.db.models import F

    from experiments.models import ShadowSlate
    from feedback.models import Recommendation, ShadowPending

    out = {}
    keys = Recommendation.objects.filter(experiment_key__startswith=SHADOW_KEY).values_list("experiment_key", flat=True)
    for key in sorted(set(keys)):
        recs = Recommendation.objects.filter(experiment_key=key)
        slates = ShadowSlate.objects.filter(experiment_key=key)
        lag = slates.annotate(lag=F("created_at") - F("recommendation__created_at"))
        lags = sorted(d.total_seconds() for d in lag.values_list("lag", flat=True))
        out[key] = {
            "recommendations": recs.count(),
            "pending": ShadowPending.objects.filter(experiment_key=key).count(),
            "slates": len(lags),
            "lag_seconds": lags and {q: lags[min(len(lags) - 1, int(p * len(lags)))] for q, p in LAG_QUANTILES},
        }
    return out


LAG_QUANTILES = (("p50", 0.5), ("p99", 0.99), ("max", 1.0))


def vacuum() -> dict[str, Any]:
    """VACUUM (ANALYZE) the whole database, and how long it took, what autovacuum would have
    done meanwhile in production. This machine's PostgreSQL runs with autovacuum off: a
    database reused across runs, or a long run, collects dead row versions (every learning
    batch rewrites ToolStats' rows; every learned or shadow-ranked recommendation leaves one)
    and its statistics go stale (no ANALYZE either), until plans and reads measure the missing
    vacuum, not the code (seen here: a shadow run's served-slate query planned as a sequential
    scan, 150 ms, against 5 ms after ANALYZE)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return {"vacuum": None}
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        autovacuum = cursor.fetchone()[0]
        cursor.execute("SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables")
        dead = int(cursor.fetchone()[0])
        started = time.perf_counter()
        cursor.execute("VACUUM (ANALYZE)")
    return {"autovacuum": autovacuum, "dead_tuples_before": dead, "seconds": time.perf_counter() - started}


COMMANDS: dict[str, Callable[[], dict[str, Any]]] = {
    "status": status,
    "learn-pending": learn_pending,
    "shadow-set": shadow_set,
    "shadow-status": shadow_status,
    "vacuum": vacuum,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=list(COMMANDS))
    command = parser.parse_args(argv).command
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toolrec_site.settings")  # as manage.py
    import django

    django.setup()
    print(json.dumps(COMMANDS[command]()))


if __name__ == "__main__":
    main()
