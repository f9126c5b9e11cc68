"""Offline retrieval metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from recommender.engine.ranking_metrics import complete_at_k, ndcg_at_k, percentiles, recall_at_k


def test_recall_counts_relevant_tools_in_the_top_k() -> None:
    ranked = ["a", "b", "c", "d"]
    assert recall_at_k(ranked, {"b", "d", "z"}, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, {"b", "d", "z"}, 4) == pytest.approx(2 / 3)


def test_recall_counts_a_duplicated_key_once() -> None:
    assert recall_at_k(["a", "a", "b"], {"a", "b"}, 2) == pytest.approx(1.0)


def test_ndcg_is_one_for_an_ideal_ranking_and_uses_log2_discounts() -> None:
    assert ndcg_at_k(["a", "b", "x"], {"a", "b"}, 10) == pytest.approx(1.0)
    # relevant at ranks 2 and 3: (1/log2(3) + 1/log2(4)) / (1 + 1/log2(3))
    expected = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(["x", "a", "b"], {"a", "b"}, 10) == pytest.approx(expected)


def test_ndcg_ideal_is_capped_at_k() -> None:
    # three relevant tools, k=2, both top slots relevant: perfect at k=2
    assert ndcg_at_k(["a", "b", "c"], {"a", "b", "c"}, 2) == pytest.approx(1.0)


def test_ndcg_is_zero_without_relevant_hits_or_relevant_tools() -> None:
    assert ndcg_at_k(["x", "y"], {"a"}, 10) == 0.0
    assert ndcg_at_k(["x", "y"], set(), 10) == 0.0


def test_complete_needs_every_relevant_tool_in_the_top_k() -> None:
    assert complete_at_k(["a", "x", "b"], {"a", "b"}, 3) == 1.0
    assert complete_at_k(["a", "x", "b"], {"a", "b"}, 2) == 0.0


def test_percentiles_interpolate_linearly() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    result = percentiles(values)
    assert result["p50"] == pytest.approx(50.5)
    assert result["p95"] == pytest.approx(95.05)
    assert result["p99"] == pytest.approx(99.01)


def test_percentiles_of_nothing_are_nan() -> None:
    assert all(math.isnan(v) for v in percentiles([], ps=(50, 99)).values())
