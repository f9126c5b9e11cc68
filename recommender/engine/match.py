"""How likely the top tool of an answer is to be used: the no-match signal.

An agent reads it to decide whether to go on with the tools it got, fall back or ask the
user. Before there is feedback the probability is a fixed logistic curve of the top tool's
cosine similarity (the retrieval-score prior). Once the learner has seen enough judged
answers, it is a logistic regression on a few columns of the top tool's feature row (the
same row the bandit scores), plus the similarity gap to the next tool, fitted on "was the
top tool used", followed by an isotonic map of its output fitted on the same data: the
logistic part ranks, the isotonic part makes the probabilities match the observed rates
where a linear logit does not (scikit-learn's two standard calibrators, chained as
`CalibratedClassifierCV` does, without its cross-validation: the log is large).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from recommender.engine.features import FEATURE_INDEX

# float32 rows come from serving, float64 ones from the log: both are accepted.
Floats = npt.NDArray[np.floating[Any]]

# Columns of the top tool's feature row that say something about a match; the last input
# is the gap between the top tool's similarity and the next tool's.
MATCH_COLUMNS: tuple[str, ...] = (
    "dense",
    "sparse_log",
    "sparse_rel",
    "votes_log",
    "votes_share",
    "pop_mean",
    "user_mean",
    "co_use",
    "already_called",
)
MATCH_INPUTS: tuple[str, ...] = (*MATCH_COLUMNS, "dense_gap")
_COLUMN_INDEX = np.array([FEATURE_INDEX[name] for name in MATCH_COLUMNS])
_DENSE = FEATURE_INDEX["dense"]


@dataclass(frozen=True)
class MatchConfig:
    prior_midpoint: float = 0.45  # the cosine at which the prior says 50%
    prior_slope: float = 10.0
    good: float = 0.5  # probability from which a match is "good"
    weak: float = 0.2  # ... "weak"; below it, "none"
    min_samples: int = 200  # judged answers before the fitted model replaces the prior
    min_each: int = 20  # and at least this many used and unused top tools


@dataclass(frozen=True)
class Match:
    label: str  # good, weak or none
    probability: float
    basis: str  # "retrieval" (the prior) or "feedback" (the fitted model)


@dataclass(frozen=True)
class MatchModel:
    coef: tuple[float, ...]
    intercept: float
    iso_x: tuple[float, ...]  # the isotonic map, as (x, y) knots for np.interp
    iso_y: tuple[float, ...]
    samples: int
    positives: int
    fitted_at: int  # recommendations learned when it was fitted

    def probability(self, inputs: Floats) -> float:
        logit = float(np.dot(np.asarray(self.coef), inputs)) + self.intercept
        raw = 1.0 / (1.0 + math.exp(-max(min(logit, 50.0), -50.0)))
        return float(np.interp(raw, self.iso_x, self.iso_y))

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": list(MATCH_INPUTS),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "iso_x": list(self.iso_x),
            "iso_y": list(self.iso_y),
            "samples": self.samples,
            "positives": self.positives,
            "fitted_at": self.fitted_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MatchModel | None:
        """The stored model, or None when it was fitted on other inputs (a changed code)."""
        if list(data.get("inputs", ())) != list(MATCH_INPUTS):
            return None
        return cls(
            coef=tuple(float(c) for c in data["coef"]),
            intercept=float(data["intercept"]),
            iso_x=tuple(float(x) for x in data["iso_x"]),
            iso_y=tuple(float(y) for y in data["iso_y"]),
            samples=int(data["samples"]),
            positives=int(data["positives"]),
            fitted_at=int(data.get("fitted_at", 0)),
        )


def match_inputs(top: Floats, second: Floats | None) -> Floats:
    """The model's inputs from the top tool's feature row and the next tool's (or None)."""
    gap = float(top[_DENSE] - second[_DENSE]) if second is not None else 1.0
    return np.append(np.asarray(top, dtype=np.float64)[_COLUMN_INDEX], gap)


def prior_probability(dense: float, config: MatchConfig) -> float:
    return 1.0 / (1.0 + math.exp(-config.prior_slope * (dense - config.prior_midpoint)))


def match_of(probability: float, basis: str, config: MatchConfig) -> Match:
    label = "good" if probability >= config.good else "weak" if probability >= config.weak else "none"
    return Match(label, round(probability, 4), basis)


def match_score(top: Floats, second: Floats | None, model: MatchModel | None, config: MatchConfig) -> Match:
    if model is None:
        return match_of(prior_probability(float(top[_DENSE]), config), "retrieval", config)
    return match_of(model.probability(match_inputs(top, second)), "feedback", config)


def fit_match_model(inputs: Floats, used: Floats, *, config: MatchConfig, fitted_at: int) -> MatchModel | None:
    """Fit on (inputs of the top tool, was it used); None while there is too little of either."""
    positives = int(used.sum())
    if len(used) < config.min_samples or min(positives, len(used) - positives) < config.min_each:
        return None
    logistic = LogisticRegression(C=1.0, max_iter=1000).fit(inputs, used)
    raw = logistic.predict_proba(inputs)[:, 1]
    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, used)
    return MatchModel(
        coef=tuple(float(c) for c in logistic.coef_[0]),
        intercept=float(logistic.intercept_[0]),
        iso_x=tuple(float(x) for x in isotonic.X_thresholds_),
        iso_y=tuple(float(y) for y in isotonic.y_thresholds_),
        samples=len(used),
        positives=positives,
        fitted_at=fitted_at,
    )


def expected_calibration_error(probabilities: Floats, outcomes: Floats, bins: int = 10) -> float:
    """Mean |predicted - observed| over equal-width probability bins, weighted by their size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += mask.mean() * abs(float(probabilities[mask].mean()) - float(outcomes[mask].mean()))
    return error
