"""Every change to experiments and to the default policy goes through here: the admin, the
API, management commands and Celery (ramps, guardrails) call the same functions, and each
call leaves an ExperimentEvent with who did it and why."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from experiments import selectors
from experiments.hashing import ranges_overlap
from experiments.models import Experiment, ExperimentEvent, PolicyVersion, Variant
from experiments.policies import policy_validate
from recommender.engine.policy import policy_from_json
from recommender.learning.isolated import isolated_learners_close, isolated_learners_open
from toolrec_site.errors import Conflict, ToolrecError


@dataclass(frozen=True)
class VariantSpec:
    name: str
    policy: Any  # a policy object or a preset name
    weight: int = 1
    is_control: bool = False
    role: str = Variant.Role.LIVE
    learning: str = Variant.Learning.SHARED
    extra: dict[str, Any] = field(default_factory=dict)  # other Variant fields


def experiment_event_record(
    *, experiment: Experiment, action: str, actor: str, reason: str = "", details: dict[str, Any] | None = None
) -> ExperimentEvent:
    return ExperimentEvent.objects.create(
        experiment=experiment, action=action, actor=actor, reason=reason, details=details or {}
    )


def _check_traffic(start: float, end: float) -> None:
    if not 0.0 <= start < end <= 1.0:
        raise ToolrecError(
            f"traffic: the slice [{start}, {end}) must lie in [0, 1] and not be empty",
            details={"traffic_start": start, "traffic_end": end},
        )


def variants_check(variants: Sequence[VariantSpec]) -> list[VariantSpec]:
    """Names unique, policies valid (expanded), exactly one control (the first if none is
    marked), some traffic."""
    if len(variants) < 1:
        raise ToolrecError("variants: an experiment needs at least one variant")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ToolrecError(f"variants: names must be unique, got {names}")
    checked = [
        dataclasses.replace(v, policy=policy_validate(v.policy, field=f"variants.{v.name}.policy")) for v in variants
    ]
    for v in checked:
        if v.role not in Variant.Role.values:
            raise ToolrecError(f"variants.{v.name}.role: must be one of {Variant.Role.values}, not {v.role!r}")
        if v.role == Variant.Role.SHADOW and v.is_control:
            raise ToolrecError(f"variants.{v.name}: a shadow is never served, so it cannot be the control")
        variant_learning_check(v)
    live = [i for i, v in enumerate(checked) if v.role == Variant.Role.LIVE]
    controls = [checked[i].name for i in live if checked[i].is_control]
    if len(controls) > 1:
        raise ToolrecError(f"variants: only one control, got {controls}")
    if not live or sum(checked[i].weight for i in live) <= 0:
        raise ToolrecError("variants: the served (live) variants' weights must add up to more than zero")
    if not controls:
        checked[live[0]] = dataclasses.replace(checked[live[0]], is_control=True)
    return checked


def variant_learning_check(v: VariantSpec) -> None:
    where = f"variants.{v.name}.learning"
    if v.learning not in Variant.Learning.values:
        raise ToolrecError(f"{where}: must be one of {Variant.Learning.values}, not {v.learning!r}")
    if v.learning != Variant.Learning.ISOLATED:
        return
    if v.role == Variant.Role.SHADOW:
        # A shadow's slates are never shown, so no feedback is ever about them: alone it would learn nothing.
        raise ToolrecError(f"{where}: a shadow is never served, so it has no feedback of its own to learn from")
    if v.policy.get("name") == "semantic":
        raise ToolrecError(f"{where}: the semantic policy reads nothing learned; isolate a bandit, ltr or hybrid")


# The API's path for the default policy sits beside the experiments' keys (/api/v1/experiments/...).
RESERVED_KEYS = frozenset({"default-policy"})


@transaction.atomic
def experiment_create(
    *,
    key: str,
    name: str = "",
    unit: str = Experiment.Unit.USER,
    variants: Sequence[VariantSpec],
    traffic: tuple[float, float] = (0.0, 1.0),
    actor: str,
    **fields: Any,
) -> Experiment:
    if unit not in Experiment.Unit.values:
        raise ToolrecError(f"unit: must be one of {Experiment.Unit.values}, not {unit!r}")
    _check_traffic(*traffic)
    if key in RESERVED_KEYS:
        raise ToolrecError(f"key: {key!r} is reserved; choose another key")
    if Experiment.objects.filter(key=key).exists():
        raise Conflict(f"key: an experiment {key!r} exists already")
    checked = variants_check(variants)
    if "ramp" in fields:
        fields["ramp"] = ramp_check(fields["ramp"])
    if "guardrails" in fields:
        fields["guardrails"] = guardrails_check(fields["guardrails"])
    _allocation_check(fields, live=sum(v.role == Variant.Role.LIVE for v in checked))
    experiment = Experiment.objects.create(
        key=key, name=name or key, unit=unit, traffic_start=traffic[0], traffic_end=traffic[1], **fields
    )
    Variant.objects.bulk_create(
        Variant(
            experiment=experiment,
            name=v.name,
            policy=v.policy,
            weight=v.weight,
            is_control=v.is_control,
            role=v.role,
            learning=v.learning,
            **v.extra,
        )
        for v in checked
    )
    experiment_event_record(experiment=experiment, action="created", actor=actor, details={"variants": len(checked)})
    return experiment


WEIGHT_SCALE = 10_000  # a ramp's shares become integer weights out of this


def variant_shares_set(*, experiment: Experiment, share: float) -> None:
    """Give the treatments `share` of the experiment's units (split evenly), control the rest.
    Hash assignment keeps this monotone: a larger share only moves units from control."""
    variants = list(experiment.variants.filter(role=Variant.Role.LIVE))
    treatments = max(sum(not v.is_control for v in variants), 1)
    for v in variants:
        v.weight = round((1 - share) * WEIGHT_SCALE) if v.is_control else round(share * WEIGHT_SCALE / treatments)
    Variant.objects.bulk_update(variants, ["weight"])


def ramp_check(ramp: Any) -> list[dict[str, Any]]:
    """A ramp: a list of steps {"share", "min_minutes", "min_units"}, shares rising in (0, 1]."""
    if not ramp:
        return []
    if not isinstance(ramp, list) or not all(isinstance(s, dict) for s in ramp):
        raise ToolrecError('ramp: must be a list of steps such as {"share": 0.1, "min_minutes": 60}')
    shares = []
    for i, step in enumerate(ramp):
        share = step.get("share")
        if not isinstance(share, int | float) or isinstance(share, bool) or not 0 < share <= 1:
            raise ToolrecError(f"ramp[{i}].share: must be a number in (0, 1], got {share!r}")
        for name in ("min_minutes", "min_units"):
            value = step.get(name, 0)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ToolrecError(f"ramp[{i}].{name}: must be a number >= 0, got {value!r}")
        unknown = set(step) - {"share", "min_minutes", "min_units"}
        if unknown:
            raise ToolrecError(f"ramp[{i}]: unknown field {sorted(unknown)[0]!r}")
        shares.append(share)
    if shares != sorted(shares) or len(set(shares)) != len(shares):
        raise ToolrecError(f"ramp: shares must rise step by step, got {shares}")
    return [dict(s) for s in ramp]


GUARDRAIL_NUMBERS = ("tau", "alpha", "max_p99_ms", "min_units")
GUARDRAIL_METRICS = ("hit_rate", "usage_rate", "mean_reward")


def guardrails_check(guardrails: Any) -> dict[str, Any]:
    """{"tau", "alpha", "max_p99_ms", "min_units", "metrics"}: each optional, each checked by name."""
    if not guardrails:
        return {}
    if not isinstance(guardrails, dict):
        raise ToolrecError('guardrails: must be an object such as {"max_p99_ms": 300}')
    for name, value in guardrails.items():
        if name == "metrics":
            if not isinstance(value, list) or any(m not in GUARDRAIL_METRICS for m in value):
                raise ToolrecError(f"guardrails.metrics: a list of {GUARDRAIL_METRICS}, got {value!r}")
        elif name not in GUARDRAIL_NUMBERS:
            raise ToolrecError(f"guardrails.{name}: unknown field (known: {', '.join(GUARDRAIL_NUMBERS)}, metrics)")
        elif not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ToolrecError(f"guardrails.{name}: must be a number >= 0, got {value!r}")
        elif name in ("tau", "alpha") and not 0 < value < 1:
            raise ToolrecError(f"guardrails.{name}: must be in (0, 1), got {value!r}")
    return dict(guardrails)


def _allocation_check(fields: dict[str, Any], *, live: int) -> None:
    allocation = fields.get("allocation", Experiment.Allocation.FIXED)
    if allocation not in Experiment.Allocation.values:
        raise ToolrecError(f"allocation: must be one of {Experiment.Allocation.values}, not {allocation!r}")
    if allocation == Experiment.Allocation.THOMPSON:
        if fields.get("ramp"):
            raise ToolrecError("ramp: a bandit-allocated experiment sets its shares itself; leave the ramp empty")
        min_share = fields.get("min_share", 0.1)
        if not isinstance(min_share, int | float) or not 0 <= min_share * live <= 1:
            raise ToolrecError(f"min_share: must be in [0, 1/{live}] for {live} live variants, got {min_share!r}")


def _lock_experiments() -> None:
    # Starting checks the slices of the running experiments; two starts at once must not both
    # pass that check, so they serialise on the (small) experiments table's rows.
    list(Experiment.objects.select_for_update().order_by("id").values_list("id", flat=True))


@transaction.atomic
def experiment_start(*, experiment: Experiment, actor: str) -> Experiment:
    _lock_experiments()
    experiment.refresh_from_db()
    if experiment.status != Experiment.Status.DRAFT:
        raise Conflict(f"{experiment.key} is {experiment.status}; only a draft can start (create a new experiment)")
    _check_traffic(experiment.traffic_start, experiment.traffic_end)
    stored = list(experiment.variants.all())
    variants_check([VariantSpec(v.name, v.policy, v.weight, v.is_control, v.role, v.learning) for v in stored])
    ramp_check(experiment.ramp)
    guardrails_check(experiment.guardrails)
    _allocation_check(
        {"allocation": experiment.allocation, "ramp": experiment.ramp, "min_share": experiment.min_share},
        live=sum(v.role == Variant.Role.LIVE for v in stored),
    )
    if sum(v.is_control for v in stored if v.role == Variant.Role.LIVE) != 1:
        raise ToolrecError("variants: mark exactly one variant as the control before starting")
    mine = (experiment.traffic_start, experiment.traffic_end)
    for other in Experiment.objects.filter(status=Experiment.Status.RUNNING).exclude(pk=experiment.pk):
        if ranges_overlap(mine, (other.traffic_start, other.traffic_end)):
            raise Conflict(
                f"traffic: [{mine[0]}, {mine[1]}) overlaps the running experiment {other.key!r} "
                f"([{other.traffic_start}, {other.traffic_end})); give each a disjoint slice",
                details={"overlaps": other.key},
            )
    experiment.status = Experiment.Status.RUNNING
    experiment.started_at = experiment.step_started_at = timezone.now()
    experiment.ramp_step = 0
    if experiment.ramp:
        variant_shares_set(experiment=experiment, share=float(experiment.ramp[0]["share"]))
    experiment.save(update_fields=["status", "started_at", "step_started_at", "ramp_step"])
    isolated = [v.name for v in stored if v.learning == Variant.Learning.ISOLATED]
    isolated_learners_open(experiment_key=experiment.key, variants=isolated)
    details = {"isolated": isolated} if isolated else None
    experiment_event_record(experiment=experiment, action="started", actor=actor, details=details)
    _warn_if_control_is_not_default(experiment, next(v for v in stored if v.is_control and v.role == Variant.Role.LIVE))
    transaction.on_commit(selectors.reset_cache)
    return experiment


def _warn_if_control_is_not_default(experiment: Experiment, control: Variant) -> None:
    """A stop (a guardrail's too) returns every unit to the default policy: that is "back to
    control" only when the control serves the default. Allowed (comparing two candidates
    against each other is legitimate), but said where operators look: the event log."""
    default, version = selectors.policy_current()
    if policy_from_json(policy_validate(control.policy)) != policy_from_json(policy_validate(default)):
        experiment_event_record(
            experiment=experiment,
            action="warning",
            actor="system",
            reason=(
                f"the control {control.name!r} does not serve the default policy (version {version}): "
                "a stop, a guardrail's included, returns traffic to the default, not to the control"
            ),
            details={"control": control.policy, "default": default},
        )


@transaction.atomic
def experiment_stop(*, experiment: Experiment, actor: str, reason: str = "", action: str = "stopped") -> Experiment:
    """Stop it: its units go back to the default policy (within the selectors' cache time)."""
    updated = Experiment.objects.filter(pk=experiment.pk, status=Experiment.Status.RUNNING).update(
        status=Experiment.Status.STOPPED, stopped_at=timezone.now(), stop_reason=reason[:300]
    )
    experiment.refresh_from_db()
    if not updated:
        raise Conflict(f"{experiment.key} is not running ({experiment.status})")
    isolated_learners_close(experiment_key=experiment.key)
    experiment_event_record(experiment=experiment, action=action, actor=actor, reason=reason)
    transaction.on_commit(selectors.reset_cache)
    return experiment


def _current_version() -> PolicyVersion | None:
    return PolicyVersion.objects.select_for_update().order_by("-version").first()


def _version_create(
    *, policy: dict[str, Any], source: str, actor: str, replaces: PolicyVersion | None
) -> PolicyVersion:
    latest = PolicyVersion.objects.order_by("-version").values_list("version", flat=True).first()
    number = (latest or 0) + 1
    version = PolicyVersion.objects.create(
        version=number, policy=policy, source=source[:200], created_by=actor, replaces=replaces
    )
    transaction.on_commit(selectors.reset_cache)
    return version


@transaction.atomic
def policy_default_set(*, policy: Any, actor: str, source: str = "admin") -> PolicyVersion:
    """A new default policy version, serving all traffic outside experiments within seconds.
    The first change also records RECOMMEND_POLICY as version 1, so it can be rolled back to."""
    checked = policy_validate(policy)
    current = _current_version()
    if current is None:
        current = _version_create(
            policy=dict(settings.RECOMMEND_POLICY), source="RECOMMEND_POLICY", actor="settings", replaces=None
        )
    return _version_create(policy=checked, source=source, actor=actor, replaces=current)


@transaction.atomic
def policy_rollback(*, actor: str) -> PolicyVersion:
    """Serve again the version the current one replaced (as a new version: history stays)."""
    current = _current_version()
    if current is None or current.replaces is None:
        raise Conflict("There is no earlier default policy to roll back to.")
    target = current.replaces
    return _version_create(
        policy=dict(target.policy), source=f"rollback to v{target.version}", actor=actor, replaces=target.replaces
    )


@transaction.atomic
def policy_version_restore(*, version: PolicyVersion, actor: str) -> PolicyVersion:
    """Serve an older version again (as a new version)."""
    current = _current_version()
    return _version_create(
        policy=dict(version.policy), source=f"restore v{version.version}", actor=actor, replaces=current
    )


@transaction.atomic
def experiment_promote(*, experiment: Experiment, variant_name: str, actor: str) -> PolicyVersion:
    """Make the variant's policy the default for all traffic and stop the experiment.

    An isolated variant's own state is not adopted: the default is served from the shared
    state, which learned from the variant's traffic as well as everyone else's (its own
    state saw only its share, and would throw the rest away)."""
    variant = Variant.objects.filter(experiment=experiment, name=variant_name).first()
    if variant is None:
        raise ToolrecError(f"variant: {experiment.key} has no variant {variant_name!r}")
    version = policy_default_set(policy=variant.policy, actor=actor, source=f"promoted {experiment.key}/{variant_name}")
    experiment.refresh_from_db()
    reason = f"promoted {variant_name} to the default policy (v{version.version})"
    if experiment.status == Experiment.Status.RUNNING:
        experiment_stop(experiment=experiment, actor=actor, reason=reason, action="promoted")
    else:
        experiment_event_record(experiment=experiment, action="promoted", actor=actor, reason=reason)
    return version
