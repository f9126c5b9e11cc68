"""The running counts the learner keeps: per tool (shows, uses, last use), per user and
tool, and per pair of tools used one after the other in a conversation.

All three are sums over learned log rows, written with one additive upsert per table, so
a batch costs a few statements whatever its size, and `learning_state_rebuild` recounts
them from the log exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Model

from feedback.models import Impression
from recommender.learning.models import CoUse, ToolStats, UserToolStats

UsedPair = tuple[Any, int]  # (recommendation id, tool id)


class ClaimedRecommendation(NamedTuple):
    pk: Any
    user_id: str
    query_vector: bytes | memoryview | None  # float32, as the request embedded it
    called_tool_ids: list[int]
    snapshot_version: int
    created_at: datetime
    experiment_key: str = ""  # the experiment and variant that served it: an isolated variant
    variant: str = ""  # learns only from its own recommendations (recommender.learning.isolated)


class UseRow(NamedTuple):
    """A learned use (an event with used=True), whenever it was reported."""

    recommendation_id: Any
    tool_id: int
    created_at: datetime


def _newer(table: str, column: str) -> str:
    """Keep the later of the stored and the new time (either may be NULL)."""
    return (
        f"{column} = CASE WHEN {table}.{column} IS NULL OR excluded.{column} > {table}.{column} "
        f"THEN excluded.{column} ELSE {table}.{column} END"
    )


def _upsert_add(
    model: type[Model],
    keys: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    added: tuple[str, ...],
    latest: tuple[str, ...] = (),
) -> None:
    """INSERT ... ON CONFLICT DO UPDATE adding the counts and keeping the latest times
    (PostgreSQL and SQLite alike).

    Raw SQL because Django has no additive upsert: bulk_update compiles a CASE per row (slow
    for thousands of rows) and read-modify-write would race with nothing but cost a read.
    """
    if not rows:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    columns = [*keys, *added, *latest]
    updates = [f"{c} = {table}.{c} + excluded.{c}" for c in added] + [_newer(table, c) for c in latest]
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {', '.join(updates)}"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _shown(rec_ids: Iterable[Any]) -> list[tuple[Any, int]]:
    rows = Impression.objects.filter(recommendation_id__in=list(rec_ids)).values_list("recommendation_id", "tool_id")
    return list(rows)


def tool_counts_add(recs: Sequence[ClaimedRecommendation], uses: Sequence[UseRow]) -> None:
    """Shows of the claimed recommendations and the uses learned in this batch, per tool."""
    created = {r.pk: r.created_at for r in recs}
    counts: dict[int, list[Any]] = defaultdict(lambda: [0, 0, None, None])  # shows, uses, last shown, last used
    for rec_id, tool_id in _shown(created):
        row = counts[tool_id]
        row[0] += 1
        row[2] = max(row[2] or created[rec_id], created[rec_id])
    for use in uses:
        row = counts[use.tool_id]
        row[1] += 1
        row[3] = max(row[3] or use.created_at, use.created_at)
    _upsert_add(
        ToolStats,
        ("tool_id",),
        [(tool, *values) for tool, values in sorted(counts.items())],
        ("times_recommended", "times_used"),
        latest=("last_recommended_at", "last_used_at"),
    )


def user_counts_add(recs: Sequence[ClaimedRecommendation], used_pairs: set[UsedPair], now: datetime) -> None:
    users = {r.pk: r.user_id for r in recs if r.user_id}
    counts: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for rec_id, tool_id in _shown(users):
        counts[(users[rec_id], tool_id)][0] += 1
    for rec_id, tool_id in used_pairs:
        if rec_id in users:
            counts[(users[rec_id], tool_id)][1] += 1
    _upsert_add(
        UserToolStats,
        ("user_id", "tool_id"),
        [(user, tool, shown, used, now if used else None) for (user, tool), (shown, used) in sorted(counts.items())],
        ("times_recommended", "times_used"),
        latest=("last_used_at",),
    )


def co_use_counts_add(recs: Sequence[ClaimedRecommendation], used_pairs: set[UsedPair]) -> None:
    called = {r.pk: r.called_tool_ids for r in recs if r.called_tool_ids}
    pairs: dict[tuple[int, int], int] = defaultdict(int)
    for rec_id, tool_id in used_pairs:
        for after in called.get(rec_id, ()):
            if after != tool_id:
                pairs[(after, tool_id)] += 1
    _upsert_add(CoUse, ("after_id", "tool_id"), [(a, t, c) for (a, t), c in sorted(pairs.items())], ("count",))


def counts_forget() -> None:
    """Zero every count (before relearning the whole log)."""
    UserToolStats.objects.all().delete()
    CoUse.objects.all().delete()
    ToolStats.objects.update(times_recommended=0, times_used=0, last_recommended_at=None, last_used_at=None)
