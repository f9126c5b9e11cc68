"""Deterministic variant assignment: a pure hash of the experiment key and the unit."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def bucket(experiment_key: str, unit_id: str) -> float:
    """A stable number in [0, 1) for this experiment and unit (user or conversation)."""
    digest = hashlib.sha256(f"{experiment_key}:{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_variant(experiment_key: str, unit_id: str, weights: Sequence[tuple[str, int]]) -> str:
    """Pick a variant name by weight; the same unit always lands in the same variant."""
    total = sum(w for _, w in weights)
    if total <= 0:
        raise ValueError("variant weights must add up to more than zero")
    point = bucket(experiment_key, unit_id) * total
    for name, weight in weights:
        if point < weight:
            return name
        point -= weight
    return weights[-1][0]
