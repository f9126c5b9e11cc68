"""`simulate --experiment A,B`: one replay whose stream goes through a running experiment on
the real request path (assignment by user hash, the variant's policy, the impression log,
feedback, learning batches), with the periodic watch (looks, guardrails, ramp) run every
`watch_every` steps as Celery beat would, and the results read by `experiment_results`.

Optionally, after the run, the log of a share of one variant's users is deleted (a
logging fault such as a client that drops its impressions) and the results read again: the
sample-ratio test should notice."""

from __future__ import annotations

import contextlib
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from access.services import api_key_create
from experiments.models import Experiment, ExperimentEvent
from experiments.results import experiment_results, results_json
from experiments.rollout import experiments_watch
from experiments.selectors import reset_cache
from experiments.services import VariantSpec, experiment_create, experiment_start, policy_default_set
from feedback.models import Recommendation
from recommender.offline.replay_transport import ServiceTransport, Transport, http_transport
from recommender.offline.simulation import PolicyRun, Scenario, learn_pending, replay_reset


@dataclass(frozen=True)
class ExperimentPlan:
    variants: list[tuple[str, dict[str, Any]]]  # the first is the control
    users: int = 2000
    ramp: list[dict[str, Any]] | None = None
    guardrails: dict[str, Any] | None = None
    watch_every: int = 500
    drop: tuple[str, list[float]] | None = None  # (variant, rising shares of its users whose log is lost)
    isolated: bool = False  # the learning variants learn in states of their own (semantic learns nothing)
    via: str = "http"  # "http": through the API endpoints; "services": the service functions, seeded
    base_url: str = ""  # via http: a running server's (on this database); default: one started in a thread


def replay_experiment(scenario: Scenario, plan: ExperimentPlan) -> dict[str, Any]:
    replay_reset(scenario)
    experiment = _experiment_start(plan)
    run = PolicyRun(policy=experiment.key, config={})
    started = time.perf_counter()
    with _transport(plan, np.random.default_rng(scenario.seed)) as transport:
        watches, served_after_stop = _stream(scenario, plan, experiment.key, transport, run)
    learn_pending(run)
    experiment.refresh_from_db()
    report: dict[str, Any] = {
        "experiment": experiment.key,
        "via": plan.via if not plan.base_url else f"http {plan.base_url}",
        "steps": len(scenario.stream),
        "users": plan.users,
        "seconds": time.perf_counter() - started,
        "learn_seconds": sum(run.learn_batch_seconds),
        "watch_seconds": sum(w["seconds"] for w in watches),
        "watches": watches,
        "events": [
            {"action": e.action, "actor": e.actor, "reason": e.reason, "at": e.created_at.isoformat()}
            for e in ExperimentEvent.objects.filter(experiment=experiment).order_by("id")
        ],
        "status": experiment.status,
        "stop_reason": experiment.stop_reason,
        "served_after_stop": served_after_stop,
        "results": results_json(experiment_results(experiment)),
    }
    if plan.drop is not None:
        report["drops"] = _drop_users(experiment, *plan.drop, seed=scenario.seed)
    return report


def _experiment_start(plan: ExperimentPlan) -> Experiment:
    """The experiment, started, with its control as the default policy: an experiment tests a
    change against what is served today, and a stop (by hand or by a guardrail) returns its
    traffic to the default, which is the control only if the two are the same."""
    control_name, control = plan.variants[0]
    policy_default_set(policy=control, actor="simulate", source=f"simulate: the control, {control_name}")
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
    return experiment


@contextlib.contextmanager
def _transport(plan: ExperimentPlan, rng: np.random.Generator) -> Iterator[Transport]:
    api_key, raw_key = api_key_create(name="simulate experiment")
    if plan.via == "services":
        yield ServiceTransport(api_key, rng)
    else:
        with http_transport(raw_key, plan.base_url) as transport:
            yield transport


def _stream(
    scenario: Scenario, plan: ExperimentPlan, key: str, transport: Transport, run: PolicyRun
) -> tuple[list[dict[str, Any]], dict[str, int] | None]:
    """Send the stream, learn every `batch` steps and watch every `watch_every`; the watches
    (with which variant and policy served the requests since the previous one) and, once a
    watch stopped the experiment, who served the requests after it."""
    agent_rng, started = random.Random(scenario.seed), time.perf_counter()
    watches: list[dict[str, Any]] = []
    served: Counter[str] = Counter()
    after_stop: Counter[str] | None = None
    for step, query in enumerate(scenario.stream, start=1):
        answer = transport.recommend(text=query.text, user_id=f"user-{agent_rng.randrange(plan.users)}", k=scenario.k)
        served[f"{answer.variant}:{answer.policy}"] += 1
        if after_stop is not None:
            after_stop[f"{answer.variant}:{answer.policy}"] += 1
        used = scenario.agent.uses(answer.tools, query.relevant, agent_rng)
        if used and answer.recommendation_id is not None:
            transport.feedback(recommendation_id=answer.recommendation_id, used=used)
        if step % scenario.batch == 0:
            learn_pending(run)
        if step % plan.watch_every == 0:
            t0 = time.perf_counter()
            outcome = experiments_watch().get(key, "not running")
            reset_cache()  # a web process would notice within seconds; an in-process server at once
            took = time.perf_counter() - t0
            watches.append({"step": step, "outcome": outcome, "served": dict(served), "seconds": took})
            scenario.progress(
                f"step {step:>6} ({time.perf_counter() - started:.0f}s): watch {outcome} ({took:.1f}s); "
                f"served since the last watch {dict(served)}"
            )
            served = Counter()
            if outcome == "stopped" and after_stop is None:
                after_stop = Counter()
    return watches, dict(after_stop) if after_stop is not None else None


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
    size = f"{report['steps']} steps via {report['via']}, {report['users']} users, {report['seconds']:.0f}s"
    parts = f"learning {report['learn_seconds']:.0f}s, watches {report['watch_seconds']:.0f}s"
    write(f"\nexperiment {report['experiment']}: {size} ({parts})")
    for event in report["events"]:
        write(f"  {event['action']:<10} by {event['actor']:<10} {event['reason']}")
    if report["served_after_stop"] is not None:
        write(f"  after the stop, the requests were served by (variant:policy) {report['served_after_stop']}")
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
