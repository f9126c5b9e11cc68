import numpy as np
import pytest

from recommender.engine.bandit import (
    LinearBanditState,
    predict,
    thompson_scores,
    ucb_scores,
    uncertainty,
    update,
    update_batched,
)


def ridge_solution(X: np.ndarray, r: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    A = ridge * np.eye(X.shape[1]) + X.T @ X
    return np.linalg.inv(A), np.linalg.solve(A, X.T @ r)


@pytest.mark.parametrize("seed,ridge", [(0, 1.0), (1, 0.3), (2, 5.0)])
def test_sherman_morrison_updates_equal_the_closed_form_ridge_solution(seed: int, ridge: float) -> None:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((40, 7)).astype(np.float32)
    r = rng.binomial(1, 0.3, 40).astype(np.float32)
    A_inv, theta = ridge_solution(X.astype(np.float64), r.astype(np.float64), ridge)

    state = LinearBanditState.initial(7, ridge=ridge)
    state = update(state, X[:15], r[:15])
    state = update(state, X[15:], r[15:])

    np.testing.assert_allclose(state.A_inv, A_inv, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(state.theta, theta, rtol=1e-9, atol=1e-12)
    assert state.n_updates == 40 and state.version == 2


@pytest.mark.parametrize("batch", [3, 7, 50])  # Woodbury (m <= d) and precision paths
def test_batched_update_gives_the_same_state_as_rank_one_steps(batch: int) -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((batch, 7))
    r = rng.random(batch)
    start = update(LinearBanditState.initial(7), rng.standard_normal((10, 7)), rng.random(10))

    sequential = update(start, X, r)
    batched = update_batched(start, X, r)

    np.testing.assert_allclose(batched.A_inv, sequential.A_inv, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(batched.theta, sequential.theta, rtol=1e-9, atol=1e-12)
    assert batched.n_updates == sequential.n_updates == 10 + batch


def test_update_returns_a_new_state_and_leaves_the_old_one_untouched() -> None:
    state = LinearBanditState.initial(4)
    before = state.A_inv.copy()

    new = update(state, np.ones((2, 4)), np.ones(2))

    assert new is not state
    np.testing.assert_array_equal(state.A_inv, before)
    assert state.n_updates == 0 and not np.array_equal(new.A_inv, before)


def test_the_bandit_learns_the_weights_that_generate_rewards() -> None:
    rng = np.random.default_rng(4)
    true_theta = np.array([0.1, 0.5, -0.3, 0.0, 0.2])
    X = rng.uniform(0, 1, (3000, 5))
    r = X @ true_theta + rng.normal(0, 0.1, 3000)

    state = update(LinearBanditState.initial(5), X, r)

    np.testing.assert_allclose(state.theta, true_theta, atol=0.03)


def test_state_round_trips_through_bytes_exactly() -> None:
    rng = np.random.default_rng(5)
    state = update(LinearBanditState.initial(6, ridge=2.0), rng.standard_normal((30, 6)), rng.random(30))

    restored = LinearBanditState.from_bytes(state.to_bytes())

    np.testing.assert_array_equal(restored.A_inv, state.A_inv)
    np.testing.assert_array_equal(restored.b, state.b)
    np.testing.assert_array_equal(restored.theta, state.theta)
    assert (restored.d, restored.n_updates, restored.version) == (6, 30, 1)


def test_it_refuses_bytes_of_an_unknown_format() -> None:
    import io

    buf = io.BytesIO()
    np.savez(
        buf,
        format=np.int64(99),
        d=np.int64(1),
        A_inv=np.eye(1),
        b=np.zeros(1),
        n_updates=np.int64(0),
        version=np.int64(0),
    )

    with pytest.raises(ValueError):
        LinearBanditState.from_bytes(buf.getvalue())


def test_thompson_scores_are_reproducible_with_a_seeded_generator() -> None:
    rng = np.random.default_rng(6)
    state = update(LinearBanditState.initial(5), rng.standard_normal((20, 5)), rng.random(20))
    X = rng.standard_normal((50, 5)).astype(np.float32)

    first = thompson_scores(state, X, np.random.default_rng(42), v=0.5)
    again = thompson_scores(state, X, np.random.default_rng(42), v=0.5)
    other = thompson_scores(state, X, np.random.default_rng(43), v=0.5)

    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_thompson_draws_concentrate_on_the_mean_as_data_grows() -> None:
    rng = np.random.default_rng(7)
    X = rng.standard_normal((4000, 4))
    r = X @ np.array([0.2, -0.1, 0.3, 0.0]) + rng.normal(0, 0.1, 4000)
    rows = rng.standard_normal((10, 4)).astype(np.float32)

    def spread(state: LinearBanditState) -> float:
        draws = np.stack([thompson_scores(state, rows, np.random.default_rng(s), v=1.0) for s in range(200)])
        return float(draws.std(axis=0).mean())

    assert spread(update(LinearBanditState.initial(4), X, r)) < 0.1 * spread(
        update(LinearBanditState.initial(4), X[:20], r[:20])
    )


def test_ucb_scores_are_the_mean_plus_alpha_times_the_width() -> None:
    rng = np.random.default_rng(8)
    state = update(LinearBanditState.initial(3), rng.standard_normal((10, 3)), rng.random(10))
    X = rng.standard_normal((5, 3)).astype(np.float32)

    scores = ucb_scores(state, X, alpha=2.0)

    expected = X @ state.theta + 2.0 * np.sqrt(np.einsum("ij,jk,ik->i", X, state.A_inv, X))
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    np.testing.assert_array_equal(scores, ucb_scores(state, X, alpha=2.0))


def test_the_ucb_bonus_shrinks_as_data_arrives() -> None:
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 6)).astype(np.float32)
    state = LinearBanditState.initial(6)
    widths = []
    for _ in range(4):
        widths.append(float(uncertainty(state, x)[0]))
        state = update(state, rng.standard_normal((50, 6)), rng.random(50))

    assert widths == sorted(widths, reverse=True)
    assert widths[-1] < 0.3 * widths[0]


def test_an_untrained_bandit_predicts_zero() -> None:
    X = np.random.default_rng(10).standard_normal((4, 3)).astype(np.float32)

    assert np.all(predict(LinearBanditState.initial(3), X) == 0.0)
