"""From a feature matrix to a slate of k tools, with the propensities OPE needs.

Propensity, as logged and as read by ``ope.py``: the probability, given this request's
candidates, features and model state, that the policy puts the item *in the slate* (its
marginal inclusion probability; position is ignored because the agent loads the whole slate
as a set). The inclusion probabilities of all n candidates sum to k. Item-level IPS with
them is unbiased for the expected number of uses per slate as long as whether a tool is used
depends on the tool and the context, not on which other tools were shown.

* deterministic policies (``semantic``, exploration ``none`` or ``ucb``): 1 for every shown
  item (and 0 for the rest: such logs cannot evaluate a different policy by IPS);
* ``epsilon``: exact. Each of the k slots independently explores with probability epsilon;
  non-exploring slots take the greedy ranking in order, exploring slots take a uniform
  sample (without replacement) of the ``explore_pool`` most relevant candidates that are not
  in the greedy top k. With E ~ Binomial(k, epsilon) and pool size p, the greedy item of
  rank r is shown iff min(E, p) <= k - 1 - r, and a pool item with probability E[min(E, p)]/p;
* ``thompson``: estimated. The served draw and ``thompson_resamples`` fresh draws from the
  same rng are ranked; the propensity is the share of the M + 1 draws whose top k holds the
  item. Counting the served draw makes it conservative: never below 1 / (M + 1), so a
  weight can never be infinite.

Exploration is scaled by relevance: the bonus (UCB), the noise on the tool's own
uncertainty (Thompson) and the explore pool (epsilon) all favour candidates retrieval finds
relevant, so a new tool is tried where it plausibly fits instead of at random. A tool's own
Beta uncertainty (feature ``pop_uncertainty``) only shrinks when it is shown, so a relevant
tool that keeps losing keeps its bonus while the winners' bonuses shrink: nothing relevant
is starved forever.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from recommender.engine.bandit import LinearBanditState, sample_thetas, uncertainty
from recommender.engine.features import FEATURE_INDEX
from recommender.engine.types import BoolArray, FloatArray, IntArray

PolicyName = Literal["semantic", "bandit", "ltr", "hybrid"]
ExplorationName = Literal["ucb", "thompson", "epsilon", "none"]
Float64Array = npt.NDArray[np.float64]


MAX_THOMPSON_RESAMPLES, MAX_POOL, MAX_WEIGHT = 256, 1000, 1e6


@dataclass(frozen=True)
class PolicyConfig:
    """One variant's policy. ``bandit``/``ltr`` score = learned + alpha-scaled bonus;
    ``hybrid`` = w_semantic * relevance + w_learned * learned + w_exploration * bonus."""

    name: PolicyName = "semantic"
    exploration: ExplorationName = "none"
    alpha: float = 0.5  # LinUCB width multiplier
    v: float = 0.3  # Thompson: theta ~ N(theta_hat, v^2 A^-1)
    epsilon: float = 0.1  # per-slot exploration probability
    tool_bonus: float = 0.1  # weight of the tool's own Beta uncertainty (pop_uncertainty)
    relevance_power: float = 2.0  # relevance = minmax(retrieval score) ** power
    w_semantic: float = 0.5
    w_learned: float = 0.5
    w_exploration: float = 1.0
    k_max: int = 50
    explore_pool: int = 20
    thompson_resamples: int = 32

    def __post_init__(self) -> None:
        if self.name not in ("semantic", "bandit", "ltr", "hybrid"):
            raise ValueError(f"unknown policy {self.name!r}")
        if self.exploration not in ("ucb", "thompson", "epsilon", "none"):
            raise ValueError(f"unknown exploration {self.exploration!r}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError("epsilon must be in [0, 1]")
        if min(self.alpha, self.v, self.tool_bonus, self.relevance_power) < 0:
            raise ValueError("alpha, v, tool_bonus and relevance_power must be >= 0")
        if self.k_max < 1 or self.explore_pool < 0 or self.thompson_resamples < 1:
            raise ValueError("k_max and thompson_resamples must be >= 1, explore_pool >= 0")
        # Bounded: a policy may come from an API key, and each of its requests allocates
        # (1 + thompson_resamples) draws over the candidates.
        if self.thompson_resamples > MAX_THOMPSON_RESAMPLES or max(self.k_max, self.explore_pool) > MAX_POOL:
            raise ValueError(
                f"thompson_resamples must be <= {MAX_THOMPSON_RESAMPLES}, k_max and explore_pool <= {MAX_POOL}"
            )
        weights = (self.alpha, self.v, self.epsilon, self.tool_bonus, self.relevance_power, self.w_semantic)
        if not all(math.isfinite(w) and abs(w) <= MAX_WEIGHT for w in (*weights, self.w_learned, self.w_exploration)):
            raise ValueError(f"weights must be finite numbers within +-{MAX_WEIGHT:g}")


# Named policies for experiments' variants, `simulate` and `evaluate_policy`.
POLICY_PRESETS: dict[str, dict[str, object]] = {
    "semantic": {"name": "semantic"},
    # Exploration widths as tuned with `simulate` (alpha 0.2 / tool bonus 0.05 beat the
    # defaults 0.5 / 0.1 on hit rate and Recall@5, and still picked up every added tool).
    "bandit": {"name": "bandit", "exploration": "ucb", "alpha": 0.2, "tool_bonus": 0.05},
    "thompson": {"name": "bandit", "exploration": "thompson"},
    "hybrid": {"name": "hybrid", "exploration": "ucb"},
    "hybrid-thompson": {"name": "hybrid", "exploration": "thompson"},
    "epsilon": {"name": "hybrid", "exploration": "epsilon"},
    "ltr": {"name": "ltr", "exploration": "ucb"},
}


def policy_from_json(raw: Mapping[str, object] | None) -> PolicyConfig:
    """A policy's JSON (a variant's, a setting's) as a PolicyConfig; keys that are not
    fields are ignored. Raises ValueError on a bad value."""
    fields = set(PolicyConfig.__dataclass_fields__)
    try:
        return PolicyConfig(**{k: v for k, v in (raw or {}).items() if k in fields})  # type: ignore[arg-type]
    except TypeError as exc:
        raise ValueError(str(exc)) from exc


@dataclass(frozen=True, eq=False)
class Slate:
    """The chosen items, best first, as indices into the request's candidate arrays."""

    order: IntArray
    scores: FloatArray  # the policy's score of each item, exploration included
    propensities: FloatArray  # inclusion probability of each item (see module docstring)
    explored: BoolArray  # shown only because of exploration
    policy: str  # the policy that served, after fallbacks (ltr without scores -> bandit)
    exploration: str

    def __len__(self) -> int:
        return int(self.order.shape[0])


def _minmax(x: Float64Array) -> Float64Array:
    """Scale each column (or a vector) to [0, 1]; a constant column becomes all ones."""
    lo, hi = x.min(axis=0), x.max(axis=0)
    spread = hi - lo
    out: Float64Array = np.where(spread > 0, (x - lo) / np.where(spread > 0, spread, 1.0), 1.0)
    return out


def _top_k(scores: Float64Array, tiebreak: Float64Array, k: int) -> IntArray:
    """Indices of the k best scores, ties broken by the retrieval score, then by index."""
    n = scores.shape[0]
    idx = np.arange(n) if k >= n else np.argpartition(-scores, k - 1)[:k]
    # argpartition may cut a tie group arbitrarily; widen to every tied item, then sort
    if k < n:
        idx = np.flatnonzero(scores >= scores[idx].min())
    ranked = idx[np.lexsort((idx, -tiebreak[idx], -scores[idx]))]
    return ranked[:k].astype(np.int64)


@dataclass(frozen=True, eq=False)
class _Request:
    """One request, validated, with the policy resolved after fallbacks."""

    features: FloatArray
    retrieval: Float64Array
    k: int
    config: PolicyConfig
    name: PolicyName
    bandit: LinearBanditState | None  # only when the resolved policy reads it
    ltr: Float64Array | None
    relevance: Float64Array

    @property
    def n(self) -> int:
        return int(self.retrieval.shape[0])

    @property
    def bonus_weight(self) -> float:
        return self.config.w_exploration if self.name == "hybrid" else 1.0

    def exploit(self, thetas: Float64Array | None = None) -> Float64Array:
        """(n, M) scores without exploration, one column per theta (theta_hat if None)."""
        if self.name == "semantic":
            return self.retrieval[:, None]
        if self.name == "ltr" and self.ltr is not None:
            return _minmax(self.ltr)[:, None]
        learned: list[Float64Array] = []
        if self.bandit is not None:
            th = self.bandit.theta[None, :] if thetas is None else thetas
            raw = self.features.astype(np.float64) @ th.T
            if self.name == "bandit":
                return raw
            learned.append(_minmax(raw))
        if self.ltr is not None:
            learned.append(_minmax(self.ltr)[:, None])
        mixed = sum(learned[1:], learned[0]) / len(learned)
        out: Float64Array = self.config.w_semantic * _minmax(self.retrieval)[:, None] + self.config.w_learned * mixed
        return out

    def tool_uncertainty(self) -> Float64Array:
        return self.features[:, FEATURE_INDEX["pop_uncertainty"]].astype(np.float64)

    def ucb_bonus(self) -> Float64Array:
        cfg = self.config
        width = np.zeros(self.n) if self.bandit is None else uncertainty(self.bandit, self.features).astype(np.float64)
        bonus: Float64Array = (
            self.bonus_weight * self.relevance * (cfg.alpha * width + cfg.tool_bonus * self.tool_uncertainty())
        )
        return bonus

    def thompson_matrix(self, draws: int, rng: np.random.Generator) -> Float64Array:
        """(n, draws) sampled scores: theta draws plus noise on the tool's own uncertainty."""
        thetas = (
            None if self.bandit is None or self.name == "ltr" else sample_thetas(self.bandit, rng, self.config.v, draws)
        )
        scores = self.exploit(thetas)
        noise_scale = self.bonus_weight * self.config.tool_bonus * self.relevance * self.tool_uncertainty()
        out: Float64Array = scores + noise_scale[:, None] * rng.standard_normal((self.n, draws))
        return out


def _resolve(
    features: FloatArray,
    retrieval_scores: FloatArray,
    k: int,
    config: PolicyConfig,
    bandit: LinearBanditState | None,
    ltr_scores: FloatArray | None,
) -> _Request:
    n = retrieval_scores.shape[0]
    if retrieval_scores.ndim != 1 or features.ndim != 2 or features.shape[0] != n:
        raise ValueError("features must be (n, d) and retrieval_scores (n,)")
    if ltr_scores is not None and ltr_scores.shape != (n,):
        raise ValueError("ltr_scores must be (n,)")
    name: PolicyName = config.name
    if name == "ltr" and ltr_scores is None:
        name = "bandit"
    if name == "hybrid" and bandit is None and ltr_scores is None:
        name = "semantic"
    if name == "bandit" and bandit is None:
        name = "semantic"
    if name != "semantic" and bandit is not None and features.shape[1] != bandit.d:
        raise ValueError(f"bandit expects {bandit.d} features, got {features.shape[1]}")
    retrieval = retrieval_scores.astype(np.float64)
    return _Request(
        features=features,
        retrieval=retrieval,
        k=max(0, min(k, config.k_max, n)),
        config=config,
        name=name,
        bandit=bandit if name != "semantic" else None,  # ltr reads its UCB width
        ltr=(ltr_scores.astype(np.float64) if ltr_scores is not None and name in ("ltr", "hybrid") else None),
        relevance=_minmax(retrieval) ** config.relevance_power if n else retrieval,
    )


def _exploration(req: _Request) -> ExplorationName:
    return "none" if req.name == "semantic" else req.config.exploration


def _epsilon_plan(req: _Request, greedy_scores: Float64Array) -> tuple[IntArray, IntArray, Float64Array]:
    """Greedy top k, the explore pool, and the exact inclusion probability of each."""
    k, eps = req.k, req.config.epsilon
    greedy = _top_k(greedy_scores, req.retrieval, k)
    outside = np.ones(req.n, dtype=bool)
    outside[greedy] = False
    by_relevance = np.argsort(-req.retrieval, kind="stable")
    pool = by_relevance[outside[by_relevance]][: req.config.explore_pool].astype(np.int64)
    p = pool.shape[0]
    pmf = np.array([math.comb(k, e) * eps**e * (1 - eps) ** (k - e) for e in range(k + 1)])
    explored_count = np.minimum(np.arange(k + 1), p)  # min(E, p)
    # P(min(E, p) <= j) for j = k - 1 - r, r = 0..k-1 (greedy rank r)
    cdf = np.array([pmf[explored_count <= j].sum() for j in range(k - 1, -1, -1)])
    pool_prob = float(pmf @ explored_count) / p if p else 0.0
    probs = np.concatenate([cdf, np.full(p, pool_prob)])
    return greedy, pool, probs


def _epsilon_slate(req: _Request, rng: np.random.Generator) -> Slate:
    exploit = req.exploit()[:, 0]
    greedy, pool, probs = _epsilon_plan(req, exploit)
    k = req.k
    explore_slots = np.flatnonzero(rng.random(k) < req.config.epsilon)[: pool.shape[0]]
    n_explore = explore_slots.shape[0]
    order = np.empty(k, dtype=np.int64)
    explored = np.zeros(k, dtype=bool)
    greedy_slots = np.setdiff1d(np.arange(k), explore_slots)
    order[greedy_slots] = greedy[: k - n_explore]
    picks = rng.choice(pool.shape[0], size=n_explore, replace=False)
    order[explore_slots] = pool[picks]
    explored[explore_slots] = True
    prop = np.empty(k)
    prop[greedy_slots] = probs[: k - n_explore]
    prop[explore_slots] = probs[k + picks]
    return Slate(
        order=order,
        scores=exploit[order].astype(np.float32),
        propensities=prop.astype(np.float32),
        explored=explored,
        policy=req.name,
        exploration="epsilon",
    )


def _thompson_slate(req: _Request, rng: np.random.Generator) -> tuple[Slate, Float64Array]:
    """The slate and every candidate's inclusion share over the same M + 1 draws."""
    draws = 1 + req.config.thompson_resamples
    sampled = req.thompson_matrix(draws, rng)
    order = _top_k(sampled[:, 0], req.retrieval, req.k)  # column 0 is the served draw
    inclusion = _topk_share(sampled, req.k)
    greedy = _top_k(req.exploit()[:, 0], req.retrieval, req.k)
    slate = Slate(
        order=order,
        scores=sampled[order, 0].astype(np.float32),
        propensities=inclusion[order].astype(np.float32),
        explored=~np.isin(order, greedy),
        policy=req.name,
        exploration="thompson",
    )
    return slate, inclusion


def _topk_share(sampled: Float64Array, k: int) -> Float64Array:
    """Per row, the share of columns whose top k contains it."""
    n, draws = sampled.shape
    if k >= n:
        return np.ones(n)
    tops = np.argpartition(-sampled, k - 1, axis=0)[:k]
    share: Float64Array = np.bincount(tops.ravel(), minlength=n) / draws
    return share


def choose_slate(
    features: FloatArray,
    *,
    retrieval_scores: FloatArray,
    k: int,
    config: PolicyConfig,
    bandit: LinearBanditState | None,
    ltr_scores: FloatArray | None,
    rng: np.random.Generator,
) -> Slate:
    """Pick k of the n candidates (rows of ``build_features``) with the configured policy.

    Falls back instead of failing when a model is missing: ``ltr`` without scores serves
    ``bandit``, ``bandit`` without a state serves ``semantic``; ``Slate.policy`` says which.
    """
    return _slate(_resolve(features, retrieval_scores, k, config, bandit, ltr_scores), rng)[0]


def slate_with_inclusion(
    features: FloatArray,
    *,
    retrieval_scores: FloatArray,
    k: int,
    config: PolicyConfig,
    bandit: LinearBanditState | None,
    ltr_scores: FloatArray | None,
    rng: np.random.Generator,
) -> tuple[Slate, FloatArray]:
    """``choose_slate`` and ``inclusion_probabilities`` at once, as a shadow variant needs
    them: one resolution, and for Thompson one set of draws (the slate's own draw and
    ``thompson_resamples`` more, whose shares are the slate's propensities), not two."""
    req = _resolve(features, retrieval_scores, k, config, bandit, ltr_scores)
    slate, inclusion = _slate(req, rng)
    return slate, (inclusion if inclusion is not None else _inclusion(req, rng)).astype(np.float32)


def _slate(req: _Request, rng: np.random.Generator) -> tuple[Slate, Float64Array | None]:
    """The slate, and every candidate's inclusion probability when choosing it gave them."""
    exploration = _exploration(req)
    if req.k == 0:
        empty = np.empty(0, dtype=np.float32)
        slate = Slate(
            order=np.empty(0, dtype=np.int64),
            scores=empty,
            propensities=empty,
            explored=np.empty(0, dtype=bool),
            policy=req.name,
            exploration=exploration,
        )
        return slate, np.zeros(req.n)
    if exploration == "epsilon":
        return _epsilon_slate(req, rng), None
    if exploration == "thompson":
        return _thompson_slate(req, rng)
    exploit = req.exploit()[:, 0]
    scores = exploit + req.ucb_bonus() if exploration == "ucb" else exploit
    order = _top_k(scores, req.retrieval, req.k)
    explored = (
        ~np.isin(order, _top_k(exploit, req.retrieval, req.k)) if exploration == "ucb" else np.zeros(req.k, dtype=bool)
    )
    slate = Slate(
        order=order,
        scores=scores[order].astype(np.float32),
        propensities=np.ones(req.k, dtype=np.float32),
        explored=explored,
        policy=req.name,
        exploration=exploration,
    )
    inclusion = np.zeros(req.n)
    inclusion[order] = 1.0  # deterministic: the slate is the only one it could show
    return slate, inclusion


def inclusion_probabilities(
    features: FloatArray,
    *,
    retrieval_scores: FloatArray,
    k: int,
    config: PolicyConfig,
    bandit: LinearBanditState | None,
    ltr_scores: FloatArray | None,
    rng: np.random.Generator,
) -> FloatArray:
    """Every candidate's probability of being in the slate ``choose_slate`` would pick.

    Exact for deterministic and epsilon policies; a Monte Carlo share of
    ``thompson_resamples`` draws for Thompson. This is the target-policy side of
    off-policy evaluation: the entries sum to k.
    """
    return _inclusion(_resolve(features, retrieval_scores, k, config, bandit, ltr_scores), rng).astype(np.float32)


def _inclusion(req: _Request, rng: np.random.Generator) -> Float64Array:
    out = np.zeros(req.n)
    if req.k == 0:
        return out
    exploration = _exploration(req)
    if exploration == "epsilon":
        greedy, pool, probs = _epsilon_plan(req, req.exploit()[:, 0])
        out[np.concatenate([greedy, pool])] = probs
    elif exploration == "thompson":
        out = _topk_share(req.thompson_matrix(req.config.thompson_resamples, rng), req.k)
    else:
        exploit = req.exploit()[:, 0]
        scores = exploit + req.ucb_bonus() if exploration == "ucb" else exploit
        out[_top_k(scores, req.retrieval, req.k)] = 1.0
    return out
