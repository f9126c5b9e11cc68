import lightgbm as lgb
import numpy as np
import pytest

from recommender.engine.ltr import load_ranker, ndcg_at, predict, train_lambdamart

PARAMS = {"num_boost_round": 60, "min_data_in_leaf": 20, "num_threads": 1}


def ranking_problem(n_groups: int = 300, size: int = 20, seed: int = 0):
    """Relevance is decided by feature 2 alone; the row order (the 'retrieval order') is
    only weakly related to it, so the baseline is poor."""
    rng = np.random.default_rng(seed)
    n = n_groups * size
    X = rng.normal(0, 1, (n, 6)).astype(np.float32)
    y = (X[:, 2] > 1.0).astype(np.int32) + (X[:, 2] > 1.8).astype(np.int32)
    # weakly sort each group by a noisy copy of the relevant feature, like a poor retriever
    noisy = X[:, 2] + rng.normal(0, 3.0, n)
    order = np.concatenate([g * size + np.argsort(-noisy[g * size : (g + 1) * size]) for g in range(n_groups)])
    return X[order], y[order], np.full(n_groups, size)


def test_lambdamart_beats_the_retrieval_order_when_one_feature_decides_relevance() -> None:
    X, y, groups = ranking_problem()

    ranker = train_lambdamart(X, y, groups, params=PARAMS, valid_fraction=0.25, seed=1)

    metrics = ranker.metrics
    assert metrics["ndcg@5"] > 0.95
    assert metrics["ndcg@5"] > metrics["baseline_ndcg@5"] + 0.2
    assert metrics["ndcg@10"] > metrics["baseline_ndcg@10"] + 0.2
    assert metrics["n_test_groups"] == 75
    assert max(ranker.feature_importance.items(), key=lambda item: item[1])[0] == "f2"
    assert ranker.feature_names == ("f0", "f1", "f2", "f3", "f4", "f5")


def test_training_is_reproducible_with_the_same_seed() -> None:
    X, y, groups = ranking_problem(n_groups=100)

    first = train_lambdamart(X, y, groups, params=PARAMS, valid_fraction=0.2, seed=3)
    again = train_lambdamart(X, y, groups, params=PARAMS, valid_fraction=0.2, seed=3)

    np.testing.assert_array_equal(predict(first.model_text, X), predict(again.model_text, X))
    assert first.metrics["ndcg@5"] == again.metrics["ndcg@5"]


def test_predict_loads_each_model_once_and_accepts_a_booster() -> None:
    X, y, groups = ranking_problem(n_groups=60)
    text = train_lambdamart(X, y, groups, params=PARAMS, valid_fraction=0.2, seed=0).model_text
    same_text_other_object = "".join(list(text))

    booster = load_ranker(text)

    assert load_ranker(same_text_other_object) is booster
    assert isinstance(booster, lgb.Booster)
    scores = predict(text, X[:50])
    assert scores.dtype == np.float32 and scores.shape == (50,)
    np.testing.assert_array_equal(scores, predict(booster, X[:50]))


def test_ndcg_matches_a_hand_computed_example() -> None:
    # one group, labels in row order [0, 2, 1]; ranking by scores puts them [2, 1, 0]
    scores = np.array([0.1, 0.9, 0.5])
    labels = np.array([0, 2, 1])

    perfect = ndcg_at(scores, labels, [3], k=3)
    reversed_ = ndcg_at(-scores, labels, [3], k=3)

    assert perfect == pytest.approx(1.0)
    ideal = 3 + 1 / np.log2(3)
    assert reversed_ == pytest.approx((1 / np.log2(3) + 3 / np.log2(4)) / ideal)


def test_ndcg_skips_groups_without_any_relevant_row() -> None:
    scores = np.array([1.0, 0.0, 1.0, 0.0])
    labels = np.array([1, 0, 0, 0])

    assert ndcg_at(scores, labels, [2, 2], k=2) == pytest.approx(1.0)


def test_it_rejects_group_sizes_that_do_not_cover_the_rows() -> None:
    X, y, _ = ranking_problem(n_groups=10)

    with pytest.raises(ValueError):
        train_lambdamart(X, y, np.full(10, 19), params=PARAMS, valid_fraction=0.2, seed=0)
