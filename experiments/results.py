"""An experiment's results read from the event log (the `experiment_results` selector):
per unit sums per variant, handed to the pure analysis (experiments.analysis)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.db.models import Count, F, IntegerField, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from experiments.analysis import Analysis, Guardrails, VariantData, analyse
from experiments.models import Experiment, ExperimentUnit, Variant
from experiments.selectors import EXCLUDED
from experiments.shadow_results import shadow_results
from feedback.models import Impression, Recommendation, UsageEvent


@dataclass(frozen=True)
class LogRows:
    """One entry per logged recommendation of the experiment (placed in a variant)."""

    variant: np.ndarray  # str
    unit: np.ndarray  # str
    created: np.ndarray  # epoch seconds
    shown: np.ndarray
    uses: np.ndarray
    reward: np.ndarray
    latency_ms: np.ndarray


@dataclass(frozen=True)
class ExperimentResults:
    key: str
    status: str
    since: datetime | None
    until: datetime
    excluded: int  # requests the experiment could not place (no unit id)
    analysis: Analysis
    shadows: list[dict[str, Any]]  # experiments.shadow_results
    shadows_at: datetime | None = None  # when `shadows` was computed (a look may reuse an earlier one's)


def _count(model: type[Any], **filters: Any) -> Subquery:
    rows = model.objects.filter(recommendation=OuterRef("pk"), **filters).values("recommendation")
    return Subquery(rows.annotate(c=Count("pk")).values("c"), output_field=IntegerField())


def log_rows(experiment: Experiment, *, since: datetime | None, until: datetime) -> LogRows:
    """Per recommendation, what it showed and what was used: counted in subqueries, since
    joining impressions and usage events together would multiply the rows."""
    unit_field = "user_id" if experiment.unit == Experiment.Unit.USER else "conversation_id"
    queryset = Recommendation.objects.filter(experiment_key=experiment.key, created_at__lte=until).exclude(
        variant=EXCLUDED
    )
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    reward = UsageEvent.objects.filter(recommendation=OuterRef("pk")).values("recommendation")
    rows = list(
        queryset.annotate(
            unit=F(unit_field),
            shown=Coalesce(_count(Impression), 0),
            uses=Coalesce(_count(UsageEvent, used=True), 0),
            reward_sum=Coalesce(Subquery(reward.annotate(s=Sum("reward")).values("s")), 0.0),
        ).values_list("variant", "unit", "created_at", "shown", "uses", "reward_sum", "latency_ms")
    )
    columns: list[Any] = list(zip(*rows)) if rows else [[] for _ in range(7)]
    return LogRows(
        variant=np.asarray(columns[0], dtype=object),
        unit=np.asarray(columns[1], dtype=object),
        created=np.asarray([t.timestamp() for t in columns[2]], dtype=np.float64),
        shown=np.asarray(columns[3], dtype=np.float64),
        uses=np.asarray(columns[4], dtype=np.float64),
        reward=np.asarray(columns[5], dtype=np.float64),
        latency_ms=np.asarray(columns[6], dtype=np.float64),
    )


@dataclass(frozen=True)
class StickyUnits:
    """Bandit allocation: each unit's probability of its variant, and the shares it was placed with."""

    probability: dict[str, float]
    shares: dict[str, dict[str, float]]


def _per_unit(
    rows: LogRows, mask: np.ndarray, name: str, is_control: bool, weight: float, sticky: StickyUnits | None
) -> VariantData:
    units, index = np.unique(rows.unit[mask].astype(str), return_inverse=True)
    count = len(units)
    # Units placed while the bandit favoured this variant were likelier to land here: weighting
    # each by 1 / its probability (normalised to mean 1 in the arm) undoes the drift of shares
    # over time (inverse probability weighting, Hajek form).
    w = np.ones(count)
    if sticky is not None and count:
        w = 1.0 / np.asarray([sticky.probability.get(u, 1.0) for u in units])
        w = w / w.mean()

    def per_unit(values: np.ndarray) -> np.ndarray:
        return np.asarray(np.bincount(index, weights=values[mask], minlength=count), dtype=np.float64) * w

    return VariantData(
        name=name,
        is_control=is_control,
        weight=weight,
        recommendations=per_unit(np.ones(rows.unit.shape[0])),
        hits=per_unit((rows.uses > 0).astype(np.float64)),
        shown=per_unit(rows.shown),
        uses=per_unit(rows.uses),
        reward=per_unit(rows.reward),
        latencies_ms=rows.latency_ms[mask],
    )


def sticky_units(experiment: Experiment) -> StickyUnits | None:
    if experiment.allocation != Experiment.Allocation.THOMPSON:
        return None
    rows = ExperimentUnit.objects.filter(experiment=experiment).values_list("unit_id", "probability", "shares")
    probability, shares = {}, {}
    for unit_id, p, s in rows:
        probability[unit_id], shares[unit_id] = p, s
    return StickyUnits(probability, shares)


def guardrails_of(experiment: Experiment) -> Guardrails:
    known = {f.name for f in dataclasses.fields(Guardrails)}
    values = {k: v for k, v in (experiment.guardrails or {}).items() if k in known}
    if "metrics" in values:
        values["metrics"] = tuple(values["metrics"])
    return Guardrails(**values)


def analyse_rows(experiment: Experiment, rows: LogRows, cutoff: float | None = None) -> Analysis:
    variants = list(experiment.variants.filter(role=Variant.Role.LIVE))
    upto = np.ones(rows.created.shape, dtype=bool) if cutoff is None else rows.created <= cutoff
    sticky = sticky_units(experiment)
    expected = {v.name: float(v.weight) for v in variants}
    if sticky is not None:
        # SRM under changing shares: each unit was expected in a variant with the share it was placed with
        seen = set(rows.unit[upto].astype(str))
        expected = {v.name: sum(sticky.shares.get(u, {}).get(v.name, 0.0) for u in seen) or 1e-9 for v in variants}
    data = [
        _per_unit(rows, upto & (rows.variant == v.name), v.name, v.is_control, expected[v.name], sticky)
        for v in variants
    ]
    return analyse(data, guardrails_of(experiment))


def experiment_results(
    experiment: Experiment,
    *,
    until: datetime | None = None,
    shadows: tuple[list[dict[str, Any]], datetime] | None = None,
) -> ExperimentResults:
    """The results of the current ramp step (all of the run when there is no ramp). `shadows`,
    the shadow results and when they were computed, is used instead of computing them again
    (experiments.rollout: the periodic look reuses a recent look's)."""
    until = until or experiment.stopped_at or timezone.now()
    since = experiment.step_started_at or experiment.started_at
    rows = log_rows(experiment, since=since, until=until)
    excluded = Recommendation.objects.filter(experiment_key=experiment.key, variant=EXCLUDED).count()
    analysis = analyse_rows(experiment, rows)
    shadow_rows, shadows_at = shadows if shadows is not None else (shadow_results(experiment), timezone.now())
    return ExperimentResults(
        experiment.key, experiment.status, since, until, excluded, analysis, shadow_rows, shadows_at
    )


def effect_over_time(experiment: Experiment, rows: LogRows, points: int = 20) -> list[dict[str, Any]]:
    """The hit-rate difference of each treatment and its intervals as the data stood at
    `points` times between the first and the last recommendation (what a daily look saw)."""
    if rows.created.size == 0:
        return []
    cuts = np.linspace(rows.created.min(), rows.created.max(), points + 1)[1:]
    series = []
    for cut in cuts:
        analysis = analyse_rows(experiment, rows, float(cut))
        for c in analysis.comparisons:
            if c.metric == "hit_rate":
                point = {"at": float(cut), "variant": c.variant, "delta": c.delta, "ci": c.ci, "cs": c.cs}
                series.append(json_safe(point))
    return series


def results_json(results: ExperimentResults) -> dict[str, Any]:
    return json_safe(
        {
            "experiment": results.key,
            "status": results.status,
            "since": results.since.isoformat() if results.since else None,
            "until": results.until.isoformat(),
            "excluded_requests": results.excluded,
            "shadows": results.shadows,
            "shadows_at": results.shadows_at.isoformat() if results.shadows_at else None,
            **dataclasses.asdict(results.analysis),
        }
    )


def json_safe(value: Any) -> Any:
    """JSON (and PostgreSQL's jsonb) has no infinity or NaN: an interval not yet known is null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
