"""How long the learner takes for a batch, and how soon a web process serves what it learned.

Usage (a throwaway database is created and dropped; the configured one is not touched):

    DEBUG=1 .venv/bin/python bench/learning_batch.py [--recommendations 1000] [--k 5] [--json OUT]

It logs N recommendations of k tools each through the real recommendation service (with
cached embeddings), reports uses on one tool of most of them through the real feedback
service, then times one `learning_batch` over all of them, and the time until a
`LearningHolder` (what each web process runs) serves the published version. Prints a table
and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toolrec_site.settings")
os.environ.setdefault("DEBUG", "true")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connections  # noqa: E402
from django.test.utils import override_settings, setup_databases, teardown_databases  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recommendations", type=int, default=1000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path("bench/results/learning_batch.json"))
    args = parser.parse_args()

    from access.services import api_key_create
    from catalog.importers import parse_tools
    from catalog.services import tool_import
    from feedback.models import UsageEvent
    from feedback.services import FeedbackItem, feedback_record
    from recommender.indexing.embedders import prefill_cache
    from recommender.indexing.snapshots import snapshot_build
    from recommender.learning.learner import learning_batch
    from recommender.serving.holders import LearningHolder
    from recommender.serving.services import recommendation_create

    connection = connections["default"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = (
        None if connection.vendor == "sqlite" else f"toolrec_bench_learning_{os.getpid()}"
    )
    # django-stubs types `aliases` as a Mapping; Django only iterates it and tests membership.
    old = setup_databases(verbosity=0, interactive=False, aliases={"default"})  # type: ignore[arg-type]
    holder = None
    try:
        with override_settings(
            SNAPSHOT_DIR=Path(settings.VAR_DIR) / "bench-snapshots",
            QDRANT_PATH=Path(settings.VAR_DIR) / "bench-qdrant",
            LEARNING_AUTO_SCHEDULE=False,
            LEARNING_CHECK_SECONDS=0.5,
        ):
            catalog = Path(settings.BASE_DIR) / "catalog" / "data" / "example_tools.jsonl"
            tool_import(records=parse_tools(catalog.read_text(), "jsonl"), schedule_rebuild=False)
            snapshot_build()
            key, _ = api_key_create(name="bench")
            rng = random.Random(0)
            texts = [json.loads(line)["description"] for line in catalog.read_text().splitlines()]
            queries = [f"{rng.choice(texts)} (request {i})" for i in range(args.recommendations)]
            prefill_cache(queries)
            for i, text in enumerate(queries):
                result = recommendation_create(
                    api_key=key,
                    messages=[{"role": "user", "content": text}],
                    user_id=f"u{i % 40}",
                    k=args.k,
                    policy={"name": "hybrid", "exploration": "ucb"},
                )
                if rng.random() < 0.8 and result.recommendation_id is not None:
                    feedback_record(
                        api_key=key,
                        recommendation_id=result.recommendation_id,
                        items=[FeedbackItem(tool=result.tools[0].name, used=True)],
                    )
        # Learning runs outside override_settings: overridden settings are slower to read.
        events = UsageEvent.objects.count()
        holder = LearningHolder()  # polls every LEARNING_CHECK_SECONDS from its own thread, as in a web process
        holder.get()
        started = time.perf_counter()
        if os.environ.get("PROFILE"):
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        outcome = learning_batch(batch_size=args.recommendations, delay_seconds=0)
        if os.environ.get("PROFILE"):
            profiler.disable()
            profiler.dump_stats("/tmp/learn.prof")
        learned_at = time.perf_counter()
        if outcome is None:
            raise SystemExit("nothing was learned: the replay logged no recommendation")
        while (state := holder.get()) is None or state.version != outcome.version:
            time.sleep(0.05)
        served_at = time.perf_counter()
    finally:
        # The holders' refresh threads and the signal pool hold connections to the database about to be dropped.
        from recommender.serving.holders import learned, snapshots
        from recommender.serving.request_signals import request_signals_stop

        for refreshing in (holder, learned, snapshots):
            if refreshing is not None:
                refreshing.stop()
        request_signals_stop()
        teardown_databases(old, verbosity=0)
    report = {
        "database": connection.vendor,
        "recommendations": outcome.recommendations,
        "impressions": outcome.recommendations * args.k,
        "events": events,
        "learn_batch_seconds": round(learned_at - started, 3),
        "published_to_served_seconds": round(served_at - learned_at, 3),
        "memory_contexts_served": len(state.memory),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    print(f"{'database':<12} {'recs':>6} {'impr.':>7} {'events':>7} {'learn s':>8} {'to served s':>12}")
    print(
        f"{report['database']:<12} {report['recommendations']:>6} {report['impressions']:>7} {events:>7} "
        f"{report['learn_batch_seconds']:>8.3f} {report['published_to_served_seconds']:>12.3f}"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
