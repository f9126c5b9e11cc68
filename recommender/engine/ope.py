"""Off-policy evaluation: a new policy's value estimated from the logged impressions.

Inputs are per logged event (one shown item or one chosen arm): its reward, the logging
policy's propensity of it and the target policy's probability of the same action, with the
weight w = min(target / logging, max_weight). Clipping trades a little bias for a lot of
variance; ``effective_n`` (Kish: (sum w)^2 / sum w^2) says how many events the estimate is
really worth.

``rounds`` groups events that belong to one decision (the k items of one slate). The value
is then per round (for slates with inclusion-probability propensities: the expected number of
uses per slate, see ``policy.py``), and the interval treats rounds, not items, as the
independent units, since items of one slate share their context.

Why not contextualbandits.evaluation: ``evaluateDoublyRobust`` computes the same DR formula
but only for a deterministic target (an arm index per row), returns a bare point estimate
with no interval, modifies the reward-estimate array it is given and, with its default
``handle_invalid=True``, replaces 0/1 reward estimates with random Beta draws.
``evaluateRejectionSampling`` needs uniformly random logging, which a recommender serving
real traffic never has. The tests check that ``doubly_robust`` agrees with
``evaluateDoublyRobust`` exactly where the latter applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import numpy.typing as npt

Float64Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class OpeConfig:
    max_weight: float = 50.0  # importance weights are clipped at this value
    confidence: float = 0.95
    ci: Literal["normal", "bootstrap"] = "normal"
    n_bootstrap: int = 1000  # resamples of rounds when ci == "bootstrap"

    def __post_init__(self) -> None:
        if self.max_weight <= 0 or not 0 < self.confidence < 1 or self.n_bootstrap < 10:
            raise ValueError("max_weight > 0, 0 < confidence < 1, n_bootstrap >= 10")
        if self.ci not in ("normal", "bootstrap"):
            raise ValueError(f"unknown interval method {self.ci!r}")


@dataclass(frozen=True)
class Estimate:
    value: float
    ci_low: float
    ci_high: float
    n: int  # rounds (independent units)
    effective_n: float  # Kish effective sample size of the event weights

    @property
    def half_width(self) -> float:
        return 0.5 * (self.ci_high - self.ci_low)


@dataclass(frozen=True, eq=False)
class _Log:
    rewards: Float64Array
    weights: Float64Array
    inverse: npt.NDArray[np.intp]  # round index of every event
    n_rounds: int

    def per_round(self, values: Float64Array) -> Float64Array:
        out = np.bincount(self.inverse, weights=values, minlength=self.n_rounds)
        return np.asarray(out, dtype=np.float64)

    @property
    def effective_n(self) -> float:
        sq = float((self.weights**2).sum())
        return float(self.weights.sum()) ** 2 / sq if sq > 0 else 0.0


def _prepare(
    rewards: npt.ArrayLike,
    logging_propensities: npt.ArrayLike,
    target_probabilities: npt.ArrayLike,
    rounds: npt.ArrayLike | None,
    config: OpeConfig,
) -> _Log:
    r = np.asarray(rewards, dtype=np.float64)
    mu = np.asarray(logging_propensities, dtype=np.float64)
    pi = np.asarray(target_probabilities, dtype=np.float64)
    if r.ndim != 1 or mu.shape != r.shape or pi.shape != r.shape or r.size == 0:
        raise ValueError("rewards and both probabilities must be 1-d, non-empty, aligned")
    if (mu <= 0).any() or (mu > 1).any() or (pi < 0).any() or (pi > 1).any():
        raise ValueError("logging propensities must be in (0, 1], target ones in [0, 1]")
    if rounds is None:
        inverse = np.arange(r.shape[0])
    else:
        ids = np.asarray(rounds).reshape(-1)
        if ids.shape != r.shape:
            raise ValueError("rounds must be aligned with the events")
        inverse = np.unique(ids, return_inverse=True)[1].reshape(-1)
    n_rounds = int(inverse.max()) + 1
    return _Log(rewards=r, weights=np.minimum(pi / mu, config.max_weight), inverse=inverse, n_rounds=n_rounds)


def _mean_estimate(contrib: Float64Array, log: _Log, config: OpeConfig, rng: np.random.Generator | None) -> Estimate:
    value = float(contrib.mean())
    if config.ci == "bootstrap":
        return _bootstrap(contrib, None, value, log, config, rng)
    half = _z(config) * _sem(contrib)
    return Estimate(value, value - half, value + half, log.n_rounds, log.effective_n)


def _z(config: OpeConfig) -> float:
    return NormalDist().inv_cdf(0.5 + config.confidence / 2)


def _sem(x: Float64Array) -> float:
    return float(x.std(ddof=1) / np.sqrt(x.shape[0])) if x.shape[0] > 1 else float("inf")


def _bootstrap(
    num: Float64Array,
    den: Float64Array | None,
    value: float,
    log: _Log,
    config: OpeConfig,
    rng: np.random.Generator | None,
) -> Estimate:
    """Percentile interval over resampled rounds (of mean(num) or mean(num) / mean(den))."""
    if rng is None:
        raise ValueError("a bootstrap interval needs an explicit numpy Generator")
    idx = rng.integers(0, num.shape[0], size=(config.n_bootstrap, num.shape[0]))
    stats = num[idx].mean(axis=1)
    if den is not None:
        stats = stats / np.maximum(den[idx].mean(axis=1), 1e-12)
    tail = (1 - config.confidence) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return Estimate(value, float(low), float(high), log.n_rounds, log.effective_n)


def ips(
    rewards: npt.ArrayLike,
    logging_propensities: npt.ArrayLike,
    target_probabilities: npt.ArrayLike,
    *,
    rounds: npt.ArrayLike | None = None,
    config: OpeConfig | None = None,
    rng: np.random.Generator | None = None,
) -> Estimate:
    """Inverse propensity scoring: mean over rounds of sum(w * r)."""
    cfg = config if config is not None else OpeConfig()
    log = _prepare(rewards, logging_propensities, target_probabilities, rounds, cfg)
    return _mean_estimate(log.per_round(log.weights * log.rewards), log, cfg, rng)


def snips(
    rewards: npt.ArrayLike,
    logging_propensities: npt.ArrayLike,
    target_probabilities: npt.ArrayLike,
    *,
    rounds: npt.ArrayLike | None = None,
    config: OpeConfig | None = None,
    rng: np.random.Generator | None = None,
) -> Estimate:
    """Self-normalised IPS: mean(sum w r) / mean(sum w / events in the round).

    The normaliser has expectation 1 when the target shows as many items per round as the
    log did, so for slates of equal size this is IPS divided by its own control variate.
    Interval by the delta method (or bootstrap of the ratio).
    """
    cfg = config if config is not None else OpeConfig()
    log = _prepare(rewards, logging_propensities, target_probabilities, rounds, cfg)
    events = log.per_round(np.ones_like(log.weights))
    num = log.per_round(log.weights * log.rewards)
    den = log.per_round(log.weights) / events
    mean_den = float(den.mean())
    if mean_den <= 0:  # the target never takes a logged action: nothing to learn from
        return Estimate(0.0, -np.inf, np.inf, log.n_rounds, 0.0)
    value = float(num.mean()) / mean_den
    if cfg.ci == "bootstrap":
        return _bootstrap(num, den, value, log, cfg, rng)
    half = _z(cfg) * _sem((num - value * den) / mean_den)
    return Estimate(value, value - half, value + half, log.n_rounds, log.effective_n)


def doubly_robust(
    rewards: npt.ArrayLike,
    logging_propensities: npt.ArrayLike,
    target_probabilities: npt.ArrayLike,
    reward_hat_logged: npt.ArrayLike,
    reward_hat_target: npt.ArrayLike,
    *,
    rounds: npt.ArrayLike | None = None,
    config: OpeConfig | None = None,
    rng: np.random.Generator | None = None,
) -> Estimate:
    """DR: the reward model's value of the target, corrected by weighted residuals.

    Per round: DM + sum over its events of w * (r - reward_hat_logged), where DM is the sum of
    ``reward_hat_target`` over the round's events. For one action per round,
    reward_hat_target = E_{a ~ target}[r_hat(x, a)]; for a slate, split
    sum_i target_inclusion_i * r_hat_i (over all candidates) across the round's events in
    any way (e.g. all of it on the first). Unbiased if either the propensities or the
    reward model are right, and lower variance than IPS when the model is decent.
    """
    cfg = config if config is not None else OpeConfig()
    log = _prepare(rewards, logging_propensities, target_probabilities, rounds, cfg)
    logged = np.asarray(reward_hat_logged, dtype=np.float64)
    target = np.asarray(reward_hat_target, dtype=np.float64)
    if logged.shape != log.rewards.shape or target.shape != log.rewards.shape:
        raise ValueError("reward model predictions must be aligned with the events")
    contrib = log.per_round(target + log.weights * (log.rewards - logged))
    return _mean_estimate(contrib, log, cfg, rng)
