"""`simulate --experiment A,B`: one replay whose stream goes through a running experiment on
the real request path (assignment by user hash, the variant's policy, the impression log,
feedback, learning batches), with the periodic watch (looks, guardrails, ramp) run every
`watch_every` steps as Celery beat would, and the results read by `experiment_results`.

Optionally, after the run, the log of a share of one variant's users is deleted (a
logging fault such as a client that drops its impressions) and the results read again: the
sample-ratio test should notice."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from access.services import api_key_create
from experiments.models import Experiment, ExperimentEvent
from experiments.results import experiment_results, results_json
from experiments.rollout import experiments_watch
from experiments.selectors import reset_cache
from experiments.services import VariantSpec, experiment_create, experiment_start
from feedback.models import Recommendation
from feedback.services import FeedbackItem, feedback_record
from recommender.offline.simulation import PolicyRun, Scenario, learn_pending, replay_reset
from recommender.serving.services import recommendation_create


@dataclass(frozen=True)
class ExperimentPlan:
    variants: list[tuple[str, dict[str, Any]]]  # the first is the control
    users: int = 2000
    ramp: list[dict[str, Any]] | None = None
    guardrails: dict[str, Any] | None = None
    watch_every: int = 500
    drop: tuple[str, list[float]] | None = None  # (variant, rising shares of its users whose log is lost)
    isolated: bool = False  # the learning variants learn in states of their own (semantic learns nothing)


def replay_experiment(scenario: Scenario, plan: ExperimentPlan) -> dict[str, Any]:
    replay_reset(scenario)
    api_key, _ = api_key_create(name="simulate experiment")
    key = "sim-" + "-".join(name for name, _ in plan.variants)[:80]
    Experiment.objects.filter(key=key).delete()
    experiment = experiment_create(
        key=key,
        unit="user",
        variants=[
            VariantSpec(name, config, is_control=i == 0, learning=_learning(plan, config))
            for i, (name, config) in enumerate(plan.variants)
        ],
        actor="simulate",
        ramp=plan.ramp or [],
        guardrails=plan.guardrails or {},
    )
    experiment_start(experiment=experiment, actor="simulate")
    reset_cache()
    agent_rng, policy_rng = random.Random(scenario.seed), np.random.default_rng(scenario.seed)
    run = PolicyRun(policy=key, config={})
    watches: list[dict[str, Any]] = []
    started = time.perf_counter()
    for step, query in enumerate(scenario.stream, start=1):
        result = recommendation_create(
            api_key=api_key,
            messages=[{"role": "user", "content": query.text}],
            k=scenario.k,
            user_id=f"user-{agent_rng.randrange(plan.users)}",
            rng=policy_rng,
        )
        used = scenario.agent.uses([t.name for t in result.tools], query.relevant, agent_rng)
        if used and result.recommendation_id is not None:
            feedback_record(
                api_key=api_key,
                recommendation_id=result.recommendation_id,
                items=[FeedbackItem(tool=t, used=True, event_id=f"sim-{uuid.uuid4().hex}") for t in used],
            )
        if step % scenario.batch == 0:
            learn_pending(run)
        if step % plan.watch_every == 0:
            outcome = experiments_watch().get(key, "not running")
            reset_cache()  # a web process would notice within seconds; the replay at once
            watches.append({"step": step, "outcome": outcome})
            scenario.progress(f"step {step:>6}: watch {outcome}")
    learn_pending(run)
    experiment.refresh_from_db()
    report: dict[str, Any] = {
        "experiment": key,
        "steps": len(scenario.stream),
        "users": plan.users,
        "seconds": time.perf_counter() - started,
        "watches": watches,
        "events": [
            {"action": e.action, "actor": e.actor, "reason": e.reason}
            for e in ExperimentEvent.objects.filter(experiment=experiment).order_by("id")
        ],
        "status": experiment.status,
        "stop_reason": experiment.stop_reason,
        "results": results_json(experiment_results(experiment)),
    }
    if plan.drop is not None:
        report["drops"] = _drop_users(experiment, *plan.drop, seed=scenario.seed)
    return report


def _learning(plan: ExperimentPlan, config: dict[str, Any]) -> str:
    return "isolated" if plan.isolated and config.get("name") != "semantic" else "shared"


def _drop_users(experiment: Experiment, variant: str, shares: list[float], *, seed: int) -> list[dict[str, Any]]:
    """Delete the whole log of a share of the variant's users (as a client losing its logs),
    share after rising share (the same users first), with the results read after each."""
    users = sorted(
        set(
            Recommendation.objects.filter(experiment_key=experiment.key, variant=variant).values_list(
                "user_id", flat=True
            )
        )
    )
    order = random.Random(seed).sample(users, len(users))
    out = []
    for share in sorted(shares):
        lost = order[: round(share * len(users))]
        Recommendation.objects.filter(experiment_key=experiment.key, user_id__in=lost).delete()
        results = results_json(experiment_results(experiment))
        out.append({"variant": variant, "share": share, "users": len(lost), "of_users": len(users), "results": results})
    return out


def print_experiment_report(write: Any, report: dict[str, Any]) -> None:
    size = f"{report['steps']} steps, {report['users']} users, {report['seconds']:.0f}s"
    write(f"\nexperiment {report['experiment']}: {size}")
    for event in report["events"]:
        write(f"  {event['action']:<10} by {event['actor']:<10} {event['reason']}")
    _print_results(write, report["results"])
    for d in report.get("drops", []):
        write(f"after losing the log of {d['users']} of {d['of_users']} {d['variant']} users ({d['share']:.0%}):")
        _print_results(write, d["results"])


def _print_results(write: Any, body: dict[str, Any]) -> None:
    for v in body["variants"]:
        write(
            f"  {v['name']:<12} units {v['units']:>6} recs {v['recommendations']:>6} "
            f"hit {100 * (v['hit_rate'] or 0):5.1f}% usage {100 * (v['usage_rate'] or 0):5.1f}%"
        )
    for c in body["comparisons"]:
        if c["metric"] == "hit_rate" and c["ci"][0] is not None:
            write(
                f"  hit rate {c['variant']} - control: {100 * c['delta']:+.1f} points, 95% CI "
                f"[{100 * c['ci'][0]:+.1f}, {100 * c['ci'][1]:+.1f}], always-valid "
                f"[{100 * c['cs'][0]:+.1f}, {100 * c['cs'][1]:+.1f}]"
            )
    srm = body["srm"]
    write(f"  SRM: {'MISMATCH' if srm['mismatch'] else 'ok'} (units {srm['counts']}, p = {srm['p_value']:.2g})")
    write(f"  {body['verdict_text']}")
