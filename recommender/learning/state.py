"""What web processes serve of the learning: the newest published `LearningState` loaded
as a `LearnedState` (bandit, per-tool statistics, context memory, active ranker) and swapped
in whole by a refresh thread (`recommender.serving.holders`), so a request never sees a half-built
one. The learner that publishes the states is `recommender.learning.learner`.
"""

from __future__ import annotations

import copy
import io
import logging
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from catalog.models import Tool
from recommender.engine.bandit import LinearBanditState
from recommender.engine.features import N_FEATURES
from recommender.engine.match import MatchModel
from recommender.engine.memory import ContextMemory
from recommender.engine.types import find_sorted
from recommender.learning.match_training import match_model_of
from recommender.learning.models import LearningState, MemoryEntry, RankerModel, ToolStats
from toolrec_site import metrics

log = logging.getLogger(__name__)
MEMORY_DIM = 384  # the local embedder's; the memory adapts to the first vector it sees


@dataclass(frozen=True, eq=False)
class ToolStatsTable:
    """Per-tool counts as of a learning version, sorted by tool id for vectorised lookups."""

    tool_ids: np.ndarray
    uses: np.ndarray
    shows: np.ndarray
    last_used: np.ndarray  # epoch seconds, NaN when never used

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, tool_ids=self.tool_ids, uses=self.uses, shows=self.shows, last_used=self.last_used)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ToolStatsTable:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return cls(z["tool_ids"], z["uses"], z["shows"], z["last_used"])

    @classmethod
    def current(cls) -> ToolStatsTable:
        rows = list(
            ToolStats.objects.order_by("tool_id").values_list(
                "tool_id", "times_used", "times_recommended", "last_used_at"
            )
        )
        return cls(
            tool_ids=np.array([r[0] for r in rows], dtype=np.int64),
            uses=np.array([r[1] for r in rows], dtype=np.float64),
            shows=np.array([r[2] for r in rows], dtype=np.float64),
            last_used=np.array([r[3].timestamp() if r[3] else np.nan for r in rows], dtype=np.float64),
        )

    def added(self, *, shows: dict[int, int], uses: dict[int, int], last_used: dict[int, float]) -> ToolStatsTable:
        """These counts added (a new table; this one may be serving): what an isolated
        variant's state keeps instead of the shared ToolStats rows. NaN-aware max for the
        last use (NaN: never used)."""
        new = np.array(sorted(set(shows) | set(uses)), dtype=np.int64)
        ids = np.union1d(self.tool_ids, new)
        out_uses, out_shows, out_last = np.zeros(len(ids)), np.zeros(len(ids)), np.full(len(ids), np.nan)
        at = np.searchsorted(ids, self.tool_ids)
        out_uses[at], out_shows[at], out_last[at] = self.uses, self.shows, self.last_used
        for tool, n in shows.items():
            out_shows[np.searchsorted(ids, tool)] += n
        for tool, n in uses.items():
            i = np.searchsorted(ids, tool)
            out_uses[i] += n
            out_last[i] = np.fmax(out_last[i], last_used.get(tool, np.nan))
        return ToolStatsTable(ids, out_uses, out_shows, out_last)

    def lookup(self, tool_ids: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(uses, shows, seconds since last use) for these tools; unknown tools count zero."""
        if not len(self.tool_ids):
            zeros = np.zeros(len(tool_ids))
            return zeros, zeros.copy(), np.full(len(tool_ids), np.inf)
        at, found = find_sorted(self.tool_ids, tool_ids)
        last = np.where(found, self.last_used[at], np.nan)
        return (
            np.where(found, self.uses[at], 0.0),
            np.where(found, self.shows[at], 0.0),
            np.where(np.isnan(last), np.inf, now - last),
        )


@dataclass(frozen=True, eq=False)
class LearnedState:
    version: int
    bandit: LinearBanditState
    memory: ContextMemory
    memory_last_id: int
    ranker_id: int | None
    ranker_text: str | None
    tool_stats: ToolStatsTable | None
    match_model: MatchModel | None = None  # None: the retrieval-score prior serves `match`


def new_memory(dim: int, model: str = "") -> ContextMemory:
    return ContextMemory(dim, max_size=settings.MEMORY_MAX_CONTEXTS, model=model)


def _load_memory(memory: ContextMemory | None, after_id: int) -> tuple[ContextMemory | None, int]:
    """The memory with the entries newer than `after_id` added, as a new object (the old
    one may be serving requests), or the same one when nothing is new."""
    rows = list(
        MemoryEntry.objects.filter(pk__gt=after_id)
        .order_by("-pk")
        .values_list("pk", "tool_id", "vector", "embedding_model")[: settings.MEMORY_MAX_CONTEXTS]
    )
    if not rows:
        return memory, after_id
    # After a change of embedding model the table holds contexts of two models: the newest
    # model's are kept, the others can never match a request again (their vectors may even
    # have the same size, but they live in another space).
    last_id, _, newest_vector, model = rows[0]
    size = len(newest_vector)
    rows = [r for r in reversed(rows) if len(r[2]) == size and r[3] == model]
    vectors = np.stack([np.frombuffer(bytes(v), dtype=np.float32) for _, _, v, _ in rows])
    if memory is not None and memory.dim == vectors.shape[1] and memory.model == model:
        fresh = copy.copy(memory)
    else:
        fresh = new_memory(vectors.shape[1], model)
    fresh.add(vectors, np.array([r[1] for r in rows], dtype=np.int64))  # add() rebinds, never mutates arrays
    return fresh, last_id


def bandit_of(state: LearningState) -> LinearBanditState:
    """The state's bandit, or a fresh one when it was learned over another feature set (a
    deploy that changed FEATURE_NAMES): serving or updating it would fail on every request."""
    return bandit_load(bytes(state.bandit), what=f"learned state v{state.pk}")


def bandit_load(data: bytes, *, what: str) -> LinearBanditState:
    bandit = LinearBanditState.from_bytes(data)
    if bandit.d != N_FEATURES:
        log.warning(
            "%s has a %d-feature bandit, the code has %d features: starting a new bandit "
            "(`manage.py rebuild_learning_state` relearns it from the log)",
            what,
            bandit.d,
            N_FEATURES,
        )
        return LinearBanditState.initial(N_FEATURES)
    return bandit


def learned_state_load(current: LearnedState | None) -> LearnedState | None:
    """The newest published state with the active ranker, loaded; `current` when it is
    still the newest (the memory is loaded incrementally from `current`)."""
    latest, ranker = _published()
    if latest is None:
        return None
    if current is not None and current.version == latest and current.ranker_id == ranker:
        return current
    loaded = _load(latest, ranker, current)
    metrics.LEARNED_STATE_VERSION.set(loaded.version)
    _label_most_used(loaded.tool_stats, current.tool_stats if current else None)
    return loaded


@dataclass(frozen=True, eq=False)
class RankingState:
    """What ranking logged candidates needs of a learned state (shadow variants): the bandit
    and the active ranker. Not the context memory, the tool counts or the match model, which
    only retrieval and feature building read; loading the memory (its new entries, at every
    learner batch) had cost the shadow worker as much CPU as its ranking."""

    version: int
    bandit: LinearBanditState
    ranker_id: int | None
    ranker_text: str | None


def ranking_state_load(current: RankingState | None) -> RankingState | None:
    """The newest published bandit and the active ranker; `current` when both are the
    newest (two index lookups)."""
    latest, ranker = _published()
    if latest is None:
        return None
    if current is not None and current.version == latest and current.ranker_id == ranker:
        return current
    if current is not None and current.version == latest:
        bandit = current.bandit
    else:
        bandit = bandit_load(
            bytes(LearningState.objects.filter(pk=latest).values_list("bandit", flat=True).get()),
            what=f"learned state v{latest}",
        )
    ranker_text = _ranker_text(ranker, current)
    return RankingState(version=latest, bandit=bandit, ranker_id=ranker, ranker_text=ranker_text)


def _published() -> tuple[int | None, int | None]:
    """The newest learned state's version and the active ranker's id (two index lookups)."""
    latest = LearningState.objects.order_by("-pk").values_list("pk", flat=True).first()
    ranker = RankerModel.objects.filter(is_active=True).values_list("pk", flat=True).first()
    return latest, ranker


def _ranker_text(ranker_id: int | None, current: LearnedState | RankingState | None) -> str | None:
    """The active ranker's model, read only when it is not the one already loaded."""
    if current is not None and current.ranker_id == ranker_id:
        return current.ranker_text
    if ranker_id is None:
        return None
    return RankerModel.objects.filter(pk=ranker_id).values_list("model_text", flat=True).first()


def _most_used(stats: ToolStatsTable | None) -> list[int]:
    if stats is None or not len(stats.uses):
        return []
    n = min(metrics.TOOL_LABELS_MAX, len(stats.uses))
    top = np.argpartition(-stats.uses, n - 1)[:n]  # linear, not a sort of up to 1M tools per state
    order = top[np.lexsort((stats.tool_ids[top], -stats.uses[top]))]
    return [int(t) for t in stats.tool_ids[order[stats.uses[order] > 0]]]


def _label_most_used(stats: ToolStatsTable | None, previous: ToolStatsTable | None) -> None:
    """Give the most used tools their own label in the tool-use metric (bounded cardinality);
    one small query, only when the most used tools changed."""
    top = _most_used(stats)
    if not top or (previous is not None and _most_used(previous) == top):
        return
    names = {
        pk: f"{ns}/{name}" for pk, ns, name in Tool.objects.filter(pk__in=top).values_list("pk", "namespace", "name")
    }
    metrics.tool_labels_set({t: names[t] for t in top if t in names})


def _load(version: int, ranker_id: int | None, current: LearnedState | None) -> LearnedState:
    state = LearningState.objects.get(pk=version)
    bandit = bandit_of(state)
    memory, last_id = _load_memory(current.memory if current else None, current.memory_last_id if current else 0)
    ranker_text = _ranker_text(ranker_id, current)
    return LearnedState(
        version=version,
        bandit=bandit,
        memory=memory if memory is not None else new_memory(MEMORY_DIM),
        memory_last_id=last_id,
        ranker_id=ranker_id,
        ranker_text=ranker_text,
        tool_stats=ToolStatsTable.from_bytes(bytes(state.tool_stats)) if state.tool_stats else None,
        match_model=match_model_of(state.match_model),
    )
