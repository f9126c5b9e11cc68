"""From retrieval candidates to a slate: gather the learning signals of the candidates
(the request's own ones come from `recommender.serving.request_signals`), build the feature matrix and let
the variant's policy choose (pure engine code does the maths; this module only turns rows
into arrays)."""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from recommender.engine.features import FeatureInputs, build_features
from recommender.engine.ltr import predict as ltr_predict
from recommender.engine.match import Match, match_score
from recommender.engine.memory import ContextMemory
from recommender.engine.policy import PolicyConfig, Slate, choose_slate, policy_from_json
from recommender.engine.types import Candidates, ConversationContext, FloatArray, IntArray
from recommender.learning.match_training import match_config
from recommender.learning.selectors import tool_counts_from_log
from recommender.learning.state import LearnedState
from recommender.serving.request_signals import RequestSignals, request_signals_finish
from toolrec_site import metrics

log = logging.getLogger(__name__)


def policy_config(raw: dict[str, Any] | None) -> PolicyConfig:
    """A variant's policy JSON as a PolicyConfig; a bad one falls back to semantic, loudly."""
    try:
        return policy_from_json(raw)
    except ValueError:
        log.error("invalid policy configuration %r; serving semantic", raw)
        return PolicyConfig()


@dataclass(frozen=True)
class Ranked:
    slate: Slate
    features: FloatArray  # (n candidates, d)
    tool_ids: IntArray  # (n,) catalog ids of the candidates
    signals_ms: float  # time spent reading the learning signals (database, memory)
    pinned: int = 0  # the slate's first `pinned` items are the key's pinned tools


def pin(ranked: Ranked, candidates: Candidates, pinned_rows: IntArray, k: int) -> Ranked:
    """The slate with the key's pinned tools first, counted in k: the policy's own choices
    fill what is left, in its order. A pinned tool is shown with certainty (propensity 1)
    and scored by retrieval (the policy did not choose it)."""
    position = {int(row): i for i, row in enumerate(candidates.rows)}
    first = [position[int(r)] for r in pinned_rows if int(r) in position][:k]
    if not first:
        return ranked
    slate, taken = ranked.slate, set(first)
    certain = np.ones(len(first), dtype=slate.propensities.dtype)
    rest = [p for p, i in enumerate(slate.order) if int(i) not in taken][: k - len(first)]
    head = np.asarray(first, dtype=slate.order.dtype)
    return dataclasses.replace(
        ranked,
        slate=dataclasses.replace(
            slate,
            order=np.concatenate([head, slate.order[rest]]),
            scores=np.concatenate([candidates.fused[head].astype(slate.scores.dtype), slate.scores[rest]]),
            propensities=np.concatenate([certain, slate.propensities[rest]]),
            explored=np.concatenate([np.zeros(len(first), dtype=np.bool_), slate.explored[rest]]),
        ),
        pinned=len(first),
    )


def _tool_signals(tool_ids: list[int], learned: LearnedState | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if learned is not None and learned.tool_stats is not None:
        return learned.tool_stats.lookup(np.asarray(tool_ids, dtype=np.int64), time.time())
    uses, shows, age = np.zeros(len(tool_ids)), np.zeros(len(tool_ids)), np.full(len(tool_ids), np.inf)
    position = {t: i for i, t in enumerate(tool_ids)}
    now = timezone.now()
    for tool_id, (used, shown, last_used) in tool_counts_from_log(tool_ids=tool_ids).items():
        i = position[tool_id]
        uses[i], shows[i] = used, shown
        if last_used is not None:
            age[i] = (now - last_used).total_seconds()
    return uses, shows, age


def _no_signals(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tool uses, shows, seconds since the last use and neighbour votes when nothing learned can be read."""
    return np.zeros(n), np.zeros(n), np.full(n, np.inf), np.zeros(n)


def rank(
    *,
    candidates: Candidates,
    tool_ids: IntArray,
    context: ConversationContext,
    query_vector: FloatArray,
    memory: ContextMemory | None,
    called_ids: list[int],
    user_id: str,
    k: int,
    config: PolicyConfig,
    learned: LearnedState | None,
    rng: np.random.Generator,
    signals: RequestSignals | Future[RequestSignals] | None = None,
) -> Ranked:
    """`memory`: the learned memory of past requests when it can answer this request
    (`ContextMemory.serves`), else None. `signals`: the request's user and co-use counts, or
    their background read (`request_signals_start`); None reads them here."""
    started = time.perf_counter()
    ids = [int(t) for t in tool_ids]
    try:
        uses, shows, age = _tool_signals(ids, learned)
        votes = memory.votes(query_vector, tool_ids) if memory is not None else np.zeros(len(ids))
        if not isinstance(signals, RequestSignals):
            signals = request_signals_finish(signals, user_id=user_id, called_ids=called_ids)
    except Exception:  # the database or the memory failed: rank on retrieval alone
        log.warning("learned signals unreadable; serving the semantic policy", exc_info=True)
        metrics.FALLBACKS.labels(reason="signals").inc()
        uses, shows, age, votes = _no_signals(len(ids))
        signals, config, learned = RequestSignals(user={}, co_use={}), PolicyConfig(), None
    called = set(called_ids)
    user_uses, user_shows = np.array([signals.user.get(t, (0, 0)) for t in ids], dtype=np.float64).reshape(-1, 2).T
    co_use = np.array([signals.co_use.get(t, 0) for t in ids], dtype=np.float64)
    signals_ms = (time.perf_counter() - started) * 1000
    features = build_features(
        FeatureInputs(
            dense=candidates.dense,
            sparse=candidates.sparse,
            fused=candidates.fused,
            fused_rank=np.arange(len(ids)),
            tool_uses=uses,
            tool_shows=shows,
            seconds_since_last_use=age,
            user_uses=user_uses,
            user_shows=user_shows,
            co_use=co_use,
            neighbor_votes=votes,
            is_new=shows < settings.NEW_TOOL_SHOWS,
            has_error=context.has_error,
            has_code=context.has_code,
            message_count=context.message_count,
            already_called=np.array([t in called for t in ids]) if called else None,
        )
    )
    bandit = learned.bandit if learned is not None else None
    ltr_scores = None
    if learned is not None and learned.ranker_text and config.name in ("ltr", "hybrid"):
        ltr_scores = ltr_predict(learned.ranker_text, features)
    slate = choose_slate(
        features, retrieval_scores=candidates.fused, k=k, config=config, bandit=bandit, ltr_scores=ltr_scores, rng=rng
    )
    return Ranked(slate=slate, features=features, tool_ids=tool_ids, signals_ms=signals_ms)


def match_signal(ranked: Ranked, positions: list[int], learned: LearnedState | None) -> Match:
    """How likely the answer's top tool is to be used (the calibrated no-match signal). The
    inputs are the feature rows of the answer's first two tools, as the impression logs them
    and the learner fits them."""
    config = match_config()
    if not positions:
        return Match("none", 0.0, "retrieval")
    order = ranked.slate.order
    top = ranked.features[order[positions[0]]]
    second = ranked.features[order[positions[1]]] if len(positions) > 1 else None
    return match_score(top, second, learned.match_model if learned is not None else None, config)
