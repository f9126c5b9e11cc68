"""The request path: one recommendation, in the steps of DESIGN.md.

`recommendation_create` reads top to bottom: read the conversation, choose the policy,
find the candidates, rank them, log the impression, answer. Each step is a function that
returns a small typed value. Nothing here waits on Celery; a missing Redis only costs
cache hits.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings

from access.models import ApiKey, Scope
from access.policy import scope_require
from experiments.selectors import Assignment, assignment_for, default_policy
from feedback.services import RequestFacts, ShownTool, implicit_feedback_record, recommendation_record
from recommender.engine.candidate_log import candidate_log
from recommender.engine.conversation import read_conversation
from recommender.engine.match import Match
from recommender.engine.memory import ContextMemory
from recommender.engine.policy import PolicyConfig
from recommender.engine.types import Candidates, ConversationContext, FloatArray, IntArray, ToolFilter
from recommender.indexing.snapshots import LoadedSnapshot
from recommender.learning.state import LearnedState
from recommender.serving.candidates import (
    EmbeddedQueries,
    embed_queries_counted,
    learned_candidates,
    retrieve,
    serving_memory,
)
from recommender.serving.holders import isolated, learned, snapshots
from recommender.serving.ranking import Ranked, pin, policy_config, rank
from recommender.serving.request_signals import RequestSignals, request_signals_start
from recommender.serving.slate_answer import FittedSlate, RecommendedTool, answer_tools, slate_fit
from recommender.serving.tool_formats import OutputShape
from recommender.serving.visibility import Visibility, visibility_for
from toolrec_site import metrics
from toolrec_site.errors import ToolrecError, Unavailable
from toolrec_site.scheduling import shadows_rank_schedule

log = logging.getLogger(__name__)


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
    output: OutputShape = field(default_factory=OutputShape)
    tool_tokens: int = 0  # what the tools' definitions cost in `output.format` (o200k_base)
    match: Match = field(default_factory=lambda: Match("none", 0.0, "retrieval"))


@dataclass
class _Clock:
    """Named points of one request, for the Server-Timing header and the latency metric."""

    started: float = field(default_factory=time.perf_counter)
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str) -> float:
        self.marks[name] = now = time.perf_counter()
        return now

    def ms(self, start: str, end: str) -> float:
        return (self.marks[end] - (self.started if start == "start" else self.marks[start])) * 1000


@dataclass(frozen=True)
class Asker:
    """Who asks: the key, the user and conversation it names, how many tools it wants and in
    which shape."""

    api_key: ApiKey
    user_id: str
    conversation_id: str
    k: int
    output: OutputShape


@dataclass(frozen=True)
class ReadConversation:
    context: ConversationContext
    called_ids: list[int]  # catalog ids of the tools already called
    calls: list[int | None]  # catalog id of each call, in order (None: no tool has the name)


@dataclass(frozen=True)
class ChosenPolicy:
    assignment: Assignment
    config: PolicyConfig


@dataclass(frozen=True)
class Retrieved:
    vectors: FloatArray  # one row per query text; row 0 is the last user message
    candidates: Candidates
    tool_ids: IntArray  # catalog ids of the candidates


def recommendation_create(
    *,
    api_key: ApiKey,
    messages: list[dict[str, Any]],
    user_id: str = "",
    conversation_id: str = "",
    k: int | None = None,
    tool_filter: ToolFilter | None = None,
    explain: bool = False,
    output: OutputShape | None = None,
    policy: dict[str, Any] | None = None,
    record: bool = True,
    rng: np.random.Generator | None = None,
) -> RecommendationResult:
    """Recommend k tools for the conversation, in `output`'s format and token budget, and log
    the impression. `policy` overrides the variant's policy and `record=False` logs nothing
    (offline replays such as `simulate`); `rng` makes exploration reproducible."""
    scope_require(api_key, Scope.RECOMMEND)
    clock = _Clock()
    asker = Asker(api_key, user_id, conversation_id, k or settings.RECOMMEND_DEFAULT_K, output or OutputShape())
    snapshot = snapshots.get()
    if snapshot is None:
        raise Unavailable("No index has been built yet: import tools, then run `manage.py rebuild_index`.")
    visibility = visibility_for(snapshot, api_key)  # the key's tenant and tool policy, before anything else
    read = conversation_read(messages, snapshot, visibility)
    if record and conversation_id and read.called_ids and settings.IMPLICIT_FEEDBACK:
        implicit_feedback_record(api_key=api_key, conversation_id=conversation_id, calls=read.calls)
    chosen = policy_choose(user_id=user_id, conversation_id=conversation_id, override=policy)
    signals = request_signals_start(user_id=user_id, called_ids=read.called_ids)  # read while embedding
    clock.mark("prepared")
    embedded = queries_embed(read, messages, snapshot)
    vectors = embedded.vectors
    if embedded.failed:  # keyword retrieval: the learned policies' features would be meaningless
        chosen = ChosenPolicy(chosen.assignment, PolicyConfig())
    clock.mark("embedded")
    state = learned.get()
    if chosen.assignment.isolated:
        state = isolated.served(state, chosen.assignment.experiment_key, chosen.assignment.variant)
    memory = None if embedded.failed else serving_memory(state, vectors[0], snapshot.embedding_model)
    retrieved = candidates_find(
        snapshot, read, vectors, chosen, memory=memory, k=asker.k, tool_filter=tool_filter, visibility=visibility
    )
    clock.mark("retrieved")
    ranked = slate_rank(
        retrieved,
        read,
        chosen.config,
        memory=memory,
        user_id=user_id,
        k=asker.k,
        learned_state=state,
        rng=rng or np.random.default_rng(),
        signals=signals,
    )
    ranked = pin(ranked, retrieved.candidates, visibility.pinned_rows, asker.k)
    fitted = slate_fit(snapshot, retrieved.candidates, retrieved.tool_ids, ranked, asker.output, match_of=state)
    clock.mark("ranked")
    logged = Logged(snapshot, read, chosen, retrieved, ranked, fitted.shown, embedded)
    recommendation_id = impression_log(asker, logged, latency_ms=clock.ms("start", "ranked")) if record else None
    if recommendation_id is not None and chosen.assignment.shadows:
        shadows_rank_schedule()  # ranked from the impression's log by a worker (serving.shadow)
    tools = answer_tools(snapshot, retrieved.candidates, ranked, fitted.shown, fitted.positions, explain=explain)
    clock.mark("finished")
    return _result(recommendation_id, snapshot, chosen, ranked, tools, clock, asker.output, fitted)


def conversation_read(
    messages: list[dict[str, Any]], snapshot: LoadedSnapshot, visibility: Visibility | None = None
) -> ReadConversation:
    """The conversation read; its called tools resolved to the catalog tools the key sees
    (a name the key cannot see is no tool of its, as if unknown)."""
    context = read_conversation(messages)
    if not context.queries():
        raise ToolrecError("The messages hold no text to recommend tools for.")
    calls = [_visible_tool_id(snapshot, name, visibility) for name in context.called_tools]
    return ReadConversation(context, [c for c in dict.fromkeys(calls) if c is not None], calls)


def _visible_tool_id(snapshot: LoadedSnapshot, name: str, visibility: Visibility | None) -> int | None:
    """The catalog id of the tool a called name means, among the tools the key sees: its
    function name exactly, else a tool's own name when the key sees only one tool of that
    name (a guess between two would credit the wrong one)."""
    for row in snapshot.rows_by_function_name.get(name, ()):  # unique among the rows the key sees
        if visibility is None or visibility.allows(row):
            return int(snapshot.tool_ids[row])
    rows = [r for r in snapshot.rows_by_tool_name.get(name, ()) if visibility is None or visibility.allows(r)]
    return int(snapshot.tool_ids[rows[0]]) if len(rows) == 1 else None


def queries_embed(read: ReadConversation, messages: list[dict[str, Any]], snapshot: LoadedSnapshot) -> EmbeddedQueries:
    """The query vectors (with the cache's hits), or, when the embedder fails (a hosted model
    down or timing out), zero vectors marked failed, with which retrieval ranks by keywords
    (BM25) alone."""
    try:
        return embed_queries_counted(read.context, messages, snapshot.embedding_model)
    except Exception:
        log.warning("embedding failed; answering from keyword retrieval", exc_info=True)
        metrics.FALLBACKS.labels(reason="embedding").inc()
        zeros = np.zeros((len(read.context.queries()), snapshot.index.dim), dtype=np.float32)
        return EmbeddedQueries(zeros, cache_hits=0, cache_lookups=0, failed=True)


def slate_rank(
    retrieved: Retrieved,
    read: ReadConversation,
    config: PolicyConfig,
    *,
    memory: ContextMemory | None,
    user_id: str,
    k: int,
    learned_state: LearnedState | None,
    rng: np.random.Generator,
    signals: Future[RequestSignals] | None,
) -> Ranked:
    """The policy's slate; if ranking fails, the semantic policy's on retrieval alone."""
    common = {
        "candidates": retrieved.candidates,
        "tool_ids": retrieved.tool_ids,
        "context": read.context,
        "query_vector": retrieved.vectors[0],
        "called_ids": read.called_ids,
        "user_id": user_id,
        "k": k,
        "rng": rng,
    }
    try:
        return rank(**common, memory=memory, config=config, learned=learned_state, signals=signals)
    except Exception:
        log.exception("ranking failed; serving the semantic policy")
        metrics.FALLBACKS.labels(reason="ranking").inc()
        empty = RequestSignals(user={}, co_use={})
        return rank(**common, memory=None, config=PolicyConfig(), learned=None, signals=empty)


def policy_choose(*, user_id: str, conversation_id: str, override: dict[str, Any] | None) -> ChosenPolicy:
    """The experiment's variant for this unit (or the default), and the policy it serves."""
    assignment = assignment_for(user_id=user_id, conversation_id=conversation_id)
    raw = override if override is not None else assignment.policy or default_policy()
    return ChosenPolicy(assignment, policy_config(raw))


def candidates_find(
    snapshot: LoadedSnapshot,
    read: ReadConversation,
    vectors: FloatArray,
    chosen: ChosenPolicy,
    *,
    memory: ContextMemory | None,
    k: int,
    tool_filter: ToolFilter | None,
    visibility: Visibility | None = None,
) -> Retrieved:
    candidates = retrieve(
        snapshot,
        read.context,
        vectors,
        k=k,
        tool_filter=tool_filter,
        learned_tool_ids=learned_candidates(memory, chosen.config, vectors[0]),
        visible=visibility.mask if visibility is not None else None,
        pinned_rows=visibility.pinned_rows if visibility is not None else None,
    )
    return Retrieved(vectors, candidates, snapshot.tool_ids[candidates.rows])


@dataclass(frozen=True)
class Logged:
    """What the impression log keeps of one answer."""

    snapshot: LoadedSnapshot
    read: ReadConversation
    chosen: ChosenPolicy
    retrieved: Retrieved
    ranked: Ranked
    shown: list[ShownTool]
    embedded: EmbeddedQueries

    def facts(self) -> RequestFacts:
        dense = self.retrieved.candidates.dense
        return RequestFacts(
            embed_cache_hits=self.embedded.cache_hits,
            embed_cache_lookups=self.embedded.cache_lookups,
            personalized=self.ranked.personalized,
            best_similarity=float(dense.max()) if len(dense) else None,
        )


def impression_log(asker: Asker, logged: Logged, *, latency_ms: float) -> uuid.UUID:
    """Log the recommendation and what it showed, with features and propensities; every
    candidate when shadow variants will rank it from this log."""
    ranked, retrieved, context = logged.ranked, logged.retrieved, logged.read.context
    shadowed = bool(logged.chosen.assignment.shadows)
    logged_candidates = len(ranked.tool_ids) if shadowed else settings.LOG_CANDIDATES
    return recommendation_record(
        api_key=asker.api_key,
        user_id=asker.user_id,
        conversation_id=asker.conversation_id,
        experiment_key=logged.chosen.assignment.experiment_key,
        variant=logged.chosen.assignment.variant,
        policy=ranked.slate.policy,
        snapshot_version=logged.snapshot.version,
        k=asker.k,
        query_text=context.last_user_message,
        called_tools=context.called_tools,
        called_tool_ids=logged.read.called_ids,
        call_count=len(context.called_tools),
        query_vector=retrieved.vectors[0].astype(np.float32).tobytes(),
        candidate_log=candidate_log(
            ranked.tool_ids, ranked.features, ranked.slate.order, retrieved.candidates.fused, logged_candidates
        ),
        latency_ms=latency_ms,
        shown=logged.shown,
        facts=logged.facts(),
        shadow_pending=shadowed,
    ).pk


def _result(
    recommendation_id: uuid.UUID | None,
    snapshot: LoadedSnapshot,
    chosen: ChosenPolicy,
    ranked: Ranked,
    tools: list[RecommendedTool],
    clock: _Clock,
    output: OutputShape,
    fitted: FittedSlate,
) -> RecommendationResult:
    variant = chosen.assignment.variant
    latency = clock.ms("start", "finished") / 1000
    metrics.RECOMMENDATION_LATENCY.labels(variant=variant).observe(latency)
    metrics.RECOMMENDATIONS.labels(variant=variant).inc()
    return RecommendationResult(
        recommendation_id=recommendation_id,
        experiment=chosen.assignment.experiment_key,
        variant=variant,
        policy=ranked.slate.policy,
        snapshot_version=snapshot.version,
        tools=tools,
        latency_ms=latency * 1000,
        output=output,
        tool_tokens=fitted.tokens,
        match=fitted.match,
        timings_ms={
            "prepare": clock.ms("start", "prepared"),
            "embed": clock.ms("prepared", "embedded"),
            "engine": clock.ms("embedded", "ranked"),
            "store": clock.ms("ranked", "finished"),
            # the parts of "engine": candidates, learning signals read, features and policy
            "retrieve": clock.ms("embedded", "retrieved"),
            "signals": ranked.signals_ms,
            "rank": clock.ms("retrieved", "ranked") - ranked.signals_ms,
        },
    )
