"""The CPU a shadow variant costs per request, against the served request's own (issue 12:
a shadow on all traffic may add at most 10% to the served p99).

On a shared 2-core machine the p99 of alternated runs (`recommend_latency.py --shadow POLICY
--alternate-shadow PAIRS`) moves by more than the shadow's cost from block to block. CPU time
per thread does not depend on the load: this script serves `--requests` recommendations in
one thread with background threads off (so each shadow job runs inline, in the same thread,
after the answer is built), first with no experiment, then with a shadow variant on all
traffic, and reports the thread CPU of each served request and of each shadow job
(`shadow_run`, timed by wrapping it: ranking, inclusion probabilities and the ShadowSlate
insert). Under CPU saturation (concurrent clients on 2 cores) latency grows with CPU per
request, so the ratio of the two bounds what the shadow can add there.

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

    settings.BACKGROUND_THREADS = False  # shadow jobs inline, in the request's thread
    from recommender.serving import shadow

    jobs: list[float] = []
    shadow_run = shadow.shadow_run

    def timed(job: Any) -> Any:
        started = time.thread_time()
        try:
            return shadow_run(job)
        finally:
            jobs.append(time.thread_time() - started)

    shadow.shadow_run = timed  # measured, not changed
    queries = [json.loads(line)["query"] for line in (ROOT.parent / "shared/datasets/toolbench/queries.jsonl").open()]
    off, on = _measure(args, queries)
    result = {
        "benchmark": "shadow_cpu",
        "shadow": args.shadow,
        "requests": args.requests,
        "served_cpu_ms_median": {"off": 1000 * statistics.median(off), "on": 1000 * statistics.median(on)},
        "shadow_job_cpu_ms": {
            "median": 1000 * statistics.median(jobs),
            "p90": 1000 * sorted(jobs)[int(0.9 * len(jobs))],
            "n": len(jobs),
        },
        "load_average": os.getloadavg(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    result["shadow_share_of_served_cpu"] = result["shadow_job_cpu_ms"]["median"] / result["served_cpu_ms_median"]["off"]
    print(
        f"{'configuration':<28} {'CPU ms (median)':>16}\n{'served, no shadow':<28} "
        f"{result['served_cpu_ms_median']['off']:>16.1f}\n{'served + inline shadow':<28} "
        f"{result['served_cpu_ms_median']['on']:>16.1f}\n{'one shadow job':<28} "
        f"{result['shadow_job_cpu_ms']['median']:>16.2f}  (p90 {result['shadow_job_cpu_ms']['p90']:.2f}, "
        f"{result['shadow_share_of_served_cpu']:.1%} of a served request)"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.json}")


def _measure(args: argparse.Namespace, queries: list[str]) -> tuple[list[float], list[float]]:
    from access.services import api_key_create
    from experiments.models import Experiment
    from experiments.selectors import default_policy, reset_cache
    from experiments.services import VariantSpec, experiment_create, experiment_start, experiment_stop
    from recommender.serving.services import recommendation_create

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
    return off, on


if __name__ == "__main__":
    main()
