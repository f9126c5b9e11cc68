from __future__ import annotations

import numpy as np
import pytest

from dashboard.stats import RatioSums, histogram_percentile, lift_interval, wilson_interval

BOUNDS = (10.0, 20.0, 50.0)


def test_a_percentile_interpolates_inside_its_bucket() -> None:
    assert histogram_percentile([0, 10, 0, 0], BOUNDS, 0.5) == pytest.approx(15.0)
    assert histogram_percentile([10, 0, 0, 0], BOUNDS, 0.99) == pytest.approx(9.9)


def test_a_percentile_in_the_open_bucket_is_its_floor_and_an_empty_histogram_has_none() -> None:
    assert histogram_percentile([1, 0, 0, 99], BOUNDS, 0.5) == 50.0
    assert histogram_percentile([0, 0, 0, 0], BOUNDS, 0.5) is None


def test_the_histogram_percentile_is_close_to_the_exact_one() -> None:
    rng = np.random.default_rng(3)
    values = rng.lognormal(np.log(30), 0.5, 20_000)
    bounds = tuple(float(b) for b in range(1, 400))
    counts = np.bincount(np.searchsorted(bounds, values), minlength=len(bounds) + 1)
    for q in (0.5, 0.95, 0.99):
        assert histogram_percentile(counts.tolist(), bounds, q) == pytest.approx(np.quantile(values, q), rel=0.02)


def test_the_wilson_interval_holds_the_rate_and_stays_in_bounds() -> None:
    low, high = wilson_interval(0, 10) or (None, None)
    assert low == 0.0 and high is not None and 0 < high < 0.4
    low, high = wilson_interval(30, 100) or (None, None)
    assert low is not None and high is not None and low < 0.3 < high
    assert wilson_interval(0, 0) is None


def _sums(used: np.ndarray, shown: np.ndarray) -> RatioSums:
    return RatioSums(len(used), used.sum(), shown.sum(), (used**2).sum(), (shown**2).sum(), (used * shown).sum())


def test_the_lift_interval_covers_the_true_lift_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(400):
        shown = np.full(300, 5.0)
        treated, control = rng.binomial(5, 0.3, 300).astype(float), rng.binomial(5, 0.2, 300).astype(float)
        lift = lift_interval(_sums(treated, shown), _sums(control, shown))
        assert lift is not None and lift.low is not None and lift.high is not None
        covered += lift.low <= 1.5 <= lift.high
    assert 0.91 <= covered / 400 <= 0.99


def test_no_lift_without_uses_in_the_control_group() -> None:
    shown = np.full(10, 3.0)
    assert lift_interval(_sums(np.ones(10), shown), _sums(np.zeros(10), shown)) is None
