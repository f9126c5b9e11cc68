"""Seeded simulated experiments (the statistics tests, bench/experiment_stats.py, choosing tau):
units with a few recommendations each (1 + Poisson(2)) and their own hit propensity (Beta
around the arm's rate), so recommendations of one unit are correlated, as in the log."""

from __future__ import annotations

import numpy as np

from experiments.stats import RatioSums

CONCENTRATION = 4.0  # Beta(a, b) with a + b = 4: units differ a lot, which a per-recommendation test would miss


def arm_batches(rng: np.random.Generator, reps: int, looks: int, units: int, rate: float) -> RatioSums:
    """Per replication and look, the sums of `units` new units: arrays of shape (reps, looks)."""
    shape = (reps, looks, units)
    recommendations = 1 + rng.poisson(2.0, size=shape)
    propensity = rng.beta(rate * CONCENTRATION, (1 - rate) * CONCENTRATION, size=shape)
    hits = rng.binomial(recommendations, propensity)
    return RatioSums.of_units(recommendations, hits, axis=-1)


def cumulative_arms(
    seed: int, reps: int, looks: int, units: int, control: float, treatment: float, chunk: int = 50
) -> tuple[RatioSums, RatioSums]:
    """Both arms as seen at each look (cumulative), built in chunks of replications to bound memory."""
    rng = np.random.default_rng(seed)
    parts: list[tuple[RatioSums, RatioSums]] = []
    for start in range(0, reps, chunk):
        size = min(chunk, reps - start)
        parts.append(
            (
                arm_batches(rng, size, looks, units, control).cumsum(axis=1),
                arm_batches(rng, size, looks, units, treatment).cumsum(axis=1),
            )
        )
    fields = ("n", "x", "y", "xx", "yy", "xy")
    joined = [RatioSums(*(np.concatenate([getattr(p[i], f) for p in parts]) for f in fields)) for i in (0, 1)]
    return joined[0], joined[1]
