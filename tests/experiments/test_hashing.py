from __future__ import annotations

from collections import Counter

import pytest

from experiments.hashing import assign_variant, bucket


def test_assignment_is_deterministic_per_unit() -> None:
    weights = [("control", 1), ("bandit", 1)]
    assert all(
        assign_variant("exp", f"user-{i}", weights) == assign_variant("exp", f"user-{i}", weights) for i in range(100)
    )


def test_assignment_follows_the_weights() -> None:
    counts = Counter(assign_variant("exp", f"u{i}", [("a", 1), ("b", 3)]) for i in range(20_000))
    assert abs(counts["b"] / 20_000 - 0.75) < 0.015


def test_experiments_hash_independently() -> None:
    same = sum(bucket("exp-1", f"u{i}") < 0.5 and bucket("exp-2", f"u{i}") < 0.5 for i in range(10_000))
    assert abs(same / 10_000 - 0.25) < 0.02


def test_zero_total_weight_is_an_error() -> None:
    with pytest.raises(ValueError):
        assign_variant("exp", "u", [("a", 0)])
