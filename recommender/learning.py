"""Learning from the feedback log (what web processes serve of it: `learned_state.py`).

The learner (a Celery task, or the request in the embedded mode) claims a batch of served
recommendations old enough to be judged plus late uses, folds them into the shared linear
bandit, the per-user statistics, the co-use counts and the context memory, and publishes a
new `LearningState` row, all in one transaction. Everything here can be rebuilt from the log
(`learning_state_rebuild`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from feedback.models import CoUse, Impression, Recommendation, UsageEvent, UserToolStats
from recommender.engine.bandit import LinearBanditState, update_batched
from recommender.engine.features import N_FEATURES
from recommender.learned_state import ToolStatsTable, bandit_of
from recommender.models import IndexSnapshot, LearningState, MemoryEntry
from toolrec_site.background import run_task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LearnOutcome:
    version: int
    recommendations: int
    events: int
    seconds: float


def _impression_rows(rec_ids: Iterable[object]) -> dict[tuple[object, int], list[float]]:
    return {
        (rec_id, tool_id): features
        for rec_id, tool_id, features in Impression.objects.filter(recommendation_id__in=list(rec_ids)).values_list(
            "recommendation_id", "tool_id", "features"
        )
    }


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


def learning_batch(
    *, batch_size: int | None = None, delay_seconds: float | None = None, now: datetime | None = None
) -> LearnOutcome | None:
    """Learn one batch; None when there was nothing to learn. Safe to run concurrently:
    learners queue on one lock (see `_latest_state`), and claim rows nobody else holds.
    `now` fixes the cutoff for a run of several batches."""
    started = time.perf_counter()
    size = batch_size or settings.LEARN_BATCH_SIZE
    delay = settings.LEARN_DELAY_SECONDS if delay_seconds is None else delay_seconds
    now = now or timezone.now()
    with _learner_lock, transaction.atomic():
        state = _latest_state()
        recs = list(
            Recommendation.objects.select_for_update(skip_locked=True)
            .filter(learned_at__isnull=True, created_at__lte=now - timedelta(seconds=delay))
            .order_by("created_at")
            .values_list("pk", "user_id", "query_vector", "called_tool_ids", "snapshot_version")[:size]
        )
        late = list(
            UsageEvent.objects.select_for_update(skip_locked=True)
            .filter(learned_at__isnull=True, used=True, recommendation__learned_at__isnull=False)
            .order_by("pk")
            .values_list("pk", "recommendation_id", "tool_id", "reward")[:size]
        )
        if not recs and not late:
            return None
        rec_ids = [r[0] for r in recs]
        events = list(
            UsageEvent.objects.filter(recommendation_id__in=rec_ids).values_list(
                "pk", "recommendation_id", "tool_id", "used", "reward"
            )
        )
        bandit = bandit_of(state)
        bandit, used_pairs = _fold(bandit, recs, events, late)
        _remember(recs, used_pairs)
        _forget_oldest_memory()
        _count_users(recs, used_pairs)
        _count_co_use(recs, used_pairs)
        Recommendation.objects.filter(pk__in=rec_ids).update(learned_at=now)
        UsageEvent.objects.filter(pk__in=[e[0] for e in events] + [e[0] for e in late]).update(learned_at=now)
        published = LearningState.objects.create(
            bandit=bandit.to_bytes(),
            tool_stats=ToolStatsTable.current().to_bytes(),
            recommendations_learned=state.recommendations_learned + len(recs),
            events_learned=state.events_learned + len(events) + len(late),
            learn_seconds=time.perf_counter() - started,
        )
        LearningState.objects.filter(pk__lt=published.pk - 20).delete()  # keep a short history
    return LearnOutcome(published.pk, len(recs), len(events) + len(late), time.perf_counter() - started)


def _fold(
    bandit: LinearBanditState, recs: list[tuple], events: list[tuple], late: list[tuple]
) -> tuple[LinearBanditState, set[tuple[object, int]]]:
    """Fold impressions (used -> its reward, else 0) into the bandit; late uses correct the
    0 already learned for their impression exactly: A is unchanged, b gains x * reward."""
    rewards: dict[tuple[object, int], float] = {}
    for _, rec_id, tool_id, used, reward in events:
        if used:
            rewards[(rec_id, tool_id)] = max(rewards.get((rec_id, tool_id), 0.0), reward if reward is not None else 1.0)
    impressions = _impression_rows(r[0] for r in recs)
    rows = [(key, feats) for key, feats in impressions.items() if len(feats) == bandit.d]
    if rows:
        X = np.asarray([feats for _, feats in rows], dtype=np.float64)
        y = np.asarray([rewards.get(key, 0.0) for key, _ in rows], dtype=np.float64)
        bandit = update_batched(bandit, X, y)
    late_features = _impression_rows({e[1] for e in late})
    correction = np.zeros(bandit.d)
    for _, rec_id, tool_id, reward in late:
        feats = late_features.get((rec_id, tool_id))
        if feats is not None and len(feats) == bandit.d:
            correction += np.asarray(feats) * (reward if reward is not None else 1.0)
            rewards[(rec_id, tool_id)] = 1.0
    if correction.any():
        bandit = replace(bandit, b=bandit.b + correction, version=bandit.version + 1)
    return bandit, set(rewards)


def _remember(recs: list[tuple], used_pairs: set[tuple[object, int]]) -> None:
    """Store the context of every use, named after the model that embedded it (the model of
    the snapshot that served the recommendation)."""
    contexts = {pk: (vector, snapshot) for pk, _, vector, _, snapshot in recs if vector}
    missing = {rec_id for rec_id, _ in used_pairs} - set(contexts)
    if missing:  # late uses of recommendations learned in an earlier batch
        for pk, vector, snapshot in (
            Recommendation.objects.filter(pk__in=missing)
            .exclude(query_vector=None)
            .values_list("pk", "query_vector", "snapshot_version")
        ):
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


def _upsert_add(
    model: type, keys: tuple[str, ...], rows: list[tuple], added: tuple[str, ...], latest: str = ""
) -> None:
    """INSERT ... ON CONFLICT DO UPDATE adding the counts (PostgreSQL and SQLite alike).

    Raw SQL because Django has no additive upsert: bulk_update compiles a CASE per row
    (0.3 s for 2,000 rows here) and read-modify-write would race with nothing but cost a read.
    """
    if not rows:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    columns = [*keys, *added, *([latest] if latest else [])]
    updates = [f"{c} = {table}.{c} + excluded.{c}" for c in added]
    if latest:
        updates.append(f"{latest} = COALESCE(excluded.{latest}, {table}.{latest})")
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {', '.join(updates)}"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _count_users(recs: list[tuple], used_pairs: set[tuple[object, int]]) -> None:
    users = {pk: user for pk, user, *_ in recs if user}
    counts: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for rec_id, tool_id in Impression.objects.filter(recommendation_id__in=list(users)).values_list(
        "recommendation_id", "tool_id"
    ):
        counts[(users[rec_id], tool_id)][0] += 1
    for rec_id, tool_id in used_pairs:
        if rec_id in users:
            counts[(users[rec_id], tool_id)][1] += 1
    now = timezone.now()
    _upsert_add(
        UserToolStats,
        ("user_id", "tool_id"),
        [(user, tool, shown, used, now if used else None) for (user, tool), (shown, used) in sorted(counts.items())],
        ("times_recommended", "times_used"),
        latest="last_used_at",
    )


def _count_co_use(recs: list[tuple], used_pairs: set[tuple[object, int]]) -> None:
    called = {pk: ids for pk, _, _, ids, _ in recs if ids}
    pairs: dict[tuple[int, int], int] = defaultdict(int)
    for rec_id, tool_id in used_pairs:
        for after in called.get(rec_id, ()):
            if after != tool_id:
                pairs[(after, tool_id)] += 1
    _upsert_add(CoUse, ("after_id", "tool_id"), [(a, t, c) for (a, t), c in sorted(pairs.items())], ("count",))


def learning_publish_stats() -> int:
    """Publish the current state again with fresh per-tool counts (after a catalog change,
    so new tools and their zero counts are served from memory); returns the version."""
    with transaction.atomic():
        state = _latest_state()
        published = LearningState.objects.create(
            bandit=bytes(state.bandit),
            tool_stats=ToolStatsTable.current().to_bytes(),
            recommendations_learned=state.recommendations_learned,
            events_learned=state.events_learned,
        )
    return published.pk


def learning_state_rebuild() -> LearnOutcome | None:
    """Forget every learned state and learn the whole log again, oldest first."""
    with transaction.atomic():
        LearningState.objects.all().delete()
        MemoryEntry.objects.all().delete()
        UserToolStats.objects.all().delete()
        CoUse.objects.all().delete()
        Recommendation.objects.update(learned_at=None)
        UsageEvent.objects.update(learned_at=None)
    last = None
    while (outcome := learning_batch(delay_seconds=0)) is not None:
        last = outcome
    return last


LEARN_PENDING_KEY = "toolrec:learn-pending"


def learning_schedule() -> None:
    """Ask for a learning batch soon (debounced). Never raises: the periodic task catches up."""
    from recommender.tasks import learn_from_feedback

    if not settings.LEARNING_AUTO_SCHEDULE:
        return
    delay = settings.LEARN_DEBOUNCE_SECONDS
    try:
        if delay and not cache.add(LEARN_PENDING_KEY, 1, timeout=delay):
            return
    except Exception:
        log.warning("cache unavailable; scheduling learning without debounce", exc_info=True)
    try:
        run_task(learn_from_feedback, countdown=delay)
    except Exception:
        log.exception("could not schedule learning; the periodic task will catch up")
