from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from recommender.engine.bandit import LinearBanditState, update
from recommender.engine.features import FEATURE_INDEX, N_FEATURES
from recommender.engine.policy import PolicyConfig, choose_slate, inclusion_probabilities, slate_with_inclusion

D = N_FEATURES


def candidates(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random feature matrix with a descending retrieval score; every tool well known."""
    rng = np.random.default_rng(seed)
    features = rng.uniform(0, 1, (n, D)).astype(np.float32)
    features[:, FEATURE_INDEX["bias"]] = 1.0
    features[:, FEATURE_INDEX["pop_uncertainty"]] = 0.05
    retrieval = np.linspace(1.0, 0.0, n).astype(np.float32)
    return features, retrieval


def trained_bandit(seed: int = 1) -> LinearBanditState:
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (300, D))
    weights = rng.normal(0, 0.3, D)
    return update(LinearBanditState.initial(D), X, X @ weights + rng.normal(0, 0.05, 300))


def slate(
    features: np.ndarray,
    retrieval: np.ndarray,
    config: PolicyConfig,
    *,
    k: int = 5,
    bandit: LinearBanditState | None = None,
    ltr: np.ndarray | None = None,
    seed: int = 0,
):
    return choose_slate(
        features,
        retrieval_scores=retrieval,
        k=k,
        config=config,
        bandit=bandit,
        ltr_scores=ltr,
        rng=np.random.default_rng(seed),
    )


def test_the_semantic_policy_serves_the_retrieval_order_with_propensity_one() -> None:
    features, retrieval = candidates(30)
    shuffled = np.random.default_rng(2).permutation(30)

    chosen = slate(features[shuffled], retrieval[shuffled], PolicyConfig(name="semantic", exploration="ucb"))

    assert retrieval[shuffled][chosen.order].tolist() == pytest.approx(retrieval[:5].tolist())
    assert chosen.propensities.tolist() == [1.0] * 5
    assert not chosen.explored.any() and chosen.policy == "semantic"


def test_the_bandit_policy_without_exploration_ranks_by_predicted_reward() -> None:
    features, retrieval = candidates(40)
    bandit = trained_bandit()

    chosen = slate(features, retrieval, PolicyConfig(name="bandit", exploration="none"), bandit=bandit)

    predicted = features.astype(np.float64) @ bandit.theta
    assert chosen.order.tolist() == np.argsort(-predicted)[:5].tolist()
    assert chosen.policy == "bandit"


def test_missing_models_fall_back_instead_of_failing() -> None:
    features, retrieval = candidates(20)

    no_ltr = slate(features, retrieval, PolicyConfig(name="ltr"), bandit=trained_bandit())
    nothing = slate(features, retrieval, PolicyConfig(name="hybrid"))

    assert no_ltr.policy == "bandit"
    assert nothing.policy == "semantic" and nothing.order.tolist() == [0, 1, 2, 3, 4]


def test_the_ltr_policy_orders_by_ltr_scores() -> None:
    features, retrieval = candidates(20)
    ltr = np.random.default_rng(3).normal(size=20).astype(np.float32)

    chosen = slate(features, retrieval, PolicyConfig(name="ltr", exploration="none"), ltr=ltr)

    assert chosen.order.tolist() == np.argsort(-ltr)[:5].tolist()


def test_a_hybrid_with_no_learned_weight_follows_retrieval() -> None:
    features, retrieval = candidates(20)
    config = PolicyConfig(name="hybrid", exploration="none", w_semantic=1.0, w_learned=0.0)

    chosen = slate(features, retrieval, config, bandit=trained_bandit())

    assert chosen.order.tolist() == [0, 1, 2, 3, 4]


def test_ucb_explores_a_relevant_new_tool_but_not_an_irrelevant_one() -> None:
    features, retrieval = candidates(30)
    features[:, FEATURE_INDEX["pop_uncertainty"]] = 0.05
    features[[8, 28], FEATURE_INDEX["pop_uncertainty"]] = 1.0  # two never-shown tools
    flat = LinearBanditState.initial(D)  # no preference learned yet: all means are 0
    config = PolicyConfig(name="bandit", exploration="ucb", alpha=0.0, tool_bonus=0.5)

    chosen = slate(features, retrieval, config, bandit=flat)

    assert 8 in chosen.order  # retrieval rank 8 of 30: relevant, gets the bonus
    assert 28 not in chosen.order  # near the bottom of retrieval: relevance ~0, no bonus
    assert chosen.explored[chosen.order.tolist().index(8)]
    assert chosen.propensities.tolist() == [1.0] * 5


def test_ucb_eventually_shows_every_relevant_candidate() -> None:
    n, k = 12, 3
    features, retrieval = candidates(n, seed=4)
    shows = np.zeros(n)
    bandit = LinearBanditState.initial(D)
    config = PolicyConfig(name="bandit", exploration="ucb", alpha=0.2, tool_bonus=0.3, relevance_power=1.0)
    for _ in range(200):
        features[:, FEATURE_INDEX["pop_uncertainty"]] = np.sqrt(11.0 / (11.0 + shows))
        chosen = slate(features, retrieval, config, k=k, bandit=bandit)
        shows[chosen.order] += 1
        bandit = update(bandit, features[chosen.order], np.zeros(k))  # nothing ever used

    relevant = retrieval >= 0.35
    assert np.all(shows[relevant] > 0)
    assert shows[-1] == 0  # relevance 0: never worth a slot


def test_epsilon_inclusion_probabilities_sum_to_k() -> None:
    features, retrieval = candidates(40)
    config = PolicyConfig(name="bandit", exploration="epsilon", epsilon=0.3, explore_pool=10)

    probs = inclusion_probabilities(
        features,
        retrieval_scores=retrieval,
        k=6,
        config=config,
        bandit=trained_bandit(),
        ltr_scores=None,
        rng=np.random.default_rng(0),
    )

    assert probs.sum() == pytest.approx(6.0, abs=1e-5)
    assert np.sum(probs > 0) == 16  # the greedy 6 and the pool of 10
    assert probs.max() <= 1.0


def test_epsilon_propensities_match_how_often_each_item_is_shown() -> None:
    features, retrieval = candidates(25)
    bandit = trained_bandit()
    config = PolicyConfig(name="bandit", exploration="epsilon", epsilon=0.25, explore_pool=8)
    rng = np.random.default_rng(5)
    counts = np.zeros(25)
    logged: dict[int, list[float]] = {}
    draws = 20_000
    for _ in range(draws):
        chosen = choose_slate(
            features, retrieval_scores=retrieval, k=4, config=config, bandit=bandit, ltr_scores=None, rng=rng
        )
        counts[chosen.order] += 1
        logged.update(zip(chosen.order.tolist(), chosen.propensities.tolist()))

    exact = inclusion_probabilities(
        features, retrieval_scores=retrieval, k=4, config=config, bandit=bandit, ltr_scores=None, rng=rng
    )
    np.testing.assert_allclose(counts / draws, exact, atol=0.01)
    for item, propensity in logged.items():
        assert propensity == pytest.approx(exact[item])


def test_epsilon_zero_serves_the_greedy_slate() -> None:
    features, retrieval = candidates(20)
    greedy = slate(features, retrieval, PolicyConfig(name="bandit"), bandit=trained_bandit())

    chosen = slate(
        features, retrieval, PolicyConfig(name="bandit", exploration="epsilon", epsilon=0.0), bandit=trained_bandit()
    )

    assert chosen.order.tolist() == greedy.order.tolist()
    assert chosen.propensities.tolist() == [1.0] * 5 and not chosen.explored.any()


def test_explored_epsilon_items_come_from_the_relevant_pool() -> None:
    features, retrieval = candidates(50)
    config = PolicyConfig(name="bandit", exploration="epsilon", epsilon=1.0, explore_pool=6)

    chosen = slate(features, retrieval, config, bandit=trained_bandit())

    assert chosen.explored.all()
    greedy = slate(features, retrieval, PolicyConfig(name="bandit"), bandit=trained_bandit())
    pool = [i for i in range(50) if i not in greedy.order][:6]
    assert set(chosen.order.tolist()) <= set(pool)
    assert chosen.propensities == pytest.approx([5 / 6] * 5)


def test_thompson_slates_are_reproducible_with_a_seeded_generator() -> None:
    features, retrieval = candidates(40)
    config = PolicyConfig(name="bandit", exploration="thompson", v=1.0)
    bandit = trained_bandit()

    first = slate(features, retrieval, config, bandit=bandit, seed=7)
    again = slate(features, retrieval, config, bandit=bandit, seed=7)

    assert first.order.tolist() == again.order.tolist()
    np.testing.assert_array_equal(first.propensities, again.propensities)
    assert np.all(first.propensities >= 1 / (1 + config.thompson_resamples))


def test_thompson_propensities_estimate_how_often_each_item_is_shown() -> None:
    features, retrieval = candidates(15)
    bandit = update(LinearBanditState.initial(D), features[:5].astype(np.float64), np.ones(5))
    config = PolicyConfig(name="bandit", exploration="thompson", v=0.5, thompson_resamples=200)
    rng = np.random.default_rng(8)
    counts = np.zeros(15)
    draws = 3000
    for _ in range(draws):
        counts[
            choose_slate(
                features, retrieval_scores=retrieval, k=3, config=config, bandit=bandit, ltr_scores=None, rng=rng
            ).order
        ] += 1

    estimate = inclusion_probabilities(
        features, retrieval_scores=retrieval, k=3, config=config, bandit=bandit, ltr_scores=None, rng=rng
    )
    assert estimate.sum() == pytest.approx(3.0)
    assert np.max(np.minimum(estimate, 1 - estimate)) > 0.05  # genuinely random
    np.testing.assert_allclose(counts / draws, estimate, atol=0.07)


@pytest.mark.parametrize(
    "config",
    [
        PolicyConfig(name="bandit", exploration="thompson", v=0.5, thompson_resamples=200),
        PolicyConfig(name="hybrid", exploration="epsilon", epsilon=0.3),
        PolicyConfig(name="bandit", exploration="ucb"),
        PolicyConfig(),
    ],
    ids=["thompson", "epsilon", "ucb", "semantic"],
)
def test_a_slate_with_its_inclusion_probabilities_agrees_with_the_two_apart(config: PolicyConfig) -> None:
    """What a shadow variant stores: its slate, and every candidate's inclusion probability
    (for Thompson from the slate's own draws), as `choose_slate` and `inclusion_probabilities`."""
    features, retrieval = candidates(15)
    bandit = update(LinearBanditState.initial(D), features[:5].astype(np.float64), np.ones(5))
    kwargs: dict[str, Any] = dict(retrieval_scores=retrieval, k=3, config=config, bandit=bandit, ltr_scores=None)
    together, inclusion = slate_with_inclusion(features, **kwargs, rng=np.random.default_rng(3))
    alone = choose_slate(features, **kwargs, rng=np.random.default_rng(3))
    assert together.order.tolist() == alone.order.tolist()
    np.testing.assert_array_equal(together.propensities, alone.propensities)
    np.testing.assert_allclose(inclusion[together.order], together.propensities, rtol=1e-6)
    apart = inclusion_probabilities(features, **kwargs, rng=np.random.default_rng(4))
    assert inclusion.sum() == pytest.approx(3.0)
    np.testing.assert_allclose(inclusion, apart, atol=0.12)  # Thompson: two Monte Carlo estimates


def test_k_is_capped_by_the_candidates_and_k_max() -> None:
    features, retrieval = candidates(4)

    small = slate(features, retrieval, PolicyConfig(), k=10)
    capped = slate(*candidates(30), PolicyConfig(k_max=3), k=10)
    empty = slate(features[:0], retrieval[:0], PolicyConfig(name="bandit", exploration="ucb"), bandit=trained_bandit())

    assert len(small) == 4 and len(capped) == 3 and len(empty) == 0


def test_it_rejects_features_that_do_not_fit_the_bandit() -> None:
    features, retrieval = candidates(10)

    with pytest.raises(ValueError):
        slate(features[:, :5], retrieval, PolicyConfig(name="bandit"), bandit=trained_bandit())


def test_it_rejects_an_unknown_policy_name() -> None:
    with pytest.raises(ValueError):
        replace(PolicyConfig(), name="greedy")  # type: ignore[arg-type]
