"""What runs an experiment between people's actions: looks (the results recorded at a point
in time), guardrails that stop a treatment that is worse beyond doubt, and ramps that widen
a treatment's share step by step. Celery beat calls `experiments_watch` (experiments.tasks);
every automatic action is an ExperimentEvent with actor "automatic" and its reason."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from experiments import selectors
from experiments.models import Experiment, ExperimentLook, Variant
from experiments.results import experiment_results, results_json
from experiments.services import WEIGHT_SCALE, experiment_event_record, experiment_stop, variant_shares_set
from experiments.stats import thompson_shares

log = logging.getLogger(__name__)
AUTOMATIC = "automatic"


def experiment_look_record(*, experiment: Experiment, fresh_shadows: bool = True) -> ExperimentLook:
    """Record the results as they stand. Without `fresh_shadows` (the periodic watch), the
    shadow results of a look less than SHADOW_RESULTS_SECONDS old are reused: they are
    computed in Python over every slate and impression of the experiment, about 50 us per
    recommendation (a million shadowed requests would take most of a core if recomputed
    every minute), and no guardrail reads them. The look records when they were computed."""
    shadows = None if fresh_shadows else _recent_shadows(experiment)
    results = experiment_results(experiment, shadows=shadows)
    body = results_json(results)
    return ExperimentLook.objects.create(
        experiment=experiment,
        ramp_step=experiment.ramp_step,
        units=sum(v.units for v in results.analysis.variants),
        verdict=results.analysis.verdict,
        results=body,
    )


def _recent_shadows(experiment: Experiment) -> tuple[list[dict[str, Any]], datetime] | None:
    last = experiment.looks.order_by("-created_at", "-id").values_list("results", flat=True).first()
    if not isinstance(last, dict):
        return None
    at = parse_datetime(last.get("shadows_at") or "")
    if at is None or (timezone.now() - at).total_seconds() >= settings.SHADOW_RESULTS_SECONDS:
        return None
    return list(last.get("shadows") or []), at


def guardrails_apply(*, experiment: Experiment, look: ExperimentLook) -> bool:
    """Stop the experiment when a guardrail fired or the split is broken (returns True)."""
    results: dict[str, Any] = look.results
    reasons = [f"{name}: {'; '.join(r)}" for name, r in results.get("breaches", {}).items()]
    srm = results.get("srm", {})
    if srm.get("mismatch") and results.get("verdict") == "stop":
        reasons.insert(0, f"sample ratio mismatch (p = {srm.get('p_value', 0):.1e}, units {srm.get('counts')})")
    if not reasons:
        return False
    experiment_stop(
        experiment=experiment,
        actor=AUTOMATIC,
        reason="guardrail: " + " | ".join(reasons),
        action="guardrail",
    )
    log.warning("experiment %s stopped by its guardrail: %s", experiment.key, reasons)
    return True


@transaction.atomic
def ramp_advance(*, experiment: Experiment, look: ExperimentLook) -> bool:
    """Move to the next step once the current one has had its time and sample and no
    guardrail fired (returns True when it moved)."""
    steps = experiment.ramp
    if not steps or experiment.ramp_step + 1 >= len(steps) or experiment.step_started_at is None:
        return False
    step = steps[experiment.ramp_step]
    waited = timezone.now() - experiment.step_started_at
    if waited < timedelta(minutes=float(step.get("min_minutes", 0))):
        return False
    smallest = min((v["units"] for v in look.results["variants"]), default=0)
    if smallest < int(step.get("min_units", 0)):
        return False
    following = float(steps[experiment.ramp_step + 1]["share"])
    variant_shares_set(experiment=experiment, share=following)
    experiment.ramp_step += 1
    experiment.step_started_at = timezone.now()
    experiment.save(update_fields=["ramp_step", "step_started_at"])
    experiment_event_record(
        experiment=experiment,
        action="ramped",
        actor=AUTOMATIC,
        reason=(
            f"step {experiment.ramp_step}: treatment share {following:.0%} after {waited} "
            f"with {smallest} units in the smallest variant and no guardrail fired"
        ),
        details={"step": experiment.ramp_step, "share": following},
    )
    transaction.on_commit(selectors.reset_cache)
    return True


def experiment_watch(*, experiment_id: int) -> str:
    """One look at one running experiment: record it, apply the guardrails, advance the ramp."""
    experiment = Experiment.objects.get(pk=experiment_id)
    if experiment.status != Experiment.Status.RUNNING:
        return "not running"
    look = experiment_look_record(experiment=experiment, fresh_shadows=False)
    if guardrails_apply(experiment=experiment, look=look):
        return "stopped"
    if experiment.allocation == Experiment.Allocation.THOMPSON:
        return "allocated" if allocation_update(experiment=experiment, look=look) else "watched"
    return "ramped" if ramp_advance(experiment=experiment, look=look) else "watched"


SHARE_CHANGE = 0.01  # smaller moves of the bandit's shares are not worth a write and an event


@transaction.atomic
def allocation_update(*, experiment: Experiment, look: ExperimentLook, rng: np.random.Generator | None = None) -> bool:
    """Thompson allocation: the live variants' shares become their probability of having the
    best hit rate (floored at min_share). Units already placed keep their variant."""
    rows = {v["name"]: v for v in look.results["variants"]}
    variants = list(experiment.variants.filter(role=Variant.Role.LIVE).order_by("id"))
    hits = [
        (rows[v.name]["hit_rate"] or 0) * rows[v.name]["recommendations"] if v.name in rows else 0 for v in variants
    ]
    trials = [rows[v.name]["recommendations"] if v.name in rows else 0 for v in variants]
    shares = thompson_shares(
        np.nan_to_num(np.asarray(hits, dtype=np.float64)),
        trials,
        min_share=experiment.min_share,
        rng=rng or np.random.default_rng(),
    )
    total = sum(v.weight for v in variants) or 1
    if max(abs(float(s) - v.weight / total) for s, v in zip(shares, variants)) < SHARE_CHANGE:
        return False
    for share, v in zip(shares, variants):
        v.weight = max(1, round(float(share) * WEIGHT_SCALE))
    Variant.objects.bulk_update(variants, ["weight"])
    new = {v.name: round(float(s), 4) for s, v in zip(shares, variants)}
    experiment_event_record(
        experiment=experiment,
        action="allocated",
        actor=AUTOMATIC,
        reason="Thompson sampling on hit rate: shares " + ", ".join(f"{n} {s:.0%}" for n, s in new.items()),
        details={"shares": new, "recommendations": dict(zip([v.name for v in variants], trials))},
    )
    transaction.on_commit(selectors.reset_cache)
    return True


def experiments_watch() -> dict[str, str]:
    """Every running experiment, each on its own (one failing does not stop the others)."""
    outcome = {}
    for experiment_id, key in Experiment.objects.filter(status=Experiment.Status.RUNNING).values_list("id", "key"):
        try:
            outcome[key] = experiment_watch(experiment_id=experiment_id)
        except Exception:
            log.exception("watching experiment %s failed", key)
            outcome[key] = "failed"
    return outcome
