"""What the agent is shown: the policy's slate cut to the key's token budget (pinned tools
first), what the impression log keeps of each shown tool, and the answer's tool entries with
their optional reasons. Split from `services` (the request path's steps), which calls it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from feedback.services import ShownTool
from recommender.engine.features import FEATURE_INDEX
from recommender.engine.match import Match
from recommender.engine.types import Candidates, FloatArray, IntArray
from recommender.indexing.snapshots import LoadedSnapshot
from recommender.learning.state import LearnedState
from recommender.serving.ranking import Ranked, match_signal
from recommender.serving.token_budget import definition_tokens, fit_in_budget
from recommender.serving.tool_formats import OutputShape, tool_entry


@dataclass(frozen=True)
class RecommendedTool:
    tool_id: int
    name: str  # the function name: unique in the catalog, what the model calls and feedback names
    key: str  # "namespace/name", for people
    rank: int
    score: float
    function: dict[str, Any]
    reason: str | None


@dataclass(frozen=True)
class FittedSlate:
    positions: list[int]  # positions in the policy's slate that the answer keeps
    shown: list[ShownTool]  # what the impression logs of them
    tokens: int  # what their definitions cost
    match: Match  # how likely the first of them is to be used


def slate_fit(
    snapshot: LoadedSnapshot,
    candidates: Candidates,
    tool_ids: IntArray,
    ranked: Ranked,
    output: OutputShape,
    *,
    match_of: LearnedState | None,
) -> FittedSlate:
    """The slate within the token budget, counted in the answer's format, and the match signal
    of what is kept. Applied before the impression is logged: only what the agent is shown
    counts as shown. The key's pinned tools (the slate's first `ranked.pinned`) are in every
    answer: their cost comes off the budget first. `match_of`: the learned state whose match
    model serves (None: the prior)."""
    rows = candidates.rows
    costs = [
        definition_tokens(tool_entry(snapshot.definitions[rows[i]], output.format, defer_loading=output.defer_loading))
        for i in ranked.slate.order
    ]
    pinned = list(range(ranked.pinned))
    budget = output.max_tool_tokens
    if budget is not None:
        budget -= sum(costs[p] for p in pinned)
    rest = [
        ranked.pinned + p for p in fit_in_budget(costs[ranked.pinned :], max(budget, 0) if budget is not None else None)
    ]
    positions = pinned + rest
    shown = shown_tools(ranked, tool_ids, positions)
    return FittedSlate(positions, shown, sum(costs[p] for p in positions), match_signal(ranked, positions, match_of))


def shown_tools(ranked: Ranked, tool_ids: IntArray, positions: list[int]) -> list[ShownTool]:
    slate = ranked.slate
    return [
        ShownTool(
            tool_id=int(tool_ids[slate.order[p]]),
            rank=rank,
            score=float(slate.scores[p]),
            propensity=float(slate.propensities[p]),
            features=tuple(float(x) for x in ranked.features[slate.order[p]]),
            explored=bool(slate.explored[p]),
        )
        for rank, p in enumerate(positions, start=1)
    ]


def _reason(candidates: Candidates, i: int, features: FloatArray, explored: bool, pinned: bool = False) -> str:
    parts = ["pinned by this key's tool policy"] if pinned else []
    parts += [f"semantic similarity {float(candidates.dense[i]):.2f}"]
    if float(candidates.sparse[i]) > 0:
        parts.append(f"keyword score {float(candidates.sparse[i]):.1f}")
    if float(features[FEATURE_INDEX["votes_log"]]) > 0:
        parts.append("used after similar requests")
    if float(features[FEATURE_INDEX["co_use"]]) > 0:
        parts.append("often used with the tools already called")
    if explored:
        parts.append("shown to explore")
    return ", ".join(parts)


def answer_tools(
    snapshot: LoadedSnapshot,
    candidates: Candidates,
    ranked: Ranked,
    shown: list[ShownTool],
    positions: list[int],
    *,
    explain: bool,
) -> list[RecommendedTool]:
    slate = ranked.slate
    return [
        RecommendedTool(
            tool_id=s.tool_id,
            name=snapshot.function_names[candidates.rows[i]],
            key=snapshot.keys[candidates.rows[i]],
            rank=s.rank,
            score=s.score,
            function=snapshot.definitions[candidates.rows[i]],
            reason=_reason(candidates, i, ranked.features[i], bool(slate.explored[p]), p < ranked.pinned)
            if explain
            else None,
        )
        for p, i, s in ((p, slate.order[p], s) for p, s in zip(positions, shown))
    ]
