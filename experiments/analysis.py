"""An experiment's results from per-unit data: the per-variant table, each treatment against
control, the sample-ratio test, the guardrails and a verdict in words. Pure code (no Django);
the selectors turn the log into `VariantData`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from experiments.stats import ALPHA, Difference, RatioSums, SampleRatio, difference, sample_ratio_test, units_needed

FloatArray = npt.NDArray[np.float64]
METRICS = ("hit_rate", "usage_rate", "mean_reward")


@dataclass(frozen=True)
class VariantData:
    """One variant, one entry per unit (user or conversation) unless said otherwise."""

    name: str
    is_control: bool
    weight: float
    recommendations: FloatArray
    hits: FloatArray  # recommendations with at least one use
    shown: FloatArray  # tools shown
    uses: FloatArray  # shown tools used
    reward: FloatArray  # summed reward (a use counts 1 unless feedback gave a reward)
    latencies_ms: FloatArray = field(default_factory=lambda: np.zeros(0))  # one per recommendation

    def sums(self, metric: str) -> RatioSums:
        if metric == "hit_rate":
            return RatioSums.of_units(self.recommendations, self.hits)
        if metric == "usage_rate":
            return RatioSums.of_units(self.shown, self.uses)
        return RatioSums.of_units(self.recommendations, self.reward)


@dataclass(frozen=True)
class VariantSummary:
    name: str
    is_control: bool
    units: int
    recommendations: int
    hit_rate: float
    usage_rate: float
    mean_reward: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class Comparison:
    variant: str
    metric: str
    control: float
    treatment: float
    delta: float
    ci: tuple[float, float]  # fixed horizon, 95%
    cs: tuple[float, float]  # always valid, 1 - alpha
    p_value: float
    always_valid_p: float

    @property
    def better(self) -> bool:
        return self.cs[0] > 0

    @property
    def worse(self) -> bool:
        return self.cs[1] < 0


@dataclass(frozen=True)
class Guardrails:
    tau: float = 0.03  # effect size (rate points) the sequential test is tuned for; also the MDE reported
    alpha: float = ALPHA
    max_p99_ms: float | None = None  # treatment's p99 latency ceiling
    min_units: int = 100  # per variant, before any guardrail acts
    metrics: tuple[str, ...] = ("hit_rate", "usage_rate")  # worse beyond doubt on these: stop


@dataclass(frozen=True)
class Analysis:
    variants: list[VariantSummary]
    comparisons: list[Comparison]
    srm: SampleRatio
    breaches: dict[str, list[str]]  # variant -> reasons a guardrail fires
    verdict: str  # "keep_running", "ship" or "stop"
    verdict_text: str
    units_needed: int  # per arm, for the CS to exclude zero at an effect of tau (0 when decided)


def _percentile(x: FloatArray, q: float) -> float:
    return float(np.percentile(x, q)) if x.size else 0.0


def summarise(v: VariantData) -> VariantSummary:
    return VariantSummary(
        name=v.name,
        is_control=v.is_control,
        units=int(v.recommendations.shape[0]),
        recommendations=int(v.recommendations.sum()),
        hit_rate=float(v.sums("hit_rate").ratio()),
        usage_rate=float(v.sums("usage_rate").ratio()),
        mean_reward=float(v.sums("mean_reward").ratio()),
        p50_ms=_percentile(v.latencies_ms, 50),
        p99_ms=_percentile(v.latencies_ms, 99),
    )


def compare(control: VariantData, treatment: VariantData, metric: str, g: Guardrails) -> Comparison:
    d: Difference = difference(control.sums(metric), treatment.sums(metric), tau=g.tau, alpha=g.alpha)
    f = float
    return Comparison(
        variant=treatment.name,
        metric=metric,
        control=f(d.control),
        treatment=f(d.treatment),
        delta=f(d.delta),
        ci=(f(d.ci_low), f(d.ci_high)),
        cs=(f(d.cs_low), f(d.cs_high)),
        p_value=f(d.p_value),
        always_valid_p=f(d.always_valid_p),
    )


def _breaches(v: VariantSummary, comparisons: list[Comparison], g: Guardrails) -> list[str]:
    reasons = [
        f"{c.metric.replace('_', ' ')} worse beyond doubt: {100 * c.delta:+.1f} points "
        f"(always-valid interval {100 * c.cs[0]:+.1f} to {100 * c.cs[1]:+.1f})"
        for c in comparisons
        if c.variant == v.name and c.metric in g.metrics and c.worse
    ]
    if g.max_p99_ms is not None and v.p99_ms > g.max_p99_ms:
        reasons.append(f"p99 latency {v.p99_ms:.0f} ms above the {g.max_p99_ms:.0f} ms ceiling")
    return reasons


def analyse(data: Sequence[VariantData], g: Guardrails | None = None) -> Analysis:
    g = g or Guardrails()
    control = next((v for v in data if v.is_control), data[0])
    treatments = [v for v in data if v is not control]
    summaries = [summarise(v) for v in data]
    comparisons = [compare(control, t, m, g) for t in treatments for m in METRICS]
    srm = sample_ratio_test([s.units for s in summaries], [v.weight for v in data])
    ready = {s.name for s in summaries if s.units >= g.min_units}
    breaches = {s.name: _breaches(s, comparisons, g) for s in summaries if not s.is_control and s.name in ready}
    breaches = {k: v for k, v in breaches.items() if v}
    verdict, text, needed = _verdict(control, comparisons, srm, breaches, g, ready)
    return Analysis(summaries, comparisons, srm, breaches, verdict, text, needed)


def _verdict(
    control: VariantData,
    comparisons: list[Comparison],
    srm: SampleRatio,
    breaches: dict[str, list[str]],
    g: Guardrails,
    ready: set[str],
) -> tuple[str, str, int]:
    if srm.mismatch and len(ready) == len(srm.counts):
        return (
            "stop",
            (
                f"Stop: sample ratio mismatch (units {list(srm.counts)} against shares "
                f"{[round(s, 3) for s in srm.expected_shares]}, p = {srm.p_value:.1e}); the split is broken, "
                "so no comparison can be trusted. Look for dropped logs or a bug in assignment."
            ),
            0,
        )
    if breaches:
        name, reasons = next(iter(breaches.items()))
        return "stop", f"Stop {name}: {'; '.join(reasons)}.", 0
    primary = [c for c in comparisons if c.metric == "hit_rate"]
    winners = sorted((c for c in primary if c.better), key=lambda c: -c.delta)
    if winners:
        c = winners[0]
        return (
            "ship",
            (
                f"Ship {c.variant}: hit rate {100 * c.delta:+.1f} points over control "
                f"(95% CI {100 * c.ci[0]:+.1f} to {100 * c.ci[1]:+.1f}; always-valid {100 * c.cs[0]:+.1f} to "
                f"{100 * c.cs[1]:+.1f}), no guardrail fired."
            ),
            0,
        )
    unit_var = float(control.sums("hit_rate").ratio_variance()) * max(int(control.recommendations.shape[0]), 1)
    needed = units_needed(unit_var, g.tau, g.tau, g.alpha)
    have = int(control.recommendations.shape[0])
    more = max(needed - have, 0)
    return (
        "keep_running",
        (
            f"Keep running: no difference in hit rate beyond doubt yet. About {needed:,} units per variant "
            f"({more:,} more) are needed to detect a change of {100 * g.tau:.0f} points."
        ),
        needed,
    )
