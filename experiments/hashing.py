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


# The salt of the hash that splits all units between experiments. It is not any experiment's
# key, so the slices of two experiments never share a unit, and the variant hash inside an
# experiment (keyed by the experiment) is independent of which slice a unit fell in.
TRAFFIC_SALT = "toolrec:traffic"


def traffic_bucket(unit_id: str) -> float:
    """Where the unit falls among all units, in [0, 1), the same for every experiment."""
    return bucket(TRAFFIC_SALT, unit_id)


def in_traffic(unit_id: str, start: float, end: float) -> bool:
    return start <= traffic_bucket(unit_id) < end


def ranges_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]
