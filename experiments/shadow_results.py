"""What a shadow variant would have done, judged on the served log: the share of the uses
of served tools that its slate also held (and at which rank), and off-policy estimates
(IPS, SNIPS, from recommender.engine.ope) of the uses per recommendation it would get,
weighted by the served policy's logged propensities."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from experiments.models import Experiment, ShadowSlate, Variant
from feedback.models import Impression, ShadowPending, UsageEvent
from recommender.engine.ope import Estimate, ips, snips


def _estimate(e: Estimate) -> dict[str, float]:
    return {"value": e.value, "ci_low": e.ci_low, "ci_high": e.ci_high, "effective_n": e.effective_n}


def shadow_result(experiment: Experiment, variant: str) -> dict[str, Any]:
    slates = {
        s.recommendation_id: s
        for s in ShadowSlate.objects.filter(experiment_key=experiment.key, variant=variant).only(
            "recommendation_id", "tool_ids", "served_target"
        )
    }
    # Requests the shadow worker has not ranked yet (recommender.serving.shadow): not in the
    # figures below, which a backlog would otherwise make look complete.
    pending = ShadowPending.objects.filter(experiment_key=experiment.key).count()
    out: dict[str, Any] = {"variant": variant, "recommendations": len(slates), "pending": pending}
    if not slates:
        return out
    ids = list(slates)
    used = set(
        UsageEvent.objects.filter(recommendation_id__in=ids, used=True).values_list("recommendation_id", "tool_id")
    )
    impressions = Impression.objects.filter(recommendation_id__in=ids).values_list(
        "recommendation_id", "tool_id", "rank", "propensity"
    )
    ranks: list[int] = []
    for rec_id, tool_id in used:
        slate = slates[rec_id].tool_ids
        if tool_id in slate:
            ranks.append(slate.index(tool_id) + 1)
    out.update(
        served_uses=len(used),
        uses_in_shadow_slate=len(ranks),
        share_of_uses_in_shadow_slate=len(ranks) / len(used) if used else None,
        mean_rank_of_used_in_shadow=float(np.mean(ranks)) if ranks else None,
        rank_histogram=_histogram(ranks),
    )
    rewards, logging, target, rounds = [], [], [], []
    for rec_id, tool_id, rank, propensity in impressions:
        served_target = slates[rec_id].served_target
        rewards.append(float((rec_id, tool_id) in used))
        logging.append(max(float(propensity), 1e-6))
        target.append(float(served_target[rank - 1]) if rank - 1 < len(served_target) else 0.0)
        rounds.append(str(rec_id))
    if rewards:
        out["served_uses_per_recommendation"] = sum(rewards) / len(slates)
        out["ips_uses_per_recommendation"] = _estimate(ips(rewards, logging, target, rounds=rounds))
        out["snips_uses_per_recommendation"] = _estimate(snips(rewards, logging, target, rounds=rounds))
        out["deterministic_log"] = bool(np.all(np.asarray(logging) >= 1.0))
    return out


def _histogram(ranks: list[int]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for r in ranks:
        counts[str(r)] += 1
    return dict(sorted(counts.items(), key=lambda kv: int(kv[0])))


def shadow_results(experiment: Experiment) -> list[dict[str, Any]]:
    names = experiment.variants.filter(role=Variant.Role.SHADOW).values_list("name", flat=True)
    return [shadow_result(experiment, name) for name in names]
