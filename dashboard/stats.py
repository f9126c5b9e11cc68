"""Pure statistics for the dashboard's numbers (no Django): percentiles from a latency
histogram, the interval of a usage rate, and the interval of the personalization lift."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054


def histogram_percentile(counts: Sequence[int], bounds: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) of values counted in buckets with these upper bounds (the last
    bucket is open above bounds[-1]), interpolated linearly inside its bucket; None if empty.
    A quantile in the open bucket is reported as its lower bound (a floor, not a guess)."""
    total = sum(counts)
    if total == 0:
        return None
    target, seen = q * total, 0.0
    for i, count in enumerate(counts):
        if count and seen + count >= target:
            if i >= len(bounds):
                return float(bounds[-1])
            lower = 0.0 if i == 0 else float(bounds[i - 1])
            return lower + (float(bounds[i]) - lower) * (target - seen) / count
        seen += count
    return float(bounds[-1])


def wilson_interval(successes: float, trials: float, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion: sane at 0, 1 and small counts, unlike the
    normal approximation."""
    if trials <= 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class RatioSums:
    """Per-unit sums of a ratio estimator sum(used) / sum(shown) over n units
    (recommendations): the units, not the shown tools, are independent."""

    n: float
    used: float
    shown: float
    used_sq: float
    shown_sq: float
    used_shown: float

    @property
    def rate(self) -> float | None:
        return self.used / self.shown if self.shown > 0 else None

    def log_variance(self) -> float | None:
        """Delta-method variance of log(rate): Var(R)/R^2 with
        Var(R) = (var(u) - 2 R cov(u, s) + R^2 var(s)) / (n mean(s)^2)."""
        rate = self.rate
        if rate is None or rate <= 0 or self.n < 2:
            return None
        n = self.n
        var_u = (self.used_sq - self.used**2 / n) / (n - 1)
        var_s = (self.shown_sq - self.shown**2 / n) / (n - 1)
        cov = (self.used_shown - self.used * self.shown / n) / (n - 1)
        mean_s = self.shown / n
        var_rate = max(0.0, var_u - 2 * rate * cov + rate * rate * var_s) / (n * mean_s * mean_s)
        return var_rate / (rate * rate)


@dataclass(frozen=True)
class Lift:
    value: float
    low: float | None
    high: float | None


def lift_interval(treated: RatioSums, control: RatioSums, z: float = Z95) -> Lift | None:
    """Ratio of the two usage rates with its 95% interval (log scale, delta method); None
    when either group has no usage rate."""
    if treated.rate is None or control.rate is None or control.rate == 0:
        return None
    value = treated.rate / control.rate
    variances = (treated.log_variance(), control.log_variance())
    if value <= 0 or variances[0] is None or variances[1] is None:
        return Lift(value, None, None)
    half = z * math.sqrt(variances[0] + variances[1])
    return Lift(value, value * math.exp(-half), value * math.exp(half))
