"""Experiment statistics, pure numpy/scipy (no Django; CI checks it).

Rates are ratios over units (hit rate = recommendations with a use / recommendations, each
unit contributing all its recommendations), so their variance comes from the unit-level
sums by the delta method, not from counting recommendations as independent (a heavy user
would otherwise shrink the interval).

Everything works on sufficient statistics (`RatioSums`: per arm n, Σx, Σy, Σx², Σy², Σxy over
units), which add up across batches, and is vectorised over any leading shape so that the
simulation tests can run hundreds of replications at once.

Sequential validity: the guardrails and the verdict use the mixture SPRT's always-valid
confidence sequence for a normal estimate (Johari, Pekelis & Walsh, "Always valid
inference", 2017; normal mixture N(0, tau^2) over the effect): the probability that it ever
excludes the true difference, at any number of looks, is at most alpha. The fixed-horizon 95%
interval is reported beside it for reading, never for deciding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

Array = npt.NDArray[np.float64]
ALPHA = 0.05
SRM_ALPHA = 0.001
Z95 = float(sps.norm.ppf(0.975))


@dataclass(frozen=True)
class RatioSums:
    """Per-unit sums of a ratio metric y/x (e.g. hits over recommendations), summed over units.
    Fields may be arrays of any (common) shape: one entry per replication or look."""

    n: Array
    x: Array
    y: Array
    xx: Array
    yy: Array
    xy: Array

    @classmethod
    def of_units(cls, x: npt.ArrayLike, y: npt.ArrayLike, axis: int = -1) -> RatioSums:
        xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        n = np.full(np.sum(xs, axis=axis).shape, xs.shape[axis], dtype=np.float64)
        return cls(n, xs.sum(axis), ys.sum(axis), (xs * xs).sum(axis), (ys * ys).sum(axis), (xs * ys).sum(axis))

    def cumsum(self, axis: int = -1) -> RatioSums:
        """Running totals along an axis of batches: the data as seen at each look."""
        return RatioSums(*(np.cumsum(getattr(self, f), axis=axis) for f in ("n", "x", "y", "xx", "yy", "xy")))

    def ratio(self) -> Array:
        return np.divide(self.y, self.x, out=np.zeros(np.shape(self.y)), where=np.asarray(self.x) > 0)

    def ratio_variance(self) -> Array:
        """Delta-method variance of sum(y)/sum(x) over units: Var(y - r x) / (n * mean(x)^2)."""
        n = np.asarray(self.n, dtype=np.float64)
        r = self.ratio()
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_x = self.x / n
            # sum of squares of (y - r x) around its mean, which is zero by the choice of r
            ss = self.yy - 2 * r * self.xy + r * r * self.xx
            var_unit = np.maximum(ss, 0.0) / np.maximum(n - 1, 1)
            out = var_unit / (n * mean_x * mean_x)
        return np.where((n > 1) & (self.x > 0), out, np.inf)


@dataclass(frozen=True)
class Difference:
    """Treatment minus control, with a fixed-horizon interval and an always-valid one."""

    control: Array
    treatment: Array
    delta: Array
    se: Array
    ci_low: Array  # fixed-horizon 95%
    ci_high: Array
    cs_low: Array  # always-valid (mSPRT) at level 1 - alpha
    cs_high: Array
    p_value: Array  # fixed-horizon, two-sided
    always_valid_p: Array  # 1 / mixture likelihood ratio, capped at 1 (not the running min)


def msprt_radius(variance: npt.ArrayLike, tau: float, alpha: float = ALPHA) -> Array:
    """Half-width of the normal-mixture confidence sequence for an estimate of this variance."""
    v = np.asarray(variance, dtype=np.float64)
    t2 = tau * tau
    with np.errstate(divide="ignore", invalid="ignore"):
        radius = np.sqrt(v * (v + t2) / t2 * (2 * np.log(1 / alpha) + np.log((v + t2) / v)))
    # no spread at all (every unit alike): the estimate is exact; infinite: nothing known yet
    return np.where(v <= 0, 0.0, np.where(np.isfinite(v), radius, np.inf))


def msprt_p(delta: npt.ArrayLike, variance: npt.ArrayLike, tau: float) -> Array:
    d, v = np.asarray(delta, dtype=np.float64), np.asarray(variance, dtype=np.float64)
    t2 = tau * tau
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_lr = 0.5 * np.log(v / (v + t2)) + t2 * d * d / (2 * v * (v + t2))
        p = np.minimum(1.0, np.exp(-log_lr))
    exact = np.where(d == 0, 1.0, 0.0)
    return np.where(v <= 0, exact, np.where(np.isfinite(v), p, 1.0))


def difference(control: RatioSums, treatment: RatioSums, *, tau: float, alpha: float = ALPHA) -> Difference:
    c, t = control.ratio(), treatment.ratio()
    var = control.ratio_variance() + treatment.ratio_variance()
    se = np.sqrt(var)
    delta = t - c
    radius = msprt_radius(var, tau, alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(np.isfinite(se) & (se > 0), 2 * sps.norm.sf(np.abs(delta) / se), 1.0)
    return Difference(
        control=c,
        treatment=t,
        delta=delta,
        se=se,
        ci_low=delta - Z95 * se,
        ci_high=delta + Z95 * se,
        cs_low=delta - radius,
        cs_high=delta + radius,
        p_value=p,
        always_valid_p=msprt_p(delta, var, tau),
    )


def ever_significant(diff: Difference, axis: int = -1) -> npt.NDArray[np.bool_]:
    """Whether the confidence sequence excluded zero at any look along `axis`."""
    return np.asarray(np.any((diff.cs_low > 0) | (diff.cs_high < 0), axis=axis), dtype=np.bool_)


@dataclass(frozen=True)
class SampleRatio:
    counts: tuple[int, ...]
    expected_shares: tuple[float, ...]
    chi2: float
    p_value: float
    mismatch: bool  # p < SRM_ALPHA


def sample_ratio_test(counts: npt.ArrayLike, weights: npt.ArrayLike, alpha: float = SRM_ALPHA) -> SampleRatio:
    """Chi-square goodness of fit of the units per variant to the configured weights."""
    observed = np.asarray(counts, dtype=np.float64)
    shares = np.asarray(weights, dtype=np.float64)
    shares = shares / shares.sum()
    total = observed.sum()
    if total <= 0 or observed.shape[0] < 2:
        return SampleRatio(tuple(int(c) for c in observed), tuple(shares), 0.0, 1.0, False)
    chi2, p = sps.chisquare(observed, total * shares)
    return SampleRatio(
        tuple(int(c) for c in observed), tuple(float(s) for s in shares), float(chi2), float(p), bool(p < alpha)
    )


def srm_p_values(counts: npt.ArrayLike, shares: npt.ArrayLike) -> Array:
    """Vectorised chi-square p-values: counts (..., arms), shares (arms,)."""
    observed = np.asarray(counts, dtype=np.float64)
    s = np.asarray(shares, dtype=np.float64)
    expected = observed.sum(axis=-1, keepdims=True) * (s / s.sum())
    chi2 = ((observed - expected) ** 2 / expected).sum(axis=-1)
    return np.asarray(sps.chi2.sf(chi2, df=observed.shape[-1] - 1), dtype=np.float64)


def units_needed(unit_variance: float, effect: float, tau: float, alpha: float = ALPHA) -> int:
    """Units per arm after which the confidence sequence would exclude zero for this effect
    (two arms of the same unit-level variance of the ratio estimate times n)."""
    if effect <= 0 or not np.isfinite(unit_variance) or unit_variance <= 0:
        return 0
    n = 100
    while n < 10**9:
        if float(msprt_radius(2 * unit_variance / n, tau, alpha)) < effect:
            return n
        n = int(n * 1.25) + 1
    return n


def thompson_shares(
    successes: npt.ArrayLike, trials: npt.ArrayLike, *, min_share: float, rng: np.random.Generator, draws: int = 10_000
) -> Array:
    """Traffic shares for bandit allocation: each arm's probability of having the best rate
    under Beta(1 + successes, 1 + failures) posteriors (Monte Carlo), then floored so that every
    arm keeps `min_share`: share = min_share + (1 - arms * min_share) * P(best).

    Our own Beta-Bernoulli rather than contextualbandits: there is no context here (the arms
    are whole policies), and allocation needs each arm's probability of being best, not one
    chosen arm per call; it is a few lines of numpy."""
    s = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    arms = s.shape[0]
    if arms == 0:
        return np.zeros(0)
    if not 0 <= min_share * arms <= 1:
        raise ValueError(f"min_share {min_share} is impossible with {arms} arms")
    samples = rng.beta(1 + s, 1 + np.maximum(n - s, 0), size=(draws, arms))
    best = np.bincount(np.argmax(samples, axis=1), minlength=arms) / draws
    return np.asarray(min_share + (1 - arms * min_share) * best, dtype=np.float64)
