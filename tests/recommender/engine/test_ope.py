from dataclasses import dataclass

import numpy as np
import pytest
from contextualbandits.evaluation import evaluateDoublyRobust
from sklearn.linear_model import LogisticRegression

from recommender.engine.ope import OpeConfig, doubly_robust, ips, snips
from recommender.engine.policy import PolicyConfig, choose_slate, inclusion_probabilities

N_ARMS = 5


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class LoggedBandit:
    X: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    logging: np.ndarray  # logging probability of the logged action
    target_all: np.ndarray  # (n, arms) target policy probabilities
    true_value: float


def logged_bandit(seed: int, n: int = 20_000) -> LoggedBandit:
    """Contexts, a softmax logging policy, a sharper target policy, and the target's true
    value computed from the known reward probabilities on a large fresh sample."""
    rng = np.random.default_rng(seed)
    beta = rng.normal(0, 1, (4, N_ARMS))

    def reward_prob(X: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(X @ beta - 1.0)))

    def logging_policy(X: np.ndarray) -> np.ndarray:
        return softmax(0.5 * X @ beta)

    def target_policy(X: np.ndarray) -> np.ndarray:
        return softmax(2.0 * X @ beta)

    fresh = rng.normal(0, 1, (400_000, 4))
    true_value = float((target_policy(fresh) * reward_prob(fresh)).sum(axis=1).mean())
    X = rng.normal(0, 1, (n, 4))
    mu = logging_policy(X)
    action = (mu.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    rows = np.arange(n)
    reward = rng.binomial(1, reward_prob(X)[rows, action]).astype(np.float64)
    return LoggedBandit(X, action, reward, mu[rows, action], target_policy(X), true_value)


def reward_model(log: LoggedBandit) -> np.ndarray:
    """(n, arms) predicted reward: one logistic regression per arm on the logged data."""
    predictions = np.zeros((log.X.shape[0], N_ARMS))
    for arm in range(N_ARMS):
        mask = log.action == arm
        model = LogisticRegression().fit(log.X[mask], log.reward[mask])
        predictions[:, arm] = model.predict_proba(log.X)[:, 1]
    return predictions


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ips_snips_and_dr_intervals_contain_the_true_policy_value(seed: int) -> None:
    log = logged_bandit(seed)
    rows = np.arange(log.X.shape[0])
    target = log.target_all[rows, log.action]
    r_hat = reward_model(log)

    estimates = {
        "ips": ips(log.reward, log.logging, target),
        "snips": snips(log.reward, log.logging, target),
        "dr": doubly_robust(
            log.reward, log.logging, target, r_hat[rows, log.action], (log.target_all * r_hat).sum(axis=1)
        ),
    }

    for name, estimate in estimates.items():
        assert estimate.ci_low <= log.true_value <= estimate.ci_high, name
    # the logged average is what the logging policy earned, far from the target's value
    assert not estimates["dr"].ci_low <= log.reward.mean() <= estimates["dr"].ci_high


def test_doubly_robust_has_a_narrower_interval_than_ips() -> None:
    log = logged_bandit(3)
    rows = np.arange(log.X.shape[0])
    target = log.target_all[rows, log.action]
    r_hat = reward_model(log)

    plain = ips(log.reward, log.logging, target)
    dr = doubly_robust(log.reward, log.logging, target, r_hat[rows, log.action], (log.target_all * r_hat).sum(axis=1))
    normalised = snips(log.reward, log.logging, target)

    assert dr.half_width < 0.8 * plain.half_width
    assert normalised.half_width < plain.half_width
    assert plain.effective_n < plain.n


def test_doubly_robust_agrees_with_contextualbandits_for_a_deterministic_target() -> None:
    log = logged_bandit(4, n=3000)
    rows = np.arange(log.X.shape[0])
    r_hat = reward_model(log)
    chosen = log.target_all.argmax(axis=1)
    target = (chosen == log.action).astype(np.float64)

    ours = doubly_robust(
        log.reward, log.logging, target, r_hat[rows, log.action], r_hat[rows, chosen], config=OpeConfig(max_weight=1e9)
    )
    theirs = evaluateDoublyRobust(
        chosen,
        log.X,
        log.action,
        log.reward,
        log.logging,
        np.c_[r_hat[rows, chosen], r_hat[rows, log.action]],
        handle_invalid=False,
        c=None,
        pmin=None,
    )

    assert ours.value == pytest.approx(theirs, rel=1e-12)


def test_weights_are_clipped_at_the_configured_maximum() -> None:
    rewards = np.array([1.0, 0.0, 1.0])
    logging = np.array([0.01, 0.5, 0.5])
    target = np.array([1.0, 0.5, 0.5])

    estimate = ips(rewards, logging, target, config=OpeConfig(max_weight=10.0))

    assert estimate.value == pytest.approx((10.0 + 0.0 + 1.0) / 3)
    assert estimate.effective_n == pytest.approx(12.0**2 / 102.0)


def test_bootstrap_intervals_are_reproducible_with_a_seeded_generator() -> None:
    log = logged_bandit(5, n=4000)
    target = log.target_all[np.arange(4000), log.action]
    config = OpeConfig(ci="bootstrap", n_bootstrap=300)

    first = snips(log.reward, log.logging, target, config=config, rng=np.random.default_rng(1))
    again = snips(log.reward, log.logging, target, config=config, rng=np.random.default_rng(1))
    normal = snips(log.reward, log.logging, target)

    assert first == again
    assert first.ci_low < first.value < first.ci_high
    assert first.half_width == pytest.approx(normal.half_width, rel=0.25)
    with pytest.raises(ValueError):
        ips(log.reward, log.logging, target, config=config)  # no generator given


def test_it_rejects_zero_logging_propensities() -> None:
    with pytest.raises(ValueError):
        ips(np.ones(2), np.array([0.5, 0.0]), np.ones(2))


def test_slate_ips_with_epsilon_logging_recovers_the_target_slate_value() -> None:
    """Slates logged by an epsilon policy with exact inclusion propensities: per-slate IPS
    and SNIPS over (impression, shown item) events find the expected number of uses of a
    different policy."""
    rng = np.random.default_rng(6)
    n, k, rounds = 20, 4, 3000
    logging_config = PolicyConfig(name="ltr", exploration="epsilon", epsilon=0.3, explore_pool=n)
    target_config = PolicyConfig(name="ltr", exploration="epsilon", epsilon=0.1, explore_pool=5)
    features = np.zeros((n, 23), dtype=np.float32)
    retrieval = np.linspace(1, 0, n).astype(np.float32)
    rewards: list[float] = []
    logged: list[float] = []
    targeted: list[float] = []
    round_ids: list[int] = []
    true_values: list[float] = []
    for r in range(rounds):
        use_prob = rng.beta(1, 6, n)
        logging_scores = (use_prob + rng.normal(0, 0.2, n)).astype(np.float32)  # noisy
        target_scores = use_prob.astype(np.float32)  # a better ranker
        shown = choose_slate(
            features,
            retrieval_scores=retrieval,
            k=k,
            config=logging_config,
            bandit=None,
            ltr_scores=logging_scores,
            rng=rng,
        )
        target = inclusion_probabilities(
            features,
            retrieval_scores=retrieval,
            k=k,
            config=target_config,
            bandit=None,
            ltr_scores=target_scores,
            rng=rng,
        )
        rewards.extend(rng.binomial(1, use_prob[shown.order]))
        logged.extend(shown.propensities)
        targeted.extend(target[shown.order])
        round_ids.extend([r] * k)
        true_values.append(float(target @ use_prob))
    true_value = float(np.mean(true_values))

    plain = ips(rewards, logged, targeted, rounds=round_ids)
    normalised = snips(rewards, logged, targeted, rounds=round_ids)

    assert plain.n == rounds
    assert plain.ci_low <= true_value <= plain.ci_high
    assert normalised.ci_low <= true_value <= normalised.ci_high
    logged_value = np.sum(rewards) / rounds
    assert true_value > logged_value + 0.05  # the target really is better than the log
    assert plain.value > logged_value
