"""The learner: folds the feedback log into what web processes serve.

A batch (a Celery task, or a thread of the web process in the embedded mode) runs these
steps in one transaction: claim the served recommendations old enough to be judged and the
uses reported late, fold their impressions into the shared linear bandit, remember the
contexts of the uses, add to the per-tool, per-user and co-use counts, mark the rows
learned, and publish a new `LearningState`. What web processes load of it is
`recommender.learning.state`. Everything here can be rebuilt from the log
(`learning_state_rebuild`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from catalog.models import Tool
from feedback.models import Recommendation, UsageEvent
from recommender.engine.bandit import LinearBanditState
from recommender.engine.features import N_FEATURES
from recommender.indexing.models import IndexSnapshot
from recommender.learning.counts import (
    ClaimedRecommendation,
    UsedPair,
    co_use_counts_add,
    counts_forget,
    tool_counts_add,
    user_counts_add,
)
from recommender.learning.fold import Claimed, EventRow, LateUse, bandit_fold, impression_features
from recommender.learning.isolated import isolated_forget, isolated_learn
from recommender.learning.match_training import match_model_refit
from recommender.learning.models import LearningState, MemoryEntry, ToolStats
from recommender.learning.state import ToolStatsTable, bandit_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LearnOutcome:
    version: int
    recommendations: int
    events: int
    seconds: float


# Learners queue here before reading the latest state. Locking the latest row is not enough:
# under READ COMMITTED a learner that waited for that row lock still reads the row it found
# before waiting, not the newer state the other learner published meanwhile, and would learn
# on top of a stale bandit (updates were lost this way with two learners). A lock taken
# *before* the read makes the read see the last commit. The thread lock does the same within
# one process (SQLite, the embedded mode, has no advisory locks).
_LEARNER_ADVISORY_LOCK = 0x746F6F6C  # "tool"
_learner_lock = threading.Lock()


def _latest_state() -> LearningState:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LEARNER_ADVISORY_LOCK])
    state = LearningState.objects.select_for_update().order_by("-pk").first()
    if state is None:
        LearningState.objects.create(bandit=LinearBanditState.initial(N_FEATURES).to_bytes())
        state = LearningState.objects.select_for_update().order_by("-pk").first()
    assert state is not None
    return state


def _claim(*, cutoff: datetime, size: int) -> Claimed:
    """Recommendations served before `cutoff` and late uses that nobody else holds."""
    recs = [
        ClaimedRecommendation(*row)
        # NO KEY: a use reported meanwhile (its foreign-key check takes FOR KEY SHARE) must not
        # wait for the batch; learners still skip each other's rows.
        for row in Recommendation.objects.select_for_update(skip_locked=True, no_key=True)
        .filter(learned_at__isnull=True, created_at__lte=cutoff)
        .order_by("created_at")
        .values_list(
            "pk",
            "user_id",
            "query_vector",
            "called_tool_ids",
            "snapshot_version",
            "created_at",
            "experiment_key",
            "variant",
        )[:size]
    ]
    late = [
        LateUse(*row)
        for row in UsageEvent.objects.select_for_update(skip_locked=True)
        .filter(learned_at__isnull=True, used=True, recommendation__learned_at__isnull=False)
        .order_by("pk")
        .values_list("pk", "recommendation_id", "tool_id", "reward", "created_at")[:size]
    ]
    events = [
        EventRow(*row)
        for row in UsageEvent.objects.filter(recommendation_id__in=[r.pk for r in recs]).values_list(
            "pk", "recommendation_id", "tool_id", "used", "reward", "created_at"
        )
    ]
    return Claimed(recs, events, late)


def learning_batch(
    *, batch_size: int | None = None, delay_seconds: float | None = None, now: datetime | None = None
) -> LearnOutcome | None:
    """Learn one batch; None when there was nothing to learn. Safe to run concurrently:
    learners queue on one lock (see `_latest_state`), and claim rows nobody else holds.
    `now` fixes the cutoff for a run of several batches."""
    started = time.perf_counter()
    delay = settings.LEARN_DELAY_SECONDS if delay_seconds is None else delay_seconds
    now = now or timezone.now()
    with _learner_lock, transaction.atomic():
        state = _latest_state()
        claimed = _claim(cutoff=now - timedelta(seconds=delay), size=batch_size or settings.LEARN_BATCH_SIZE)
        if not claimed.recs and not claimed.late:
            return None
        impressions = impression_features(r.pk for r in claimed.recs)
        bandit, used_pairs = bandit_fold(bandit_of(state), claimed, impressions)
        # The isolated variants learn their own part of the batch besides (the shared state
        # learns all of it): under the same lock, in the same transaction.
        isolated_learn(claimed, impressions)
        _remember(claimed.recs, used_pairs)
        _forget_oldest_memory()
        tool_counts_add(claimed.recs, claimed.uses)
        user_counts_add(claimed.recs, used_pairs, now)
        co_use_counts_add(claimed.recs, used_pairs)
        _mark_learned(claimed, now)
        published = _publish(state, bandit, claimed, seconds=time.perf_counter() - started)
    events = len(claimed.events) + len(claimed.late)
    return LearnOutcome(published.pk, len(claimed.recs), events, time.perf_counter() - started)


def _mark_learned(claimed: Claimed, now: datetime) -> None:
    Recommendation.objects.filter(pk__in=[r.pk for r in claimed.recs]).update(learned_at=now)
    UsageEvent.objects.filter(pk__in=[e.pk for e in claimed.events] + [e.pk for e in claimed.late]).update(
        learned_at=now
    )


def _publish(state: LearningState, bandit: LinearBanditState, claimed: Claimed, *, seconds: float) -> LearningState:
    learned = state.recommendations_learned + len(claimed.recs)
    published = LearningState.objects.create(
        bandit=bandit.to_bytes(),
        tool_stats=ToolStatsTable.current().to_bytes(),
        match_model=match_model_refit(state.match_model, recommendations_learned=learned),
        recommendations_learned=learned,
        events_learned=state.events_learned + len(claimed.events) + len(claimed.late),
        learn_seconds=seconds,
    )
    LearningState.objects.filter(pk__lt=published.pk - 20).delete()  # keep a short history
    return published


def _remember(recs: list[ClaimedRecommendation], used_pairs: set[UsedPair]) -> None:
    """Store the context of every use, named after the model that embedded it (the model of
    the snapshot that served the recommendation)."""
    contexts: dict[Any, tuple[bytes | memoryview, int]] = {
        r.pk: (r.query_vector, r.snapshot_version) for r in recs if r.query_vector is not None
    }
    missing = {rec_id for rec_id, _ in used_pairs} - set(contexts)
    if missing:  # late uses of recommendations learned in an earlier batch
        for pk, vector, snapshot in (
            Recommendation.objects.filter(pk__in=missing)
            .exclude(query_vector=None)
            .values_list("pk", "query_vector", "snapshot_version")
        ):
            if vector is not None:
                contexts[pk] = (vector, snapshot)
    models = dict(
        IndexSnapshot.objects.filter(pk__in={s for _, s in contexts.values()}).values_list("pk", "embedding_model")
    )
    MemoryEntry.objects.bulk_create(
        [
            MemoryEntry(
                tool_id=tool_id,
                vector=bytes(contexts[rec_id][0]),
                embedding_model=models.get(contexts[rec_id][1], ""),
            )
            for rec_id, tool_id in sorted(used_pairs, key=str)
            if rec_id in contexts
        ]
    )


def _forget_oldest_memory() -> None:
    """Keep the newest MEMORY_MAX_CONTEXTS memory rows: web processes never load more, and
    the table would otherwise grow with every use (it can be rebuilt from the log)."""
    keep = settings.MEMORY_MAX_CONTEXTS
    bounds = MemoryEntry.objects.aggregate(low=Min("pk"), high=Max("pk"))
    if bounds["low"] is None or bounds["high"] - bounds["low"] < keep:
        return  # two index reads; the offset scan below only when there may be too many
    oldest_kept = MemoryEntry.objects.order_by("-pk").values_list("pk", flat=True)[keep - 1 : keep].first()
    if oldest_kept is not None:
        MemoryEntry.objects.filter(pk__lt=oldest_kept).delete()


def tool_stats_ensure() -> None:
    """Create the (zero) count rows of enabled tools that have none, so that curators see
    every tool in the counts and the published table holds the whole catalog."""
    tool_ids = Tool.objects.filter(enabled=True, stats__isnull=True).values_list("pk", flat=True)
    ToolStats.objects.bulk_create([ToolStats(tool_id=t) for t in tool_ids], ignore_conflicts=True, batch_size=1000)


def learning_publish_stats() -> int:
    """Publish the current state again with fresh per-tool counts (after a catalog change,
    so new tools and their zero counts are served from memory); returns the version."""
    tool_stats_ensure()
    with transaction.atomic():
        state = _latest_state()
        published = LearningState.objects.create(
            bandit=bytes(state.bandit),
            tool_stats=ToolStatsTable.current().to_bytes(),
            match_model=state.match_model,
            recommendations_learned=state.recommendations_learned,
            events_learned=state.events_learned,
        )
    return published.pk


def learning_state_rebuild() -> LearnOutcome | None:
    """Forget every learned state and count, and learn the whole log again, oldest first."""
    with transaction.atomic():
        LearningState.objects.all().delete()
        MemoryEntry.objects.all().delete()
        counts_forget()
        isolated_forget()
        Recommendation.objects.update(learned_at=None)
        UsageEvent.objects.update(learned_at=None)
    last = None
    while (outcome := learning_batch(delay_seconds=0)) is not None:
        last = outcome
    return last
