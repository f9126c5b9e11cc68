from __future__ import annotations

import numpy as np

from recommender.engine.features import FEATURE_INDEX, N_FEATURES
from recommender.engine.match import (
    MATCH_INPUTS,
    MatchConfig,
    MatchModel,
    expected_calibration_error,
    fit_match_model,
    match_inputs,
    match_score,
)

CONFIG = MatchConfig()


def _rows(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Top-tool inputs whose use probability is a known, non-linear function of similarity."""
    features = np.zeros((n, N_FEATURES))
    dense = rng.uniform(0.0, 0.9, n)
    features[:, FEATURE_INDEX["dense"]] = dense
    features[:, FEATURE_INDEX["votes_log"]] = rng.uniform(0, 1, n)
    truth = np.clip(dense**2 + 0.2 * features[:, FEATURE_INDEX["votes_log"]], 0, 1)
    inputs = np.stack([match_inputs(row, None) for row in features])
    return inputs, (rng.uniform(size=n) < truth).astype(float)


def test_the_fitted_model_is_calibrated_on_held_out_answers() -> None:
    rng = np.random.default_rng(3)
    train_x, train_y = _rows(5000, rng)
    test_x, test_y = _rows(3000, rng)
    model = fit_match_model(train_x, train_y, config=CONFIG, fitted_at=5000)
    assert model is not None and model.samples == 5000
    predicted = np.array([model.probability(x) for x in test_x])
    # the true probabilities themselves score about 0.02 on 3,000 answers (sampling noise)
    assert expected_calibration_error(predicted, test_y) < 0.045
    # and it separates: the answers it calls good are used far more often than those it calls none
    assert test_y[predicted >= CONFIG.good].mean() > 3 * test_y[predicted < CONFIG.weak].mean()


def test_it_does_not_fit_on_too_little_feedback() -> None:
    rng = np.random.default_rng(0)
    x, y = _rows(100, rng)
    assert fit_match_model(x, y, config=CONFIG, fitted_at=100) is None
    x, _ = _rows(1000, rng)
    assert fit_match_model(x, np.zeros(1000), config=CONFIG, fitted_at=1000) is None  # never used: nothing to learn


def test_a_stored_model_round_trips_and_one_of_other_inputs_is_ignored() -> None:
    rng = np.random.default_rng(1)
    x, y = _rows(1000, rng)
    model = fit_match_model(x, y, config=CONFIG, fitted_at=7)
    assert model is not None
    again = MatchModel.from_json(model.to_json())
    assert again == model
    assert MatchModel.from_json({**model.to_json(), "inputs": [*MATCH_INPUTS, "new_column"]}) is None


def test_the_prior_follows_similarity_and_labels_follow_thresholds() -> None:
    row = np.zeros(N_FEATURES)
    row[FEATURE_INDEX["dense"]] = 0.75
    close = match_score(row, None, None, CONFIG)
    row[FEATURE_INDEX["dense"]] = 0.05
    far = match_score(row, None, None, CONFIG)
    assert close.basis == far.basis == "retrieval"
    assert close.label == "good" and far.label == "none" and close.probability > 0.9 > 0.05 > far.probability


def test_calibration_error_of_a_perfect_and_a_wrong_forecast() -> None:
    outcomes = np.array([0, 0, 1, 1, 0, 1, 0, 1], dtype=float)
    assert expected_calibration_error(np.full(8, 0.5), outcomes) == 0.0
    assert abs(expected_calibration_error(np.full(8, 0.9), outcomes) - 0.4) < 1e-9
