from dataclasses import replace

import numpy as np
import pytest

from recommender.engine.features import (
    FEATURE_INDEX,
    FEATURE_NAMES,
    FeatureConfig,
    FeatureInputs,
    build_features,
)


def make_inputs(n: int = 200, seed: int = 0) -> FeatureInputs:
    rng = np.random.default_rng(seed)
    shows = rng.integers(0, 5_000, n)
    user_shows = rng.integers(0, 50, n)
    age = rng.exponential(3 * 24 * 3600.0, n)
    age[rng.random(n) < 0.3] = np.inf
    return FeatureInputs(
        dense=np.sort(rng.uniform(0.1, 0.8, n))[::-1].astype(np.float32),
        sparse=np.where(rng.random(n) < 0.5, rng.uniform(0, 25, n), 0.0).astype(np.float32),
        fused=np.linspace(1.0, 0.1, n).astype(np.float32),
        fused_rank=np.arange(n, dtype=np.int64),
        tool_uses=rng.binomial(shows, 0.1),
        tool_shows=shows,
        seconds_since_last_use=age,
        user_uses=rng.binomial(user_shows, 0.2),
        user_shows=user_shows,
        co_use=rng.exponential(2.0, n),
        neighbor_votes=rng.exponential(0.5, n) * (rng.random(n) < 0.2),
        is_new=rng.random(n) < 0.05,
        has_error=True,
        has_code=False,
        message_count=7,
    )


def test_it_builds_one_float32_column_per_feature_name() -> None:
    features = build_features(make_inputs(50))

    assert features.shape == (50, len(FEATURE_NAMES))
    assert features.dtype == np.float32
    assert np.all(features[:, FEATURE_INDEX["bias"]] == 1.0)


def test_every_feature_stays_in_a_small_range_even_for_extreme_inputs() -> None:
    base = make_inputs(6)
    extreme = replace(
        base,
        sparse=np.array([0, 1e6, 3, 0, 2, 1], dtype=np.float32),
        tool_uses=np.array([0, 10**9, 5, 0, 0, 1]),
        tool_shows=np.array([0, 10**10, 5, 1, 0, 1]),
        user_uses=np.array([0, 10**7, 0, 0, 0, 0]),
        user_shows=np.array([0, 10**7, 0, 0, 0, 0]),
        co_use=np.array([0, 1e12, 0, 0, 0, 0]),
        neighbor_votes=np.array([0, 1e9, 0, 0, 0, 0]),
        message_count=10**6,
    )

    features = build_features(extreme)

    assert np.isfinite(features).all()
    assert features.min() >= -1.0 and features.max() <= 2.0


def test_a_never_shown_tool_gets_the_prior_mean_and_full_uncertainty() -> None:
    config = FeatureConfig(prior_alpha=2.0, prior_beta=18.0)
    inputs = replace(make_inputs(3), tool_uses=np.array([0, 50, 5]), tool_shows=np.array([0, 100, 10]))

    features = build_features(inputs, config)

    mean = features[:, FEATURE_INDEX["pop_mean"]]
    uncertainty = features[:, FEATURE_INDEX["pop_uncertainty"]]
    assert mean[0] == pytest.approx(0.1)
    assert mean[1] == pytest.approx(52 / 120)
    assert uncertainty[0] == pytest.approx(1.0)
    # more shows, less uncertainty (the tool with 100 shows is far surer than with 10)
    assert uncertainty[1] < uncertainty[2] < uncertainty[0]


def test_recency_is_zero_when_never_used_and_decays_with_age() -> None:
    tau = 3600.0
    inputs = replace(make_inputs(3), seconds_since_last_use=np.array([np.inf, 0.0, tau]))

    recency = build_features(inputs, FeatureConfig(recency_tau_seconds=tau))[:, FEATURE_INDEX["recency"]]

    assert recency == pytest.approx([0.0, 1.0, np.exp(-1.0)], rel=1e-6)


def test_rank_features_fall_with_rank() -> None:
    features = build_features(make_inputs(100))

    recip = features[:, FEATURE_INDEX["rank_recip"]]
    log_decay = features[:, FEATURE_INDEX["rank_log"]]
    assert recip[0] == 1.0 and recip[1] == pytest.approx(0.5)
    assert np.all(np.diff(recip) < 0) and np.all(np.diff(log_decay) < 0)


def test_a_user_without_history_gets_the_tools_global_rate() -> None:
    inputs = replace(make_inputs(4), user_uses=np.array([0, 0, 9, 0]), user_shows=np.array([0, 0, 10, 10]))

    features = build_features(inputs)

    user = features[:, FEATURE_INDEX["user_mean"]]
    pop = features[:, FEATURE_INDEX["pop_mean"]]
    assert user[:2] == pytest.approx(pop[:2])
    assert user[2] > pop[2]  # used 9 of 10 times by this user
    assert user[3] < pop[3]  # shown 10 times, never used


def test_neighbour_vote_shares_sum_to_one_when_any_candidate_has_votes() -> None:
    inputs = replace(make_inputs(5), neighbor_votes=np.array([0.0, 2.0, 1.0, 0.0, 1.0]))

    shares = build_features(inputs)[:, FEATURE_INDEX["votes_share"]]

    assert shares.sum() == pytest.approx(1.0)
    assert shares[1] == pytest.approx(0.5)


def test_new_tools_are_flagged_and_weighted_by_relevance() -> None:
    inputs = replace(
        make_inputs(3), is_new=np.array([True, False, True]), dense=np.array([0.9, 0.9, -0.2], dtype=np.float32)
    )

    features = build_features(inputs)

    assert features[:, FEATURE_INDEX["is_new"]].tolist() == [1.0, 0.0, 1.0]
    assert features[:, FEATURE_INDEX["new_x_dense"]] == pytest.approx([0.9, 0.0, 0.0])


def test_conversation_flags_are_broadcast_to_every_candidate() -> None:
    inputs = replace(
        make_inputs(4), has_error=True, has_code=False, already_called=np.array([False, True, False, False])
    )

    features = build_features(inputs)

    assert np.all(features[:, FEATURE_INDEX["has_error"]] == 1.0)
    assert np.all(features[:, FEATURE_INDEX["has_code"]] == 0.0)
    assert features[:, FEATURE_INDEX["already_called"]].tolist() == [0.0, 1.0, 0.0, 0.0]
    depth = features[:, FEATURE_INDEX["message_depth"]]
    assert np.all(depth == depth[0]) and 0 < depth[0] < 1


def test_it_rejects_arrays_of_different_lengths() -> None:
    with pytest.raises(ValueError):
        replace(make_inputs(4), co_use=np.zeros(3))


def test_no_candidates_give_an_empty_matrix() -> None:
    empty = make_inputs(0)

    assert build_features(empty).shape == (0, len(FEATURE_NAMES))
