"""Reads of the learning signals that the recommendation path needs per request.

These run on every recommendation, so they are raw SQL with any id list passed as one
array parameter: the ORM's ``tool_id__in=[...]`` prepares each id as its own parameter,
several times slower for a few hundred ids. PostgreSQL takes a list as
an array (``= ANY(%s)``); SQLite reads it from a JSON text
(``IN (SELECT value FROM json_each(%s))``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from django.db import connection
from django.db.models import Count, Max

from feedback.models import Impression, Recommendation, UsageEvent
from recommender.learning.models import CoUse, UserToolStats


def _ids_clause(column: str, ids: Sequence[int]) -> tuple[str, list[int] | str]:
    values = [int(i) for i in ids]
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", values
    return f"{column} IN (SELECT value FROM json_each(%s))", json.dumps(values)


def user_tool_counts_all(*, user_id: str, limit: int) -> dict[int, tuple[int, int]]:
    """tool_id -> (times_used, times_recommended) of the tools the user was shown, the `limit`
    most used first; read before the candidates are known (see recommender.serving.ranking), so not
    filtered by them. The limit bounds the cost for a user with a long history."""
    if not user_id:
        return {}
    table = UserToolStats._meta.db_table
    with connection.cursor() as cursor:
        # The unique (user_id, tool_id) constraint is the index of this query.
        cursor.execute(
            f"SELECT tool_id, times_used, times_recommended FROM {table} WHERE user_id = %s "
            "ORDER BY times_used DESC, times_recommended DESC LIMIT %s",
            [user_id, limit],
        )
        return {int(t): (int(u), int(r)) for t, u, r in cursor.fetchall()}


def co_use_counts_all(*, called_ids: Sequence[int]) -> dict[int, int]:
    """tool_id -> uses after any of `called_ids`, summed, for every tool ever used after them."""
    if not called_ids:
        return {}
    clause, param = _ids_clause("after_id", called_ids)
    table = CoUse._meta.db_table
    with connection.cursor() as cursor:
        # The unique (after_id, tool_id) constraint is the index of this query.
        cursor.execute(f"SELECT tool_id, SUM(count) FROM {table} WHERE {clause} GROUP BY tool_id", [param])
        return {int(t): int(c) for t, c in cursor.fetchall()}


def tool_counts_from_log(*, tool_ids: Sequence[int]) -> dict[int, tuple[int, int, datetime | None]]:
    """tool_id -> (uses, shows, last use) counted on the log itself, for the request path
    before any learned state exists (a new deployment, or the first batch of a relearn):
    the learner's counts (`ToolStats`) only hold what it has learned so far. Two grouped
    index scans over a log that is young whenever this runs."""
    counts: dict[int, tuple[int, int, datetime | None]] = {}
    for tool_id, shows in (
        Impression.objects.filter(tool_id__in=tool_ids).values_list("tool_id").annotate(n=Count("pk"))
    ):
        counts[tool_id] = (0, shows, None)
    for tool_id, uses, last in (
        UsageEvent.objects.filter(tool_id__in=tool_ids, used=True)
        .values_list("tool_id")
        .annotate(n=Count("pk"), last=Max("created_at"))
    ):
        counts[tool_id] = (uses, counts.get(tool_id, (0, 0, None))[1], last)
    return counts


def learner_lag_seconds(*, now: datetime, delay_seconds: float) -> float:
    """How far the learner is behind: seconds since the oldest unlearned work came due.

    A recommendation comes due `delay_seconds` after it was served (the learner waits that
    long on purpose, for uses to arrive); a use reported after its recommendation was
    learned comes due at once. Both reads walk a partial index of the unlearned rows
    (rec_unlearned, usage_unlearned) from its oldest end."""
    oldest_rec = (
        Recommendation.objects.filter(learned_at__isnull=True)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    oldest_late_use = (
        UsageEvent.objects.filter(learned_at__isnull=True, used=True, recommendation__learned_at__isnull=False)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    lags = [0.0]
    if oldest_rec is not None:
        lags.append((now - oldest_rec).total_seconds() - delay_seconds)
    if oldest_late_use is not None:
        lags.append((now - oldest_late_use).total_seconds())
    return max(lags)
