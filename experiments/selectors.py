from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from experiments.hashing import assign_variant
from experiments.models import Experiment


@dataclass(frozen=True)
class RunningExperiment:
    key: str
    unit: str
    variants: tuple[tuple[str, int, dict[str, Any]], ...]  # (name, weight, policy)


@dataclass(frozen=True)
class Assignment:
    experiment_key: str
    variant: str
    policy: dict[str, Any] | None  # None: the default policy (settings.RECOMMEND_POLICY)


_cache: tuple[float, RunningExperiment | None] = (0.0, None)
_lock = threading.Lock()
CACHE_SECONDS = 5.0  # how long a web process may serve a stopped experiment before noticing


def running_experiment() -> RunningExperiment | None:
    """The running experiment, read at most once per CACHE_SECONDS per process."""
    global _cache
    fetched_at, value = _cache
    if time.monotonic() - fetched_at < CACHE_SECONDS:
        return value
    with _lock:
        experiment = Experiment.objects.filter(status=Experiment.Status.RUNNING).prefetch_related("variants").first()
        value = None
        if experiment is not None:
            variants = tuple((v.name, v.weight, dict(v.policy)) for v in experiment.variants.all() if v.weight > 0)
            value = RunningExperiment(experiment.key, experiment.unit, variants) if variants else None
        _cache = (time.monotonic(), value)
    return value


def reset_cache() -> None:
    global _cache
    _cache = (0.0, None)


def assignment_for(*, user_id: str, conversation_id: str) -> Assignment:
    experiment = running_experiment()
    if experiment is None:
        return Assignment("", "default", None)
    unit_id = user_id if experiment.unit == Experiment.Unit.USER else conversation_id
    if not unit_id:
        # Without a unit id there is nothing stable to hash: serve the default, not a random arm.
        return Assignment("", "default", None)
    name = assign_variant(experiment.key, unit_id, [(n, w) for n, w, _ in experiment.variants])
    policy = next(p for n, _, p in experiment.variants if n == name)
    return Assignment(experiment.key, name, policy or None)
