"""What isolated learning per variant costs: the learner's batch with and without isolated
variants in it, and the request path's lookup of a variant's own state.

Usage (a throwaway database is created and dropped; the configured one is not touched):

    DEBUG=1 .venv/bin/python bench/isolated_learning.py [--tools 10000] [--recommendations 1000] [--k 5]

The log is synthetic (no index, no embedding: only the learner and the holders are timed):
N recommendations of k impressions with random feature rows over a catalog of --tools tools,
a use on the first tool of 30% of them. Each scenario relearns the same log (`learned_at`
cleared) `--repeats` times: "shared" (no experiment), "isolated x2" (the log split between
two isolated variants of a running experiment). The serving part times, per call, what a
request of a shared variant reads (`learned.get()`) and what an isolated one reads
(`isolated.served(...)`), with the holders refreshing from their threads as in a web process.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toolrec_site.settings")
os.environ.setdefault("DEBUG", "true")

import django

django.setup()

from django.db import connections  # noqa: E402
from django.test.utils import override_settings, setup_databases, teardown_databases  # noqa: E402


def _log(args: argparse.Namespace) -> None:
    import numpy as np

    from access.services import api_key_create
    from catalog.models import Tool
    from feedback.models import Impression, Recommendation, UsageEvent
    from recommender.engine.features import N_FEATURES

    Tool.objects.bulk_create(
        [Tool(name=f"t{i}", function_name=f"t{i}", content_hash=str(i)) for i in range(args.tools)], batch_size=2000
    )
    tool_ids = list(Tool.objects.values_list("pk", flat=True))
    key, _ = api_key_create(name="bench")
    rng = np.random.default_rng(0)
    recs = Recommendation.objects.bulk_create(
        [
            Recommendation(api_key=key, user_id=f"u{i % 200}", snapshot_version=1, k=args.k)
            for i in range(args.recommendations)
        ]
    )
    impressions, events = [], []
    for rec in recs:
        shown = rng.choice(tool_ids, size=args.k, replace=False)
        for rank, tool in enumerate(shown, start=1):
            features = [float(x) for x in rng.random(N_FEATURES)]
            impressions.append(
                Impression(recommendation=rec, tool_id=int(tool), rank=rank, score=1.0, features=features)
            )
        if rng.random() < 0.3:
            events.append(
                UsageEvent(
                    event_id=str(rec.pk), recommendation=rec, tool_id=int(shown[0]), used=True, source="explicit"
                )
            )
    Impression.objects.bulk_create(impressions, batch_size=5000)
    UsageEvent.objects.bulk_create(events)


def _relearn(repeats: int) -> list[float]:
    from feedback.models import Recommendation, UsageEvent
    from recommender.learning.learner import learning_batch

    seconds = []
    for _ in range(repeats):
        Recommendation.objects.update(learned_at=None)
        UsageEvent.objects.update(learned_at=None)
        started = time.perf_counter()
        outcome = learning_batch(batch_size=10**6, delay_seconds=0)
        seconds.append(time.perf_counter() - started)
        assert outcome is not None
    return seconds


def _per_call_us(call: object, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        call()  # type: ignore[operator]
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", type=int, default=10_000)
    parser.add_argument("--recommendations", type=int, default=1000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--json", type=Path, default=Path("bench/results/isolated_learning.json"))
    args = parser.parse_args()

    connection = connections["default"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = (
        None if connection.vendor == "sqlite" else f"toolrec_bench_isolated_{os.getpid()}"
    )
    old = setup_databases(verbosity=0, interactive=False, aliases={"default"})  # type: ignore[arg-type]
    from recommender.serving.holders import isolated, learned

    try:
        with override_settings(LEARNING_AUTO_SCHEDULE=False):
            _log(args)
            from experiments.services import VariantSpec, experiment_create, experiment_start
            from feedback.models import Recommendation
            from recommender.learning.learner import learning_publish_stats

            learning_publish_stats()
            shared = _relearn(args.repeats)
            policy = {"name": "bandit"}
            experiment = experiment_create(
                key="bench",
                variants=[VariantSpec(v, policy, learning="isolated") for v in ("a", "b")],
                actor="bench",
            )
            experiment_start(experiment=experiment, actor="bench")
            pks = list(Recommendation.objects.order_by("pk").values_list("pk", flat=True))
            Recommendation.objects.filter(pk__in=pks[::2]).update(experiment_key="bench", variant="a")
            Recommendation.objects.filter(pk__in=pks[1::2]).update(experiment_key="bench", variant="b")
            isolated_s = _relearn(args.repeats)
        with override_settings(LEARNING_CHECK_SECONDS=1.0):  # refreshed by the holders' threads
            learned.reset()
            isolated.reset()
            state = learned.get()
            isolated.served(state, "bench", "a")
            time.sleep(1.5)
            shared_us = _per_call_us(learned.get, args.calls)
            own_us = _per_call_us(lambda: isolated.served(learned.get(), "bench", "a"), args.calls)
    finally:
        for holder in (learned, isolated):
            holder.stop()
        teardown_databases(old, verbosity=0)
    report = {
        "database": connection.vendor,
        "tools": args.tools,
        "recommendations": args.recommendations,
        "impressions": args.recommendations * args.k,
        "learn_batch_seconds": {
            "shared": {"median": statistics.median(shared), "runs": shared},
            "isolated_x2": {"median": statistics.median(isolated_s), "runs": isolated_s},
        },
        "state_lookup_us_per_request": {"shared": shared_us, "isolated": own_us},
        "load_average": os.getloadavg(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    print(f"{'scenario':<14} {'recs':>6} {'impr.':>7} {'learn s (median)':>17} {'runs':>30} {'lookup µs':>10}")
    for name, runs, us in (("shared", shared, shared_us), ("isolated x2", isolated_s, own_us)):
        line = ", ".join(f"{r:.3f}" for r in runs)
        print(
            f"{name:<14} {args.recommendations:>6} {report['impressions']:>7} {statistics.median(runs):>17.3f} "
            f"{line:>30} {us:>10.2f}"
        )
    print(f"load average {report['load_average']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
