"""The CPU a shadow variant costs per request, against the served request's own (issue 12:
a shadow on all traffic may add at most 10% to the served p99).

On a shared 2-core machine the p99 of alternated runs (`recommend_latency.py --shadow POLICY
--alternate-shadow PAIRS`) moves from block to block. CPU time per thread does not depend on
the load: this script serves `--requests` recommendations in one thread, first with no
experiment, then with a shadow variant on all traffic, and reports the thread CPU of each
served request (with the shadow, it also logs every candidate and marks itself pending),
then ranks the pending shadows as the Celery task does (`shadows_rank`, in this thread) and
reports its CPU per recommendation: what the shadow worker spends, off the web processes.

Run from the project root against a prepared latency-bench database (it adds an API key and
two experiments, stopped at the end), e.g.::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/toolrec_bench TOOLREC_VAR_DIR=var/bench \\
    REDIS_URL=redis://127.0.0.1:6379/3 CACHE_KEY_PREFIX=shadow-cpu-$RANDOM DEBUG=1 \\
        .venv/bin/python bench/shadow_cpu.py --shadow thompson
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shadow", default="thompson", help="the shadow's policy (a preset name)")
    parser.add_argument("--requests", type=int, default=150, help="per configuration")
    parser.add_argument("--json", type=pathlib.Path, default=ROOT / "bench" / "results" / "shadow_cpu.json")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toolrec_site.settings")
    import django

    django.setup()
    from django.conf import settings

    # Background work on, and no broker: the request asks for a ranking run as in production,
    # and the run (a timer thread) is due after the script ends; this thread ranks instead.
    settings.BACKGROUND_THREADS = True
    settings.SHADOW_DELAY_SECONDS = 3600.0
    queries = [json.loads(line)["query"] for line in (ROOT.parent / "shared/datasets/toolbench/queries.jsonl").open()]
    off, on, worker = _measure(args, queries)
    result = {
        "benchmark": "shadow_cpu",
        "shadow": args.shadow,
        "requests": args.requests,
        "served_cpu_ms_median": {"off": 1000 * statistics.median(off), "on": 1000 * statistics.median(on)},
        "served_cpu_ms_mean": {"off": 1000 * statistics.mean(off), "on": 1000 * statistics.mean(on)},
        "worker_cpu_ms_per_recommendation": 1000 * worker["cpu_seconds"] / max(1, worker["recommendations"]),
        "worker_run": worker,
        "load_average": os.getloadavg(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    served_off = result["served_cpu_ms_mean"]["off"]
    result["served_cpu_ratio_mean"] = result["served_cpu_ms_mean"]["on"] / served_off
    result["worker_share_of_served_cpu"] = result["worker_cpu_ms_per_recommendation"] / served_off
    print(
        f"{'configuration':<34} {'CPU ms (median)':>16} {'(mean)':>8}\n"
        f"{'served, no shadow':<34} {result['served_cpu_ms_median']['off']:>16.2f} {served_off:>8.2f}\n"
        f"{'served, shadow on (web process)':<34} {result['served_cpu_ms_median']['on']:>16.2f} "
        f"{result['served_cpu_ms_mean']['on']:>8.2f}  (x{result['served_cpu_ratio_mean']:.3f})\n"
        f"{'shadow worker, per recommendation':<34} {result['worker_cpu_ms_per_recommendation']:>16.2f}"
        f"{'':>8}  ({result['worker_share_of_served_cpu']:.1%} of a served request, "
        f"{worker['slates']} slates)"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.json}")


def _measure(args: argparse.Namespace, queries: list[str]) -> tuple[list[float], list[float], dict[str, Any]]:
    from access.services import api_key_create
    from experiments.models import Experiment
    from experiments.selectors import default_policy, reset_cache
    from experiments.services import VariantSpec, experiment_create, experiment_start, experiment_stop
    from recommender.serving.services import recommendation_create
    from recommender.serving.shadow import shadows_rank

    key, _ = api_key_create(name="shadow cpu bench")

    def serve(texts: list[str]) -> list[float]:
        cpu = []
        for text in texts:
            started = time.thread_time()
            messages = [{"role": "user", "content": text}]
            recommendation_create(api_key=key, messages=messages, k=5, conversation_id=uuid.uuid4().hex)
            cpu.append(time.thread_time() - started)
        return cpu

    for running in Experiment.objects.filter(status=Experiment.Status.RUNNING):
        experiment_stop(experiment=running, actor="bench", reason="shadow cpu bench")
    reset_cache()
    n = args.requests
    serve(queries[:20])  # warm: the embedder, the snapshot, the tokenizer
    off = serve(queries[20 : 20 + n])
    variants = [
        VariantSpec("served", default_policy(), is_control=True),
        VariantSpec("shadow", args.shadow, role="shadow"),
    ]
    experiment = experiment_create(
        key=f"shadow-cpu-{int(time.time())}", unit="conversation", variants=variants, actor="bench"
    )
    experiment_start(experiment=experiment, actor="bench")
    reset_cache()
    on = serve(queries[20 + n : 20 + 2 * n])
    experiment_stop(experiment=experiment, actor="bench", reason="shadow cpu bench")
    started = time.thread_time()
    run = shadows_rank()
    worker = {"cpu_seconds": time.thread_time() - started, **vars(run)}
    return off, on, worker


if __name__ == "__main__":
    main()
