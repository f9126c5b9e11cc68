"""Off-policy evaluation of a policy on the logged recommendations (pure maths in
`engine/ope.py`; this module reads the log and the current model)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

import numpy as np
from django.utils import timezone

from feedback.models import Impression, Recommendation, UsageEvent
from recommender.engine.bandit import LinearBanditState, predict
from recommender.engine.candidate_log import read_candidate_log
from recommender.engine.ltr import predict as ltr_predict
from recommender.engine.ope import OpeConfig, doubly_robust, ips, snips
from recommender.engine.policy import PolicyConfig, inclusion_probabilities
from recommender.serving.holders import learned


def evaluate_policy(
    *, config: PolicyConfig, since_days: float = 30, limit: int = 20_000, seed: int = 0, max_weight: float = 50.0
) -> dict[str, Any]:
    """IPS, SNIPS and doubly robust estimates of `config`'s expected uses per recommendation,
    next to what the logging policies achieved on the same recommendations."""
    rng = np.random.default_rng(seed)
    state = learned.get()
    bandit = state.bandit if state is not None else None
    recs = list(
        Recommendation.objects.filter(created_at__gte=timezone.now() - timedelta(days=since_days))
        .exclude(candidate_log=None)
        .order_by("-created_at")
        .values_list("pk", "k", "candidate_log")[:limit]
    )
    rec_ids = [r[0] for r in recs]
    shown: dict[object, list[tuple[int, float]]] = {}
    for rec_id, tool_id, propensity in Impression.objects.filter(recommendation_id__in=rec_ids).values_list(
        "recommendation_id", "tool_id", "propensity"
    ):
        shown.setdefault(rec_id, []).append((tool_id, propensity))
    rewards: dict[tuple[object, int], float] = {}
    for rec_id, tool_id, reward in UsageEvent.objects.filter(recommendation_id__in=rec_ids, used=True).values_list(
        "recommendation_id", "tool_id", "reward"
    ):
        rewards[(rec_id, tool_id)] = max(rewards.get((rec_id, tool_id), 0.0), 1.0 if reward is None else reward)
    events: dict[str, list[float]] = {name: [] for name in ("r", "p", "q", "hat_logged", "hat_target", "round")}
    deterministic = 0
    for round_index, (rec_id, k, blob) in enumerate(recs):
        if blob is None:
            continue
        logged = read_candidate_log(bytes(blob))
        features, retrieval, tool_ids = logged.features, logged.retrieval, logged.tool_ids
        usable_bandit = bandit if bandit is not None and features.shape[1] == bandit.d else None
        ltr = ltr_predict(state.ranker_text, features) if state is not None and state.ranker_text else None
        target = inclusion_probabilities(
            features, retrieval_scores=retrieval, k=k, config=config, bandit=usable_bandit, ltr_scores=ltr, rng=rng
        )
        r_hat = _reward_model(usable_bandit, features)
        position = {int(t): i for i, t in enumerate(tool_ids)}
        items = [(t, p) for t, p in shown.get(rec_id, []) if t in position]
        deterministic += all(p >= 1.0 for _, p in items)
        for j, (tool_id, propensity) in enumerate(items):
            i = position[tool_id]
            events["r"].append(rewards.get((rec_id, tool_id), 0.0))
            events["p"].append(propensity)
            events["q"].append(float(target[i]))
            events["hat_logged"].append(float(r_hat[i]))
            events["hat_target"].append(float(target @ r_hat) if j == 0 else 0.0)
            events["round"].append(round_index)
    if not events["r"]:
        return {"recommendations": 0, "estimates": {}, "logged_value": None, "deterministic_share": None}
    arrays = {name: np.asarray(values) for name, values in events.items()}
    ope = OpeConfig(max_weight=max_weight)
    rounds = arrays["round"]
    estimates = {
        "ips": ips(arrays["r"], arrays["p"], arrays["q"], rounds=rounds, config=ope, rng=rng),
        "snips": snips(arrays["r"], arrays["p"], arrays["q"], rounds=rounds, config=ope, rng=rng),
        "dr": doubly_robust(
            arrays["r"],
            arrays["p"],
            arrays["q"],
            arrays["hat_logged"],
            arrays["hat_target"],
            rounds=rounds,
            config=ope,
            rng=rng,
        ),
    }
    return {
        "recommendations": len(recs),
        "events": len(arrays["r"]),
        "logged_value": float(arrays["r"].sum() / len(recs)),
        "deterministic_share": deterministic / len(recs),
        "estimates": {name: asdict(e) for name, e in estimates.items()},
    }


def _reward_model(bandit: LinearBanditState | None, features: np.ndarray) -> np.ndarray:
    """The bandit's linear prediction of a use, clipped to [0, 1] (0 without a model)."""
    if bandit is None:
        return np.zeros(features.shape[0])
    return np.clip(predict(bandit, features), 0.0, 1.0)
