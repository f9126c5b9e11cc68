"""Isolated learning: an experiment variant that learns in a state of its own.

Two learners in one A/B test that share one state each learn from the other's traffic, so
the test measures their scoring on a common model, not how well each learns. A variant
whose `learning` is "isolated" gets an `IsolatedLearningState`: a copy of the shared state
(bandit and per-tool counts) taken when the experiment starts, into which the learner
folds only the feedback on the recommendations that variant served, and from which that
variant is served. The shared state keeps learning from every recommendation, the
isolated variants' too: it is what the rest of the traffic is served, and it must not
lose data because an experiment ran (see the README for which comparisons are fair).

What is isolated: the bandit (the weights and their uncertainty, i.e. what is learned and
how it explores) and the per-tool counts, which are features of that bandit (popularity,
recency, new-tool flag). What stays shared, with the reason: the memory of past contexts,
the co-use and per-user counts are read by every policy as facts about tools and users
(isolating them would mean per-variant rows in three tables and per-request queries keyed
by variant); with `unit = user` a user's own history is its variant's anyway. The match
model (the no-match signal) and the LambdaMART ranker are not part of the ranking being
compared between bandits and stay shared.

Everything runs in the learner's one batch, under its one lock: no second job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from django.db.models import F

from feedback.models import Recommendation
from recommender.engine.bandit import LinearBanditState
from recommender.engine.features import N_FEATURES
from recommender.learning.fold import Claimed, ImpressionFeatures, bandit_fold
from recommender.learning.models import IsolatedLearningState, LearningState
from recommender.learning.state import MEMORY_DIM, LearnedState, ToolStatsTable, bandit_load, new_memory

Scope = tuple[str, str]  # (experiment key, variant name)


def isolated_learners_open(*, experiment_key: str, variants: list[str]) -> list[IsolatedLearningState]:
    """Seed the variants' own states from the shared state as it is now (all of them from
    the same copy, so they start equal), replacing any earlier ones of this key (a key
    reused after its experiment was deleted). Called by `experiment_start` in its
    transaction: the rows exist before the variants can serve anything."""
    IsolatedLearningState.objects.filter(experiment_key=experiment_key).delete()
    if not variants:
        return []
    shared = LearningState.objects.order_by("-pk").first()
    if shared is not None:
        bandit = bandit_load(bytes(shared.bandit), what=f"learned state v{shared.pk}").to_bytes()
        stats = bytes(shared.tool_stats) if shared.tool_stats else ToolStatsTable.current().to_bytes()
    else:
        bandit, stats = LinearBanditState.initial(N_FEATURES).to_bytes(), ToolStatsTable.current().to_bytes()
    return IsolatedLearningState.objects.bulk_create(
        IsolatedLearningState(
            experiment_key=experiment_key,
            variant=name,
            bandit=bandit,
            tool_stats=stats,
            seed_bandit=bandit,
            seed_tool_stats=stats,
            seeded_from=shared.pk if shared is not None else None,
        )
        for name in variants
    )


def isolated_learners_close(*, experiment_key: str) -> int:
    """The experiment stopped (or was promoted): web processes drop its states. They keep
    learning the feedback still to come on what they served, and stay for inspection; a
    promoted variant is then served from the shared state, which learned all of it too."""
    return IsolatedLearningState.objects.filter(experiment_key=experiment_key, serving=True).update(serving=False)


def _late_scopes(claimed: Claimed) -> dict[Any, Scope]:
    rec_ids = {u.recommendation_id for u in claimed.late}
    if not rec_ids:
        return {}
    rows = Recommendation.objects.filter(pk__in=rec_ids).exclude(experiment_key="")
    return {pk: (key, variant) for pk, key, variant in rows.values_list("pk", "experiment_key", "variant")}


def _part(claimed: Claimed, scope: Scope, late_scopes: Mapping[Any, Scope]) -> Claimed:
    recs = [r for r in claimed.recs if (r.experiment_key, r.variant) == scope]
    rec_ids = {r.pk for r in recs}
    return Claimed(
        recs,
        [e for e in claimed.events if e.recommendation_id in rec_ids],
        [u for u in claimed.late if late_scopes.get(u.recommendation_id) == scope],
    )


def isolated_learn(claimed: Claimed, impressions: ImpressionFeatures) -> int:
    """Fold into each isolated state the part of the batch its variant served (its own
    recommendations and late uses on them); the number of states that learned. A batch
    without experiment traffic costs nothing; with some, one query (and one more for late
    uses), then one UPDATE per isolated variant that had traffic."""
    late_scopes = _late_scopes(claimed)
    keys = {r.experiment_key for r in claimed.recs if r.experiment_key} | {k for k, _ in late_scopes.values()}
    if not keys:
        return 0
    learned = 0
    for row in IsolatedLearningState.objects.select_for_update().filter(experiment_key__in=keys).order_by("pk"):
        part = _part(claimed, (row.experiment_key, row.variant), late_scopes)
        if not part.recs and not part.late:
            continue
        own = bandit_load(bytes(row.bandit), what=f"isolated state {row}")
        bandit, _ = bandit_fold(own, part, impressions)
        stats = ToolStatsTable.from_bytes(bytes(row.tool_stats)) if row.tool_stats else ToolStatsTable.current()
        row.bandit, row.tool_stats = bandit.to_bytes(), _counts_added(stats, part, impressions).to_bytes()
        row.version += 1
        row.recommendations_learned += len(part.recs)
        row.events_learned += len(part.events) + len(part.late)
        row.save(update_fields=["bandit", "tool_stats", "version", "recommendations_learned", "events_learned"])
        learned += 1
    return learned


def _counts_added(stats: ToolStatsTable, part: Claimed, impressions: ImpressionFeatures) -> ToolStatsTable:
    """The variant's own shows and uses added, as `tool_counts_add` adds everyone's."""
    rec_ids = {r.pk for r in part.recs}
    shows: dict[int, int] = defaultdict(int)
    for rec_id, tool_id in impressions:
        if rec_id in rec_ids:
            shows[tool_id] += 1
    uses: dict[int, int] = defaultdict(int)
    last_used: dict[int, float] = {}
    for use in part.uses:
        uses[use.tool_id] += 1
        last_used[use.tool_id] = max(last_used.get(use.tool_id, 0.0), use.created_at.timestamp())
    return stats.added(shows=shows, uses=uses, last_used=last_used)


def isolated_forget() -> None:
    """Back to their seeds (before the whole log is learned again: each relearns its part)."""
    IsolatedLearningState.objects.update(
        bandit=F("seed_bandit"),
        tool_stats=F("seed_tool_stats"),
        version=F("version") + 1,
        recommendations_learned=0,
        events_learned=0,
    )


@dataclass(frozen=True, eq=False)
class IsolatedState:
    """What a web process holds of one isolated variant's state."""

    version: int
    bandit: LinearBanditState
    tool_stats: ToolStatsTable | None


IsolatedStates = Mapping[Scope, IsolatedState]


def isolated_states_load(current: IsolatedStates | None) -> IsolatedStates:
    """The serving isolated states, as a new mapping when any changed (the old one may be
    serving requests), else `current`. One small query when nothing changed."""
    current = current or {}
    versions = {
        (key, variant): version
        for key, variant, version in IsolatedLearningState.objects.filter(serving=True).values_list(
            "experiment_key", "variant", "version"
        )
    }
    stale = {scope for scope, version in versions.items() if scope not in current or current[scope].version != version}
    if not stale and len(versions) == len(current):
        return current
    fresh: dict[Scope, IsolatedState] = {scope: current[scope] for scope in versions if scope not in stale}
    rows = IsolatedLearningState.objects.filter(serving=True, experiment_key__in={k for k, _ in stale})
    for key, variant, version, bandit, stats in rows.values_list(
        "experiment_key", "variant", "version", "bandit", "tool_stats"
    ):
        if (key, variant) in stale:
            fresh[(key, variant)] = IsolatedState(
                version,
                bandit_load(bytes(bandit), what=f"isolated state {key}/{variant}"),
                ToolStatsTable.from_bytes(bytes(stats)) if stats else None,
            )
    return fresh


def isolated_learned_state(shared: LearnedState | None, own: IsolatedState) -> LearnedState:
    """What an isolated variant is served: its own bandit and per-tool counts, with the
    shared memory, ranker and match model (the same objects: nothing is copied)."""
    if shared is None:
        return LearnedState(
            version=0,
            bandit=own.bandit,
            memory=new_memory(MEMORY_DIM),
            memory_last_id=0,
            ranker_id=None,
            ranker_text=None,
            tool_stats=own.tool_stats,
        )
    return replace(shared, bandit=own.bandit, tool_stats=own.tool_stats)
