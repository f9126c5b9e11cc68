"""The recommendation path, and the scheduling of index rebuilds.

This is the one place that turns ORM rows and request data into engine inputs and engine
outputs back into rows. Nothing here waits on Celery; a missing Redis only costs cache hits.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache

from access.models import ApiKey
from experiments.selectors import assignment_for
from feedback.services import ShownTool, implicit_feedback_record, recommendation_record
from recommender import metrics
from recommender.embeddings import embed_cached
from recommender.engine.conversation import previous_user_texts, read_conversation
from recommender.engine.features import FEATURE_INDEX
from recommender.engine.memory import ContextMemory
from recommender.engine.policy import PolicyConfig
from recommender.engine.retrieval import query_roles
from recommender.engine.types import Candidates, ConversationContext, FloatArray, IntArray, ToolFilter
from recommender.learned_state import LearnedState, learned
from recommender.ranking import candidate_log, policy_config, rank
from recommender.signals import request_signals_start
from recommender.snapshots import LoadedSnapshot, snapshots
from toolrec_site.background import run_task
from toolrec_site.errors import ToolrecError, Unavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecommendedTool:
    tool_id: int
    name: str
    rank: int
    score: float
    function: dict[str, Any]
    reason: str | None


@dataclass(frozen=True)
class RecommendationResult:
    recommendation_id: uuid.UUID | None  # None for a dry run (nothing logged)
    experiment: str
    variant: str
    policy: str
    snapshot_version: int
    tools: list[RecommendedTool]
    latency_ms: float
    timings_ms: dict[str, float]  # where the time went: embed, engine, store (see Server-Timing)


def _reason(candidates: Candidates, i: int, features: FloatArray, explored: bool) -> str:
    parts = [f"semantic similarity {float(candidates.dense[i]):.2f}"]
    if float(candidates.sparse[i]) > 0:
        parts.append(f"keyword score {float(candidates.sparse[i]):.1f}")
    if float(features[FEATURE_INDEX["votes_log"]]) > 0:
        parts.append("used after similar requests")
    if float(features[FEATURE_INDEX["co_use"]]) > 0:
        parts.append("often used with the tools already called")
    if explored:
        parts.append("shown to explore")
    return ", ".join(parts)


def _called_ids(called: tuple[str, ...], snapshot: LoadedSnapshot) -> list[int]:
    rows = [snapshot.row_by_name[name] for name in dict.fromkeys(called) if name in snapshot.row_by_name]
    return [int(snapshot.tool_ids[r]) for r in rows]


def embed_queries(
    context: ConversationContext, messages: list[dict[str, Any]], model_name: str | None = None
) -> FloatArray:
    """Vectors for `context.queries()`, in order.

    The condensed context is not embedded as one long text: MiniLM's cost grows with the
    square of the length (a 600-character context took 62 ms against 12 ms for a short
    question here). It is the normalised mean of the vectors of the recent user turns and
    the last message; each earlier turn was the last message of an earlier request of the
    conversation, so its vector usually comes from the cache.
    """
    texts, roles = context.queries(), query_roles(context)
    direct = [t for t, role in zip(texts, roles) if role != "context"]
    history = previous_user_texts(messages) if "context" in roles else []
    vectors = embed_cached(direct + history, model_name=model_name)
    rows, direct_row = [], 0
    for role in roles:
        if role == "context":
            mean = np.vstack([vectors[len(direct) :], vectors[:1]]).mean(axis=0)
            rows.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        else:
            rows.append(vectors[direct_row])
            direct_row += 1
    return np.vstack(rows).astype(np.float32)


def retrieve(
    snapshot: LoadedSnapshot,
    context: ConversationContext,
    vectors: FloatArray,
    *,
    k: int,
    tool_filter: ToolFilter | None = None,
    learned_tool_ids: IntArray | None = None,
) -> Candidates:
    """Candidates for a read conversation whose query texts are embedded: the engine step
    shared by the API and by `evaluate_retrieval`, so the benchmark measures what is served.

    `learned_tool_ids` (tools similar past requests used) join the candidates even when
    retrieval ranks them below the cut; the filter still applies to them."""
    allowed = snapshot.index.mask(tool_filter) if tool_filter is not None else None
    keep = snapshot.rows_of(learned_tool_ids) if learned_tool_ids is not None else None
    return snapshot.index.search(
        context, vectors, n_candidates=max(settings.RECOMMEND_CANDIDATES, k), allowed=allowed, keep_rows=keep
    )


def _serving_memory(state: LearnedState | None, query_vector: FloatArray, model: str) -> ContextMemory | None:
    """The memory of past requests if it can answer this one (it holds contexts of the
    query's embedding model), else None: one check for learned recall and for the votes."""
    if state is None or not state.memory.serves(query_vector, model):
        return None
    return state.memory


def _learned_candidates(
    memory: ContextMemory | None, config: PolicyConfig, query_vector: FloatArray
) -> IntArray | None:
    """Tools whose past contexts resemble this request, for the policies that learn (the
    semantic policy stays retrieval alone: it is the baseline the others are measured on)."""
    if memory is None or config.name == "semantic" or settings.MEMORY_CANDIDATES == 0:
        return None
    return memory.similar_tools(query_vector, settings.MEMORY_CANDIDATES)


def recommendation_create(
    *,
    api_key: ApiKey,
    messages: list[dict[str, Any]],
    user_id: str = "",
    conversation_id: str = "",
    k: int | None = None,
    tool_filter: ToolFilter | None = None,
    explain: bool = False,
    policy: dict[str, Any] | None = None,
    record: bool = True,
    rng: np.random.Generator | None = None,
) -> RecommendationResult:
    """Recommend k tools for the conversation and log the impression.

    `policy` overrides the assigned variant's policy and `record=False` logs nothing (both for
    offline replays such as `simulate`); `rng` makes exploration reproducible.
    """
    started = time.perf_counter()
    k = k or settings.RECOMMEND_DEFAULT_K
    snapshot = snapshots.get()
    if snapshot is None:
        raise Unavailable("No index has been built yet: import tools, then run `manage.py rebuild_index`.")
    context = read_conversation(messages)
    queries = context.queries()
    if not queries:
        raise ToolrecError("The messages hold no text to recommend tools for.")
    called_ids = _called_ids(context.called_tools, snapshot)
    if record and conversation_id and called_ids and settings.IMPLICIT_FEEDBACK:
        implicit_feedback_record(api_key=api_key, conversation_id=conversation_id, called_tool_ids=called_ids)
    assignment = assignment_for(user_id=user_id, conversation_id=conversation_id)
    config = policy_config(policy if policy is not None else assignment.policy or settings.RECOMMEND_POLICY)
    signals = request_signals_start(user_id=user_id, called_ids=called_ids)  # read while embedding
    prepared = time.perf_counter()
    vectors = embed_queries(context, messages, snapshot.embedding_model)
    embedded = time.perf_counter()
    state = learned.get()
    memory = _serving_memory(state, vectors[0], snapshot.embedding_model)
    candidates = retrieve(
        snapshot,
        context,
        vectors,
        k=k,
        tool_filter=tool_filter,
        learned_tool_ids=_learned_candidates(memory, config, vectors[0]),
    )
    retrieved = time.perf_counter()
    tool_ids = snapshot.tool_ids[candidates.rows]
    ranked = rank(
        candidates=candidates,
        tool_ids=tool_ids,
        context=context,
        query_vector=vectors[0],
        memory=memory,
        called_ids=called_ids,
        user_id=user_id,
        k=k,
        config=config,
        learned=state,
        rng=rng or np.random.default_rng(),
        signals=signals,
    )
    slate = ranked.slate
    shown = [
        ShownTool(
            tool_id=int(tool_ids[i]),
            rank=position + 1,
            score=float(slate.scores[position]),
            propensity=float(slate.propensities[position]),
            features=tuple(float(x) for x in ranked.features[i]),
        )
        for position, i in enumerate(slate.order)
    ]
    ranked_at = time.perf_counter()
    recommendation_id = None
    if record:
        recommendation_id = recommendation_record(
            api_key=api_key,
            user_id=user_id,
            conversation_id=conversation_id,
            experiment_key=assignment.experiment_key,
            variant=assignment.variant,
            policy=slate.policy,
            snapshot_version=snapshot.version,
            k=k,
            query_text=context.last_user_message,
            called_tools=context.called_tools,
            called_tool_ids=called_ids,
            query_vector=vectors[0].astype(np.float32).tobytes(),
            candidate_log=candidate_log(ranked, candidates.fused, settings.LOG_CANDIDATES),
            latency_ms=(ranked_at - started) * 1000,
            shown=shown,
        ).pk
    tools = [
        RecommendedTool(
            tool_id=s.tool_id,
            name=snapshot.keys[candidates.rows[i]].split("/", 1)[1],
            rank=s.rank,
            score=s.score,
            function=snapshot.definitions[candidates.rows[i]],
            reason=_reason(candidates, i, ranked.features[i], bool(slate.explored[p])) if explain else None,
        )
        for p, (i, s) in enumerate(zip(slate.order, shown))
    ]
    finished = time.perf_counter()
    metrics.RECOMMENDATION_LATENCY.labels(variant=assignment.variant).observe(finished - started)
    metrics.RECOMMENDATIONS.labels(variant=assignment.variant).inc()
    return RecommendationResult(
        recommendation_id=recommendation_id,
        experiment=assignment.experiment_key,
        variant=assignment.variant,
        policy=slate.policy,
        snapshot_version=snapshot.version,
        tools=tools,
        latency_ms=(finished - started) * 1000,
        timings_ms={
            "prepare": (prepared - started) * 1000,
            "embed": (embedded - prepared) * 1000,
            "engine": (ranked_at - embedded) * 1000,
            "store": (finished - ranked_at) * 1000,
            # the parts of "engine": candidates, learning signals read, features and policy
            "retrieve": (retrieved - embedded) * 1000,
            "signals": ranked.signals_ms,
            "rank": (ranked_at - retrieved) * 1000 - ranked.signals_ms,
        },
    )


REBUILD_PENDING_KEY = "toolrec:rebuild-pending"


def index_rebuild_schedule(countdown: int | None = None) -> None:
    """Ask for one index rebuild soon; changes within the debounce window join it.

    Called on commit of catalog changes. Never raises: a broker that is down means the
    periodic rebuild picks the change up later.
    """
    from recommender.tasks import rebuild_index

    delay = settings.REBUILD_DEBOUNCE_SECONDS if countdown is None else countdown
    try:
        if delay and not cache.add(REBUILD_PENDING_KEY, 1, timeout=delay + 60):
            return  # a rebuild is already scheduled and will see this change
    except Exception:
        log.warning("cache unavailable; scheduling a rebuild without debounce", exc_info=True)
    try:
        run_task(rebuild_index, countdown=delay)
    except Exception:
        log.exception("could not schedule an index rebuild; the periodic rebuild will catch up")
