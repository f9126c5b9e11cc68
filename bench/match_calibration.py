"""Is the answer's `match` probability calibrated? Expected calibration error on held-back requests.

Usage (a throwaway database is created and dropped; the configured one is not touched; tool
vectors are kept under var/bench-qdrant-toolbench, shared with bench/token_budget.py):

    DEBUG=1 .venv/bin/python bench/match_calibration.py [--events 5000] [--held-back 1000] [--seed 0]

A replay as `manage.py simulate` runs one: MetaTool queries (../shared/datasets) against the
pooled ToolBench + MetaTool catalog (2,678 tools), served by the default policy through the
real recommendation, feedback and learning code, with the simulated agent of
`recommender.offline.simulation.AgentModel`; the learner runs every 100 requests and refits
the match model as in service. Once 5,000 usage events are logged, learning stops and the
next requests (held back: never fitted on) are served and logged; their served `match`
probability is compared with whether the agent used the top tool. Also reported: the
retrieval-score prior on the same held-back requests (computed from their logged top-tool
similarity), and the prior's parameters a logistic fit of the replay's own answers would
choose. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
import uuid
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


def _commit() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _reliability(probabilities: np.ndarray, outcomes: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    return [
        {
            "bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}",
            "answers": int((which == b).sum()),
            "predicted": float(probabilities[which == b].mean()),
            "observed": float(outcomes[which == b].mean()),
        }
        for b in range(bins)
        if (which == b).any()
    ]


def _replay(args: argparse.Namespace, stream: list[Any]) -> dict[str, Any]:
    from access.services import api_key_create
    from feedback.services import FeedbackItem, feedback_record
    from recommender.learning.learner import learning_batch
    from recommender.offline.simulation import AgentModel
    from recommender.serving.services import recommendation_create

    key, _ = api_key_create(name="bench match calibration")
    agent, agent_rng, policy_rng = AgentModel(), random.Random(args.seed), np.random.default_rng(args.seed)
    served: list[tuple[str, float, str, bool]] = []  # (recommendation id, probability, basis, top used)
    events = step = 0
    learning_until = None
    for step, query in enumerate(stream, start=1):
        result = recommendation_create(
            api_key=key,
            messages=[{"role": "user", "content": query.text}],
            k=args.k,
            user_id=f"user-{agent_rng.randrange(50)}",
            rng=policy_rng,
        )
        names = [t.name for t in result.tools]
        used = agent.uses(names, query.relevant, agent_rng)
        if used and result.recommendation_id is not None:
            outcome = feedback_record(
                api_key=key,
                recommendation_id=result.recommendation_id,
                items=[FeedbackItem(tool=t, used=True, event_id=f"bench-{uuid.uuid4().hex}") for t in used],
            )
            events += outcome.recorded
        top_used = bool(names) and names[0] in used
        served.append((str(result.recommendation_id), result.match.probability, result.match.basis, top_used))
        if learning_until is None:
            if step % 100 == 0:
                while learning_batch(delay_seconds=0) is not None:
                    pass
            if events >= args.events:
                while learning_batch(delay_seconds=0) is not None:
                    pass
                learning_until = step
        elif step - learning_until >= args.held_back:
            break
        if step % 1000 == 0:
            print(f"  step {step}: {events} usage events", flush=True)
    return {"served": served, "learning_until": learning_until, "events": events, "steps": step}


def _prior_inputs(rec_ids: list[str]) -> dict[str, float]:
    """The top tool's logged cosine similarity of each recommendation."""
    from feedback.models import Impression
    from recommender.engine.features import FEATURE_INDEX

    dense = FEATURE_INDEX["dense"]
    return {
        str(rec): float(features[dense])
        for rec, features in Impression.objects.filter(recommendation_id__in=rec_ids, rank=1).values_list(
            "recommendation_id", "features"
        )
    }


def _analyse(replay: dict[str, Any]) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    from recommender.engine.match import expected_calibration_error, prior_probability
    from recommender.learning.match_training import match_config
    from recommender.learning.models import LearningState

    served, cut = replay["served"], replay["learning_until"]
    if cut is None:
        raise SystemExit(f"the stream ended before {replay['events']} reached the events asked for")
    fitted, held = served[:cut], served[cut:]
    held_p = np.array([p for _, p, _, _ in held])
    held_y = np.array([float(u) for _, _, _, u in held])
    config = match_config()
    dense = _prior_inputs([r for r, *_ in served])
    prior_p = np.array([prior_probability(dense.get(r, 0.0), config) for r, *_ in held])
    fit_rows = [(dense[r], u) for r, _, _, u in fitted if r in dense]
    x = np.array([[d] for d, _ in fit_rows])
    y = np.array([float(u) for _, u in fit_rows])
    logistic = LogisticRegression().fit(x, y)
    slope = float(logistic.coef_[0][0])
    before = [(p, u) for _, p, b, u in fitted if b == "retrieval"]
    state = LearningState.objects.order_by("-pk").first()
    return {
        "held_back_requests": len(held),
        "held_back_basis": sorted({b for _, _, b, _ in held}),
        "top_tool_use_rate_held_back": float(held_y.mean()),
        "ece_match": expected_calibration_error(held_p, held_y),
        "ece_prior_on_held_back": expected_calibration_error(prior_p, held_y),
        "ece_prior_before_feedback": expected_calibration_error(
            np.array([p for p, _ in before]), np.array([float(u) for _, u in before])
        )
        if before
        else None,
        "answers_served_by_prior": len(before),
        "good_answers_use_rate": float(held_y[held_p >= config.good].mean()) if (held_p >= config.good).any() else None,
        "none_answers_use_rate": float(held_y[held_p < config.weak].mean()) if (held_p < config.weak).any() else None,
        "labels": {
            "good": int((held_p >= config.good).sum()),
            "weak": int(((held_p >= config.weak) & (held_p < config.good)).sum()),
            "none": int((held_p < config.weak).sum()),
        },
        "reliability": _reliability(held_p, held_y),
        "match_model": {k: (state.match_model or {}).get(k) for k in ("samples", "positives", "fitted_at")}
        if state
        else None,
        "prior_fit_on_replay": {"midpoint": float(-logistic.intercept_[0] / slope), "slope": slope},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="usage events logged before holding back")
    parser.add_argument("--held-back", type=int, default=1000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=Path("bench/results/match_calibration.json"))
    args = parser.parse_args()

    from recommender.indexing.embedders import prefill_cache
    from recommender.indexing.snapshots import snapshot_build
    from recommender.learning.learner import learning_publish_stats
    from recommender.offline.simulation import load_queries, load_specs

    data = Path(settings.BASE_DIR).parent / "shared" / "datasets"
    specs = load_specs([data / "toolbench" / "tools.jsonl", data / "metatool" / "tools.jsonl"])
    queries = load_queries([data / "metatool" / "queries.jsonl"], {s.name for s in specs})
    random.Random(args.seed).shuffle(queries)
    stream = queries[: int(args.events * 1.6) + args.held_back]  # ~0.9 uses a request: room to spare
    connection = connections["default"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = (
        None if connection.vendor == "sqlite" else f"toolrec_bench_match_{os.getpid()}"
    )
    old = setup_databases(verbosity=0, interactive=False, aliases={"default"})  # type: ignore[arg-type]
    started = time.perf_counter()
    try:
        with override_settings(
            SNAPSHOT_DIR=Path(settings.VAR_DIR) / "bench-snapshots-toolbench",
            QDRANT_PATH=Path(settings.VAR_DIR) / "bench-qdrant-toolbench",
            LEARNING_AUTO_SCHEDULE=False,
            LEARNING_CHECK_SECONDS=0,
            IMPLICIT_FEEDBACK=False,
        ):
            from catalog.services import tool_import

            tool_import(records=specs, schedule_rebuild=False)
            snapshot_build()
            learning_publish_stats()
            prefill_cache([q.text for q in stream])
            replay = _replay(args, stream)
            result = _analyse(replay)
    finally:
        teardown_databases(old, verbosity=0)
    seconds = time.perf_counter() - started

    print(
        f"replay: {replay['steps']} requests, {replay['events']} usage events; learning stopped at request "
        f"{replay['learning_until']}, then {result['held_back_requests']} held-back requests"
    )
    print(f"{'':<44}{'ECE':>8}")
    print(f"{'match (served, fitted on the log)':<44}{result['ece_match']:>8.4f}")
    print(f"{'retrieval prior on the same requests':<44}{result['ece_prior_on_held_back']:>8.4f}")
    if result["ece_prior_before_feedback"] is not None:
        label = f"prior as served before a fit ({result['answers_served_by_prior']})"
        print(f"{label:<44}{result['ece_prior_before_feedback']:>8.4f}")
    print(f"labels on held-back: {result['labels']}; top-tool use rate {result['top_tool_use_rate_held_back']:.3f}")
    print(f"use rate of good answers {result['good_answers_use_rate']}, of none {result['none_answers_use_rate']}")
    print(f"{'bin':<10}{'answers':>8}{'predicted':>11}{'observed':>10}")
    for row in result["reliability"]:
        print(f"{row['bin']:<10}{row['answers']:>8}{row['predicted']:>11.3f}{row['observed']:>10.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "benchmark": "match_calibration",
                "commit": _commit(),
                "machine": {"platform": platform.platform(), "python": platform.python_version()},
                "config": {
                    "events": args.events,
                    "held_back": args.held_back,
                    "k": args.k,
                    "seed": args.seed,
                    "policy": settings.RECOMMEND_POLICY,
                },
                "database": connection.vendor,
                "requests": replay["steps"],
                "usage_events": replay["events"],
                "learning_stopped_at": replay["learning_until"],
                "seconds": seconds,
                **result,
            },
            indent=2,
        )
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
