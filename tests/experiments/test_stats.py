"""The statistics on seeded simulated data (no database). The Done-when figures of issue 12
at test size; bench/experiment_stats.py runs the same at larger sizes and writes JSON."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.analysis import Guardrails, VariantData, analyse
from experiments.simulation import arm_batches, cumulative_arms
from experiments.stats import RatioSums, difference, ever_significant, sample_ratio_test, srm_p_values


def test_peeking_twenty_times_at_an_a_a_test_stays_under_five_percent() -> None:
    control, treatment = cumulative_arms(seed=11, reps=500, looks=20, units=250, control=0.5, treatment=0.5)
    diff = difference(control, treatment, tau=0.03)
    assert ever_significant(diff).mean() <= 0.05
    # the fixed-horizon test, looked at the same 20 times, would cry wolf far more often:
    # what the sequential test is for
    assert (diff.p_value < 0.05).any(axis=1).mean() > 0.12


def test_the_unit_level_interval_covers_the_truth_95_percent_of_the_time() -> None:
    control, treatment = cumulative_arms(seed=12, reps=500, looks=1, units=2000, control=0.4, treatment=0.4)
    diff = difference(control, treatment, tau=0.03)
    covered = ((diff.ci_low <= 0) & (diff.ci_high >= 0)).mean()
    assert 0.93 <= covered <= 0.97


def test_counting_recommendations_as_independent_would_be_too_narrow() -> None:
    rng = np.random.default_rng(3)
    sums = arm_batches(rng, reps=1, looks=1, units=5000, rate=0.5)
    # binomial variance over recommendations, ignoring that a unit's recommendations are alike
    p = float(sums.ratio().item())
    naive = p * (1 - p) / float(sums.x.item())
    assert float(sums.ratio_variance().item()) > 1.5 * naive


def test_a_three_point_lift_at_20000_units_per_arm_is_detected() -> None:
    control, treatment = cumulative_arms(seed=13, reps=100, looks=20, units=1000, control=0.5, treatment=0.53)
    diff = difference(control, treatment, tau=0.03)
    assert control.n[0, -1] == 20_000
    assert ever_significant(diff).mean() >= 0.8
    assert (diff.cs_low[:, -1] > 0).mean() >= 0.8


def test_srm_flags_a_49_51_split_at_100000_units() -> None:
    rng = np.random.default_rng(14)
    first = rng.binomial(100_000, 0.49, size=2000)
    p = srm_p_values(np.stack([first, 100_000 - first], axis=-1), [1, 1])
    assert (p < 0.001).mean() >= 0.99  # units drawn at 49%: the exact split below is flagged for sure
    assert sample_ratio_test([49_000, 51_000], [1, 1]).mismatch


def test_srm_rarely_flags_a_true_50_50_split() -> None:
    rng = np.random.default_rng(15)
    first = rng.binomial(100_000, 0.5, size=50_000)
    p = srm_p_values(np.stack([first, 100_000 - first], axis=-1), [1, 1])
    assert (p < 0.001).mean() <= 0.002
    assert not sample_ratio_test([50_100, 49_900], [1, 1]).mismatch


def test_srm_respects_unequal_weights() -> None:
    assert not sample_ratio_test([9_000, 1_000], [9, 1]).mismatch
    assert sample_ratio_test([5_000, 5_000], [9, 1]).mismatch


def _variant(
    rng: np.random.Generator, name: str, rate: float, units: int, *, control: bool = False, latency: float = 40.0
) -> VariantData:
    recommendations = 1 + rng.poisson(2.0, units).astype(np.float64)
    hits = rng.binomial(recommendations.astype(np.int64), rate).astype(np.float64)
    shown = 5 * recommendations
    uses = hits * 1.2
    return VariantData(
        name=name,
        is_control=control,
        weight=1,
        recommendations=recommendations,
        hits=hits,
        shown=shown,
        uses=uses,
        reward=uses,
        latencies_ms=rng.gamma(4.0, latency / 4, int(recommendations.sum())),
    )


def test_the_verdict_ships_a_clear_winner() -> None:
    rng = np.random.default_rng(1)
    result = analyse([_variant(rng, "semantic", 0.5, 8000, control=True), _variant(rng, "bandit", 0.56, 8000)])
    assert result.verdict == "ship" and result.verdict_text.startswith("Ship bandit: hit rate +")
    hit = next(c for c in result.comparisons if c.metric == "hit_rate")
    assert hit.ci[0] < hit.delta - 0.03 < hit.ci[1] or hit.ci[0] > 0
    assert result.variants[1].p99_ms > result.variants[1].p50_ms > 0


def test_the_verdict_keeps_running_with_the_sample_still_needed() -> None:
    rng = np.random.default_rng(2)
    result = analyse([_variant(rng, "a", 0.5, 500, control=True), _variant(rng, "b", 0.5, 500)])
    assert result.verdict == "keep_running" and result.units_needed > 500
    assert f"{result.units_needed:,} units per variant" in result.verdict_text


def test_guardrails_stop_a_worse_or_slower_treatment() -> None:
    rng = np.random.default_rng(4)
    worse = analyse([_variant(rng, "a", 0.5, 5000, control=True), _variant(rng, "random", 0.3, 5000)])
    assert worse.verdict == "stop" and "hit rate worse beyond doubt" in worse.breaches["random"][0]
    slow = analyse(
        [_variant(rng, "a", 0.5, 500, control=True), _variant(rng, "slow", 0.5, 500, latency=400)],
        Guardrails(max_p99_ms=300),
    )
    assert slow.verdict == "stop" and "p99 latency" in slow.verdict_text


def test_a_sample_ratio_mismatch_stops_before_any_comparison() -> None:
    rng = np.random.default_rng(5)
    result = analyse([_variant(rng, "a", 0.5, 4750, control=True), _variant(rng, "b", 0.6, 5250)])
    assert result.verdict == "stop" and "sample ratio mismatch" in result.verdict_text
    assert result.srm.mismatch


def test_empty_arms_do_not_crash() -> None:
    empty = VariantData("a", True, 1, *(np.zeros(0) for _ in range(5)))
    result = analyse([empty, VariantData("b", False, 1, *(np.zeros(0) for _ in range(5)))])
    assert result.verdict == "keep_running"
    sums = RatioSums.of_units(np.zeros(0), np.zeros(0))
    assert np.isinf(sums.ratio_variance())


@pytest.mark.parametrize("tau", [0.01, 0.05])
def test_the_confidence_sequence_is_wider_than_the_fixed_interval(tau: float) -> None:
    control, treatment = cumulative_arms(seed=6, reps=20, looks=1, units=3000, control=0.5, treatment=0.5)
    diff = difference(control, treatment, tau=tau)
    assert np.all(diff.cs_high - diff.cs_low > diff.ci_high - diff.ci_low)


def test_arms_without_spread_give_exact_answers_not_nan() -> None:
    ones = RatioSums.of_units(np.ones(50), np.ones(50))
    zeros = RatioSums.of_units(np.ones(50), np.zeros(50))
    diff = difference(ones, zeros, tau=0.03)
    assert float(diff.cs_low) == float(diff.cs_high) == -1.0 and float(diff.always_valid_p) == 0.0
    same = difference(ones, ones, tau=0.03)
    assert float(same.always_valid_p) == 1.0 and float(same.cs_high) == 0.0


def test_thompson_shares_favour_the_better_arm_and_keep_the_floor() -> None:
    from experiments.stats import thompson_shares

    rng = np.random.default_rng(8)
    shares = thompson_shares([100, 300], [1000, 1000], min_share=0.1, rng=rng)
    assert shares.sum() == pytest.approx(1.0) and shares[0] == pytest.approx(0.1) and shares[1] == pytest.approx(0.9)
    even = thompson_shares([0, 0, 0], [0, 0, 0], min_share=0.1, rng=rng)
    assert np.allclose(even, 1 / 3, atol=0.02)
    close = thompson_shares([500, 510], [1000, 1000], min_share=0.05, rng=rng)
    assert 0.2 < close[0] < 0.5 < close[1]
    with pytest.raises(ValueError):
        thompson_shares([1, 2, 3], [5, 5, 5], min_share=0.4, rng=rng)
