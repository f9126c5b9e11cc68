"""Writes of the feedback log: recommendations shown, and uses reported on them.

PostgreSQL is the source of truth: an event is acknowledged only once committed, and a
retried event (same event id, or the same use reported again, explicitly or implicitly)
counts once, guarded by unique indexes rather than by reads that could race.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone

from access.models import ApiKey, Scope
from access.policy import scope_require
from catalog.models import Tool
from feedback.models import Impression, Recommendation, ShadowPending, UsageEvent
from toolrec_site import metrics
from toolrec_site.errors import NotFound, ToolrecError
from toolrec_site.scheduling import learning_schedule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShownTool:
    tool_id: int
    rank: int
    score: float
    propensity: float = 1.0
    features: tuple[float, ...] = ()
    explored: bool = False


@dataclass(frozen=True)
class RequestFacts:
    """What the dashboard needs of one request beyond the slate (see the model's fields)."""

    embed_cache_hits: int = 0
    embed_cache_lookups: int = 0
    personalized: bool = False
    best_similarity: float | None = None


@dataclass(frozen=True)
class FeedbackItem:
    tool: str  # the tool's name, function name or "namespace/name" key
    used: bool
    reward: float | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class FeedbackOutcome:
    recorded: int
    duplicates: int


def recommendation_record(
    *,
    api_key: ApiKey,
    user_id: str,
    conversation_id: str,
    experiment_key: str,
    variant: str,
    policy: str,
    snapshot_version: int,
    k: int,
    query_text: str,
    called_tools: Sequence[str],
    latency_ms: float,
    shown: Sequence[ShownTool],
    called_tool_ids: Sequence[int] = (),
    call_count: int = 0,
    query_vector: bytes | None = None,
    candidate_log: bytes | None = None,
    facts: RequestFacts = RequestFacts(),
    shadow_pending: bool = False,
) -> Recommendation:
    """Log a served recommendation and its impressions (the learner counts them later;
    shadow variants, when `shadow_pending`, rank it later from its candidate log)."""
    recommendation = Recommendation(  # its id is made here, before the INSERT (uuid4)
        api_key=api_key,
        user_id=user_id,
        conversation_id=conversation_id,
        experiment_key=experiment_key,
        variant=variant,
        policy=policy,
        snapshot_version=snapshot_version,
        k=k,
        query_text=query_text[:2000],
        called_tools=list(called_tools)[:100],
        called_tool_ids=list(called_tool_ids)[:100],
        call_count=call_count,
        query_vector=query_vector,
        candidate_log=candidate_log,
        latency_ms=latency_ms,
        embed_cache_hits=min(facts.embed_cache_hits, 32767),
        embed_cache_lookups=min(facts.embed_cache_lookups, 32767),
        personalized=facts.personalized,
        best_similarity=facts.best_similarity,
    )
    with transaction.atomic():
        _log_begin(recommendation.pk, experiment_key if shadow_pending else None)
        recommendation.save(force_insert=True)
        Impression.objects.bulk_create(
            [
                Impression(
                    recommendation=recommendation,
                    tool_id=s.tool_id,
                    rank=s.rank,
                    score=s.score,
                    propensity=s.propensity,
                    features=list(s.features),
                    explored=s.explored,
                )
                for s in shown
            ]
        )
    return recommendation


def _log_begin(recommendation_id: uuid.UUID, shadow_experiment: str | None) -> None:
    """The log's first statement: `skip_wal_flush`, and for a shadowed recommendation its
    ShadowPending row, in one round trip on PostgreSQL (Django's psycopg cursors bind
    parameters client-side, which allows several statements in one call). Django's foreign
    keys are checked at commit, on PostgreSQL and SQLite alike, so the queue row may come
    before its recommendation. As a statement of its own the queue row cost 0.17-0.28 ms of
    wall time per shadowed request (bench/shadow_write_cost.py), most of a shadow's cost on
    the request besides its log."""
    if shadow_experiment is None:
        skip_wal_flush()
        return
    insert, params = _shadow_queue_insert(recommendation_id, shadow_experiment)
    with connection.cursor() as cursor:
        cursor.execute(f"{_NO_WAL_FLUSH}; {insert}" if connection.vendor == "postgresql" else insert, params)


def _shadow_queue_insert(recommendation_id: uuid.UUID, experiment_key: str) -> tuple[str, list[Any]]:
    """The ShadowPending row's INSERT. Plain SQL, not the ORM's create(): on every shadowed
    request, create() cost about 0.3 ms of Python (model instance, save machinery) for a
    two-column row (measured on recommendation_record in a loop, with and without it)."""
    table = connection.ops.quote_name(ShadowPending._meta.db_table)
    pk = Recommendation._meta.pk.get_db_prep_value(recommendation_id, connection)
    return f"INSERT INTO {table} (recommendation_id, experiment_key) VALUES (%s, %s)", [pk, experiment_key]


_NO_WAL_FLUSH = "SET LOCAL synchronous_commit TO OFF"


def skip_wal_flush() -> None:
    """This transaction's commit does not wait for the WAL to reach the disk (PostgreSQL).

    For writes that nobody was told are stored (the impression log, implicit uses read from
    a request): a crash may lose their last few milliseconds, and the request path waits
    for no disk sync. Explicit feedback, which is acknowledged as
    stored, keeps synchronous commits.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_NO_WAL_FLUSH)


_EVENT_COLUMNS = ("event_id", "recommendation_id", "tool_id", "used", "reward", "source", "created_at")


def _insert_new(events: list[UsageEvent]) -> list[UsageEvent]:
    """Insert the events in one statement and return those stored: a repeated event id, or
    a use of a shown tool already recorded, is skipped by the unique indexes.

    Raw SQL because the ORM cannot say which rows ``ON CONFLICT DO NOTHING`` kept
    (``bulk_create(ignore_conflicts=True)`` returns every row); a savepoint per row, the ORM
    way, costs three round trips per event. PostgreSQL and SQLite >= 3.35 alike."""
    now = timezone.now()
    for event in events:
        event.created_at = now
    fields = [cast("Field[Any, Any]", UsageEvent._meta.get_field(name)) for name in _EVENT_COLUMNS]
    params = [field.get_db_prep_save(getattr(e, field.attname), connection) for e in events for field in fields]
    row = f"({', '.join(['%s'] * len(fields))})"
    sql = (
        f"INSERT INTO {connection.ops.quote_name(UsageEvent._meta.db_table)} ({', '.join(_EVENT_COLUMNS)}) "
        f"VALUES {', '.join([row] * len(events))} ON CONFLICT DO NOTHING RETURNING event_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        stored = {r[0] for r in cursor.fetchall()}
    kept, seen = [], set()
    for event in events:  # the same event id twice in one call is stored once
        if event.event_id in stored and event.event_id not in seen:
            kept.append(event)
            seen.add(event.event_id)
    return kept


def _record_events(events: list[UsageEvent], *, durable: bool = True) -> FeedbackOutcome:
    with transaction.atomic():
        if not durable:
            skip_wal_flush()
        inserted = _insert_new(events)
    for event in inserted:
        metrics.TOOL_USES.labels(tool=metrics.tool_label(event.tool_id), used="true" if event.used else "false").inc()
    if inserted:
        transaction.on_commit(learning_schedule)
    metrics.FEEDBACK_EVENTS.labels(outcome="recorded").inc(len(inserted))
    metrics.FEEDBACK_EVENTS.labels(outcome="duplicate").inc(len(events) - len(inserted))
    return FeedbackOutcome(recorded=len(inserted), duplicates=len(events) - len(inserted))


def _shown_tools(recommendation: Recommendation) -> tuple[dict[str, int | None], list[str]]:
    """Names by which the agent may report each shown tool -> tool id (None: ambiguous),
    and the shown tools' function names.

    The function name (unique in the catalog) and the "namespace/name" key always pick one
    tool; a plain name does when only one shown tool has it. Names are compared as the API
    returned them: a leading space or a "/" in the namespace is part of the name."""
    # Two primary/foreign-key lookups rather than a join: with stale table statistics (no
    # autovacuum) PostgreSQL planned the join as a scan of the whole catalog.
    tool_ids = list(recommendation.impressions.values_list("tool_id", flat=True))
    tools = list(Tool.objects.filter(pk__in=tool_ids).only("pk", "namespace", "name", "function_name"))
    names: dict[str, int | None] = {}
    for tool in tools:
        names[tool.name] = None if tool.name in names else tool.pk
    for tool in tools:  # exact names win over a shared plain name
        names[tool.function_name] = names[tool.key] = tool.pk
    return names, sorted(tool.function_name for tool in tools)


def _check_reported(
    items: Sequence[FeedbackItem], shown: dict[str, int | None], recommended: list[str], recommendation_id: uuid.UUID
) -> None:
    unknown = [item.tool for item in items if item.tool not in shown]
    if unknown:
        raise ToolrecError(
            f"Tool {unknown[0]!r} was not among the tools of recommendation {recommendation_id}.",
            details={"unknown_tools": unknown, "recommended": recommended},
        )
    ambiguous = [item.tool for item in items if shown[item.tool] is None]
    if ambiguous:
        raise ToolrecError(
            f"More than one tool of recommendation {recommendation_id} is named {ambiguous[0]!r}: "
            "report it by its function name.",
            details={"ambiguous_tools": ambiguous, "recommended": recommended},
        )


def feedback_record(*, api_key: ApiKey, recommendation_id: uuid.UUID, items: Sequence[FeedbackItem]) -> FeedbackOutcome:
    """Record explicit feedback. Durable before it returns; retries count once."""
    scope_require(api_key, Scope.FEEDBACK)
    # only the id: the row also holds the candidate log and the query vector (several kB)
    recommendation = Recommendation.objects.filter(pk=recommendation_id, api_key=api_key).only("pk").first()
    if recommendation is None:
        raise NotFound(f"Unknown recommendation {recommendation_id}.")
    shown, recommended = _shown_tools(recommendation)
    _check_reported(items, shown, recommended, recommendation_id)
    for item in items:
        if item.reward is not None and not math.isfinite(item.reward):
            raise ToolrecError("reward must be a finite number.")
    events = [
        UsageEvent(
            event_id=item.event_id or f"explicit:{recommendation.pk}:{shown[item.tool]}:{int(item.used)}",
            recommendation=recommendation,
            tool_id=cast(int, shown[item.tool]),
            used=item.used,
            reward=item.reward if item.reward is not None else float(item.used),
            source=UsageEvent.Source.EXPLICIT,
        )
        for item in items
    ]
    return _record_events(events)


def implicit_feedback_record(*, api_key: ApiKey, conversation_id: str, calls: Sequence[int | None]) -> FeedbackOutcome:
    """The tool calls made since the conversation's last recommendation count as its uses.

    `calls` are the catalog ids of every tool call in the conversation, in order (None for a
    name that is no tool). The last recommendation saw the first `call_count` of them, so
    only the ones past it were made after its answer; a retried turn finds its own first
    attempt as the last recommendation, with the same calls, and counts nothing again."""
    previous = (
        Recommendation.objects.filter(api_key=api_key, conversation_id=conversation_id)
        .order_by("-created_at")
        .only("pk", "call_count")
        .first()
    )
    new_ids = {c for c in calls[previous.call_count :] if c is not None} if previous else set()
    if previous is None or not new_ids:
        return FeedbackOutcome(0, 0)
    shown_ids = set(
        Impression.objects.filter(recommendation=previous, tool_id__in=list(new_ids)).values_list("tool_id", flat=True)
    )
    events = [
        UsageEvent(
            event_id=f"implicit:{previous.pk}:{tool_id}",
            recommendation=previous,
            tool_id=tool_id,
            used=True,
            reward=1.0,
            source=UsageEvent.Source.IMPLICIT,
        )
        for tool_id in sorted(shown_ids)
    ]
    # Nothing acknowledges these to the agent, so they are written like the impression log.
    return _record_events(events, durable=False) if events else FeedbackOutcome(0, 0)
