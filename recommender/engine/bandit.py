"""One shared linear bandit over (context, tool) features (the per-tool Beta posteriors are
columns of the feature matrix: `features.py`).

A model per tool (what contextualbandits' online policies keep) needs data for each of 10k+
arms before it is any use; a single ridge regression on features that describe the pair
(similarity, popularity, history, neighbour votes, ...) generalises to tools it has never
seen. The state is the ridge posterior: A = ridge * I + sum x x^T (kept as its inverse) and
b = sum r x, so theta = A^-1 b and the LinUCB width of a row x is sqrt(x^T A^-1 x).

Everything is float64 inside (A^-1 is updated in place of a d x d solve millions of
times; float32 would drift) and float32 at the edges, like the feature matrix.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import numpy.typing as npt

from recommender.engine.types import FloatArray

Float64Array = npt.NDArray[np.float64]

_FORMAT = 1  # bumped when the to_bytes layout changes


@dataclass(frozen=True, eq=False)
class LinearBanditState:
    """Ridge posterior of the shared linear model; immutable, replaced on every update."""

    d: int
    A_inv: Float64Array  # (d, d), symmetric positive definite
    b: Float64Array  # (d,)
    n_updates: int  # events folded in so far
    version: int  # +1 per update() call: what web processes compare to swap models

    def __post_init__(self) -> None:
        if self.A_inv.shape != (self.d, self.d) or self.b.shape != (self.d,):
            raise ValueError(f"A_inv must be ({self.d}, {self.d}) and b ({self.d},)")

    @classmethod
    def initial(cls, d: int, ridge: float = 1.0) -> LinearBanditState:
        if d < 1 or ridge <= 0:
            raise ValueError("d must be >= 1 and ridge > 0")
        return cls(d=d, A_inv=np.eye(d) / ridge, b=np.zeros(d), n_updates=0, version=0)

    @cached_property
    def theta(self) -> Float64Array:
        """Posterior mean of the weights, A^-1 b (computed once per state)."""
        theta: Float64Array = self.A_inv @ self.b
        return theta

    @cached_property
    def _cov_factor(self) -> Float64Array:
        """L with L L^T = A^-1, for Thompson draws; computed once per state."""
        sym = 0.5 * (self.A_inv + self.A_inv.T)
        try:
            factor = np.asarray(np.linalg.cholesky(sym), dtype=np.float64)
        except np.linalg.LinAlgError:  # numerically semi-definite after many updates
            w, v = np.linalg.eigh(sym)
            factor = v * np.sqrt(np.maximum(w, 0.0))
        return factor

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(
            buf,
            format=np.int64(_FORMAT),
            d=np.int64(self.d),
            A_inv=self.A_inv,
            b=self.b,
            n_updates=np.int64(self.n_updates),
            version=np.int64(self.version),
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LinearBanditState:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            if int(z["format"]) != _FORMAT:
                raise ValueError(f"unknown bandit state format {int(z['format'])}")
            return cls(
                d=int(z["d"]),
                A_inv=z["A_inv"].astype(np.float64),
                b=z["b"].astype(np.float64),
                n_updates=int(z["n_updates"]),
                version=int(z["version"]),
            )


def _check_batch(
    state: LinearBanditState, X: FloatArray | Float64Array, rewards: FloatArray | Float64Array
) -> tuple[Float64Array, Float64Array]:
    x = np.asarray(X, dtype=np.float64)
    r = np.asarray(rewards, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != state.d or r.shape != (x.shape[0],):
        raise ValueError(f"X must be (m, {state.d}) and rewards (m,), got {x.shape}, {r.shape}")
    if not (np.isfinite(x).all() and np.isfinite(r).all()):
        raise ValueError("features and rewards must be finite")
    return x, r


def update(
    state: LinearBanditState, X: FloatArray | Float64Array, rewards: FloatArray | Float64Array
) -> LinearBanditState:
    """Fold m events in with m rank-one Sherman-Morrison steps; returns a new state.

    (A + x x^T)^-1 = A^-1 - (A^-1 x)(A^-1 x)^T / (1 + x^T A^-1 x), O(d^2) per event.
    """
    x, r = _check_batch(state, X, rewards)
    a_inv = state.A_inv.copy()
    for row in x:
        u = a_inv @ row
        a_inv -= np.outer(u, u) / (1.0 + row @ u)
    a_inv = 0.5 * (a_inv + a_inv.T)  # keep exact symmetry; rounding breaks it slowly
    return replace(
        state, A_inv=a_inv, b=state.b + x.T @ r, n_updates=state.n_updates + x.shape[0], version=state.version + 1
    )


def update_batched(
    state: LinearBanditState, X: FloatArray | Float64Array, rewards: FloatArray | Float64Array
) -> LinearBanditState:
    """Same result as ``update`` in one step: Woodbury for m <= d, else via the precision.

    Woodbury: (A + X^T X)^-1 = A^-1 - A^-1 X^T (I_m + X A^-1 X^T)^-1 X A^-1 (an m x m solve);
    for larger batches it is cheaper to form A = (A^-1)^-1 + X^T X and invert the d x d.
    """
    x, r = _check_batch(state, X, rewards)
    m = x.shape[0]
    if m == 0:
        return replace(state, version=state.version + 1)
    if m <= state.d:
        xa = x @ state.A_inv  # (m, d)
        inner = np.eye(m) + xa @ x.T
        a_inv = state.A_inv - xa.T @ np.linalg.solve(inner, xa)
    else:
        precision = np.linalg.inv(state.A_inv) + x.T @ x
        a_inv = np.asarray(np.linalg.inv(precision), dtype=np.float64)
    a_inv = 0.5 * (a_inv + a_inv.T)
    return replace(state, A_inv=a_inv, b=state.b + x.T @ r, n_updates=state.n_updates + m, version=state.version + 1)


def predict(state: LinearBanditState, X: FloatArray) -> FloatArray:
    """Posterior mean reward x . theta of every row."""
    return np.asarray(X @ state.theta, dtype=np.float32)


def uncertainty(state: LinearBanditState, X: FloatArray) -> FloatArray:
    """sqrt(x^T A^-1 x) per row: the LinUCB confidence width before alpha."""
    x = np.asarray(X, dtype=np.float64)
    quad: Float64Array = ((x @ state.A_inv) * x).sum(axis=1)  # a BLAS matmul; einsum does not use BLAS here
    return np.sqrt(np.maximum(quad, 0.0)).astype(np.float32)


def ucb_scores(state: LinearBanditState, X: FloatArray, alpha: float) -> FloatArray:
    """LinUCB: x . theta + alpha * sqrt(x^T A^-1 x)."""
    return (predict(state, X) + np.float32(alpha) * uncertainty(state, X)).astype(np.float32)


def sample_thetas(state: LinearBanditState, rng: np.random.Generator, v: float, size: int) -> Float64Array:
    """``size`` draws of theta ~ N(theta_hat, v^2 A^-1), shape (size, d)."""
    z = rng.standard_normal((size, state.d))
    draws: Float64Array = state.theta + v * z @ state._cov_factor.T
    return draws


def thompson_scores(state: LinearBanditState, X: FloatArray, rng: np.random.Generator, v: float) -> FloatArray:
    """One Thompson draw: sample theta ~ N(theta_hat, v^2 A^-1) and return X theta."""
    theta = sample_thetas(state, rng, v, 1)[0]
    return np.asarray(X @ theta, dtype=np.float32)
