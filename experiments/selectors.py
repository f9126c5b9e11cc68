from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from experiments.hashing import assign_variant, in_traffic
from experiments.models import Experiment, ExperimentUnit, PolicyVersion, Variant
from toolrec_site.errors import NotFound

EXCLUDED = "excluded"  # the variant of a request an experiment could not place (no unit id)
DEFAULT = "default"


@dataclass(frozen=True)
class RunningVariant:
    name: str
    weight: int
    policy: dict[str, Any]
    is_control: bool
    shadow: bool = False
    isolated: bool = False  # learns and is served from a state of its own


@dataclass(frozen=True)
class RunningExperiment:
    key: str
    unit: str
    traffic: tuple[float, float]
    variants: tuple[RunningVariant, ...]
    id: int = 0
    sticky: bool = False  # bandit allocation: a unit keeps its first variant (ExperimentUnit)


@dataclass(frozen=True)
class ServingConfig:
    """What assignment needs, read together: the running experiments and the default policy."""

    experiments: tuple[RunningExperiment, ...]
    default_policy: dict[str, Any] | None  # None: no version saved yet, RECOMMEND_POLICY serves
    default_version: int  # 0 for RECOMMEND_POLICY


@dataclass(frozen=True)
class Assignment:
    experiment_key: str
    variant: str
    policy: dict[str, Any] | None  # None: the default policy (see `default_policy`)
    shadows: tuple[tuple[str, dict[str, Any]], ...] = ()  # (variant, policy) ranked beside, not served
    isolated: bool = False  # served from the variant's own learned state (recommender.learning.isolated)


_cache: tuple[float, ServingConfig | None] = (0.0, None)
_lock = threading.Lock()
# How long a web process may serve a stopped experiment or a replaced default policy
# before noticing: the price of reading two small tables at most once per 5 s per process.
CACHE_SECONDS = 5.0


def _read_serving_config() -> ServingConfig:
    rows = Experiment.objects.filter(status=Experiment.Status.RUNNING).prefetch_related("variants").order_by("id")
    running = []
    for experiment in rows:
        variants = tuple(
            RunningVariant(
                v.name,
                v.weight,
                dict(v.policy),
                v.is_control,
                v.role == Variant.Role.SHADOW,
                v.learning == Variant.Learning.ISOLATED,
            )
            for v in experiment.variants.all()
            if v.weight > 0 or v.role == Variant.Role.SHADOW
        )
        if any(not v.shadow for v in variants):
            traffic = (experiment.traffic_start, experiment.traffic_end)
            sticky = experiment.allocation == Experiment.Allocation.THOMPSON
            running.append(RunningExperiment(experiment.key, experiment.unit, traffic, variants, experiment.pk, sticky))
    current = PolicyVersion.objects.order_by("-version").first()
    if current is None:
        return ServingConfig(tuple(running), None, 0)
    return ServingConfig(tuple(running), dict(current.policy), current.version)


def serving_config() -> ServingConfig:
    """Read at most once per CACHE_SECONDS per process."""
    global _cache
    fetched_at, value = _cache
    if value is not None and time.monotonic() - fetched_at < CACHE_SECONDS:
        return value
    with _lock:
        value = _read_serving_config()
        _cache = (time.monotonic(), value)
    return value


def reset_cache() -> None:
    global _cache
    _cache = (0.0, None)
    _sticky_seen.clear()


def default_policy() -> dict[str, Any]:
    """The policy that serves traffic outside experiments: the current PolicyVersion, or
    RECOMMEND_POLICY until the first version is saved."""
    return serving_config().default_policy or dict(settings.RECOMMEND_POLICY)


def assignment_for(*, user_id: str, conversation_id: str) -> Assignment:
    """The first running experiment whose slice holds the unit decides; a request that an
    experiment cannot place for want of its unit id is counted against it as excluded."""
    excluded_from = ""
    for experiment in serving_config().experiments:
        unit_id = user_id if experiment.unit == Experiment.Unit.USER else conversation_id
        if not unit_id:
            excluded_from = excluded_from or experiment.key
            continue
        if not in_traffic(unit_id, *experiment.traffic):
            continue
        live = [(v.name, v.weight) for v in experiment.variants if not v.shadow]
        name = (
            sticky_variant(experiment, unit_id, live)
            if experiment.sticky
            else assign_variant(experiment.key, unit_id, live)
        )
        variant = next(v for v in experiment.variants if v.name == name)
        return Assignment(experiment.key, name, variant.policy or None, _shadows(experiment), variant.isolated)
    if excluded_from:
        # Without a unit id there is nothing stable to hash: serve the default, and say so.
        # Shadows still rank it: they change nothing the unit sees.
        experiment = next(e for e in serving_config().experiments if e.key == excluded_from)
        return Assignment(excluded_from, EXCLUDED, None, _shadows(experiment))
    return Assignment("", DEFAULT, None)


_sticky_seen: OrderedDict[tuple[int, str], str] = OrderedDict()
STICKY_CACHE_SIZE = 100_000  # a unit's variant never changes, so a process may remember it


def sticky_variant(experiment: RunningExperiment, unit_id: str, live: list[tuple[str, int]]) -> str:
    """The unit's variant from its first request on; a new unit is placed by hash with the
    current shares and stored with its probability (a concurrent first request of the same
    unit loses the insert and reads the winner's variant)."""
    cache_key = (experiment.id, unit_id)
    known = _sticky_seen.get(cache_key)
    if known is None:
        rows = ExperimentUnit.objects.filter(experiment_id=experiment.id, unit_id=unit_id)
        known = rows.values_list("variant", flat=True).first()
        if known is None:
            total = sum(w for _, w in live)
            name = assign_variant(experiment.key, unit_id, live)
            shares = {n: w / total for n, w in live}
            ExperimentUnit.objects.bulk_create(
                [
                    ExperimentUnit(
                        experiment_id=experiment.id,
                        unit_id=unit_id,
                        variant=name,
                        probability=shares[name],
                        shares=shares,
                    )
                ],
                ignore_conflicts=True,
            )
            known = rows.values_list("variant", flat=True).first() or name
        with _lock:
            _sticky_seen[cache_key] = known
            if len(_sticky_seen) > STICKY_CACHE_SIZE:
                _sticky_seen.popitem(last=False)
    return known


def _shadows(experiment: RunningExperiment) -> tuple[tuple[str, dict[str, Any]], ...]:
    return tuple((v.name, v.policy) for v in experiment.variants if v.shadow)


def policy_history(limit: int = 20) -> list[PolicyVersion]:
    return list(PolicyVersion.objects.select_related("replaces").order_by("-version")[:limit])


def policy_current() -> tuple[dict[str, Any], int]:
    """The default policy and its version as stored now (not this process's cached view);
    version 0 while RECOMMEND_POLICY serves."""
    current = PolicyVersion.objects.order_by("-version").first()
    if current is None:
        return dict(settings.RECOMMEND_POLICY), 0
    return dict(current.policy), current.version


def experiment_list(*, status: str | None = None) -> QuerySet[Experiment]:
    experiments = Experiment.objects.prefetch_related("variants").order_by("-created_at", "-id")
    return experiments.filter(status=status) if status else experiments


def experiment_get(*, key: str) -> Experiment:
    experiment = Experiment.objects.prefetch_related("variants").filter(key=key).first()
    if experiment is None:
        raise NotFound(f"No experiment {key!r}.")
    return experiment
