"""Replaying queries as conversations through the real recommendation, feedback and
learning code, with a simple model of an agent, to compare policies offline.

Each policy starts from the same empty log and the same catalog, sees the same query
stream (same seed) and learns in batches as production does; at intervals every policy is
scored on held-out test queries without logging anything.
"""

from __future__ import annotations

import json
import logging
import random
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.core.cache import cache

from access.services import api_key_create
from catalog.importers import ToolSpec, parse_tools
from catalog.models import Tool
from catalog.services import tool_import
from experiments.selectors import reset_cache as reset_experiments
from feedback.models import Recommendation
from feedback.services import FeedbackItem, feedback_record
from recommender.engine.conversation import read_conversation
from recommender.engine.ranking_metrics import ndcg_at_k, recall_at_k
from recommender.indexing.embedders import prefill_cache
from recommender.indexing.snapshots import snapshot_build
from recommender.learning.learner import learning_batch, learning_publish_stats
from recommender.learning.models import CoUse, LearningState, MemoryEntry, RankerModel, ToolStats, UserToolStats
from recommender.learning.ranker_training import ranker_activate, ranker_train
from recommender.serving.holders import learned, snapshots
from recommender.serving.services import recommendation_create
from toolrec_site.scheduling import LEARN_PENDING_KEY, REBUILD_PENDING_KEY

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimQuery:
    text: str
    relevant: frozenset[str]  # tool names


@dataclass(frozen=True)
class AgentModel:
    """Uses the relevant tools it is shown, less often further down the list, misses some,
    and now and then uses an irrelevant one."""

    use_probability: float = 0.9  # a relevant tool shown first
    position_decay: float = 0.1  # each rank further down divides by (1 + decay * rank)
    false_use: float = 0.02  # an irrelevant tool shown

    def uses(self, shown: Sequence[str], relevant: frozenset[str], rng: random.Random) -> list[str]:
        used = []
        for rank, name in enumerate(shown):
            p = self.use_probability / (1 + self.position_decay * rank) if name in relevant else self.false_use
            if rng.random() < p:
                used.append(name)
        return used


@dataclass
class Checkpoint:
    step: int
    usage_rate: float  # uses / tools shown, cumulative
    hit_rate: float  # recommendations with at least one use, cumulative
    interval_usage_rate: float  # the same two since the previous checkpoint: the cumulative
    interval_hit_rate: float  # figures hide how fast a policy learns and where it levels off
    recall_at_5: float  # on the test queries
    ndcg_at_10: float
    coverage: float  # share of the catalog shown at least once
    learned_events: int


@dataclass
class PolicyRun:
    policy: str
    config: dict[str, Any]
    checkpoints: list[Checkpoint] = field(default_factory=list)
    held_back: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    learn_batch_seconds: list[float] = field(default_factory=list)


def load_queries(paths: Sequence[Path], known: set[str]) -> list[SimQuery]:
    queries = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                relevant = frozenset(r for r in record["relevant"] if r in known)
                if relevant and str(record.get("query", "")).strip():
                    queries.append(SimQuery(record["query"], relevant))
    return queries


def load_specs(paths: Sequence[Path]) -> list[ToolSpec]:
    specs: dict[str, ToolSpec] = {}
    for path in paths:
        for record in parse_tools(path.read_text(encoding="utf-8"), "auto", source=path.name):
            if isinstance(record, ToolSpec):
                specs[record.name] = record
    return list(specs.values())


@dataclass
class Scenario:
    specs: list[ToolSpec]
    stream: list[SimQuery]
    test: list[SimQuery]
    k: int = 5
    batch: int = 100
    eval_every: int = 1000
    add_at: int | None = None  # step at which the held-back tools are added
    held_back: frozenset[str] = frozenset()
    train_every: int = 2000  # LambdaMART retraining for policies that read it
    agent: AgentModel = field(default_factory=AgentModel)
    seed: int = 0
    progress: Callable[[str], None] = lambda line: None


def replay_reset(scenario: Scenario) -> None:
    """An empty log and the initial catalog, as if the service had just started."""
    Recommendation.objects.all().delete()  # impressions and usage events cascade
    for model in (UserToolStats, CoUse, LearningState, MemoryEntry, RankerModel, ToolStats):
        model.objects.all().delete()
    Tool.objects.filter(name__in=scenario.held_back).delete()
    initial = [s for s in scenario.specs if s.name not in scenario.held_back]
    tool_import(records=initial, schedule_rebuild=False)
    _index_build()
    ToolStats.objects.update(times_recommended=0, times_used=0, last_recommended_at=None, last_used_at=None)
    for holder in (snapshots, learned):
        holder.reset()
    reset_experiments()


def _index_build() -> None:
    """Build and activate the index if the catalog changed, and then publish the counts of
    its tools, in this thread (the rebuild task hands the publishing to another task; a
    replay must not race with it). An unchanged catalog publishes nothing, as in service."""
    if snapshot_build() is not None:
        learning_publish_stats()


def learn_pending(run: PolicyRun) -> None:
    while (outcome := learning_batch(delay_seconds=0)) is not None:
        run.learn_batch_seconds.append(outcome.seconds)


def _evaluate(
    scenario: Scenario, api_key: Any, config: dict[str, Any], rng: np.random.Generator
) -> tuple[float, float]:
    recalls, ndcgs = [], []
    for query in scenario.test:
        result = recommendation_create(
            api_key=api_key,
            messages=[{"role": "user", "content": query.text}],
            k=max(10, scenario.k),
            policy=config,
            record=False,
            rng=rng,
        )
        ranked = [t.name for t in result.tools]
        recalls.append(recall_at_k(ranked, query.relevant, 5))
        ndcgs.append(ndcg_at_k(ranked, query.relevant, 10))
    return 100 * float(np.mean(recalls)), 100 * float(np.mean(ndcgs))


def simulate_policy(scenario: Scenario, name: str, config: dict[str, Any]) -> PolicyRun:
    replay_reset(scenario)
    api_key, _ = api_key_create(name=f"simulate {name}")
    run = PolicyRun(policy=name, config=config)
    agent_rng, policy_rng = random.Random(scenario.seed), np.random.default_rng(scenario.seed)
    eval_rng = np.random.default_rng(scenario.seed + 1)
    uses = shown_count = hits = learned_events = 0
    last = (0, 0, 0, 0)  # step, uses, shown, hits at the previous checkpoint
    shown_tools: set[str] = set()
    held_waiting: dict[str, int] = {}  # held-back tool -> its queries seen since it was added
    held_found: dict[str, int] = {}
    started = time.perf_counter()
    for step, query in enumerate(scenario.stream, start=1):
        if scenario.add_at is not None and step == scenario.add_at + 1:
            tool_import(records=[s for s in scenario.specs if s.name in scenario.held_back], schedule_rebuild=False)
            _index_build()
            held_waiting = dict.fromkeys(scenario.held_back, 0)
        result = recommendation_create(
            api_key=api_key,
            messages=[{"role": "user", "content": query.text}],
            k=scenario.k,
            user_id=f"user-{agent_rng.randrange(50)}",
            policy=config,
            rng=policy_rng,
        )
        names = [t.name for t in result.tools]
        for tool in query.relevant & held_waiting.keys():
            if tool in names:
                held_found[tool] = held_waiting.pop(tool)
            else:
                held_waiting[tool] += 1
        used = scenario.agent.uses(names, query.relevant, agent_rng)
        if used:
            assert result.recommendation_id is not None
            outcome = feedback_record(
                api_key=api_key,
                recommendation_id=result.recommendation_id,
                items=[FeedbackItem(tool=t, used=True, event_id=f"sim-{uuid.uuid4().hex}") for t in used],
            )
            learned_events += outcome.recorded
        uses, shown_count, hits = uses + len(used), shown_count + len(names), hits + bool(used)
        shown_tools.update(names)
        if step % scenario.batch == 0:
            learn_pending(run)
        if config.get("name") in ("ltr", "hybrid") and step % scenario.train_every == 0:
            ranker = ranker_train(seed=scenario.seed)
            if ranker is not None:
                ranker_activate(ranker_id=ranker.pk)
        if step % scenario.eval_every == 0 or step == len(scenario.stream):
            learn_pending(run)
            recall, ndcg = _evaluate(scenario, api_key, config, eval_rng)
            checkpoint = Checkpoint(
                step=step,
                usage_rate=100 * uses / max(shown_count, 1),
                hit_rate=100 * hits / step,
                interval_usage_rate=100 * (uses - last[1]) / max(shown_count - last[2], 1),
                interval_hit_rate=100 * (hits - last[3]) / max(step - last[0], 1),
                recall_at_5=recall,
                ndcg_at_10=ndcg,
                coverage=100 * len(shown_tools) / Tool.objects.filter(enabled=True).count(),
                learned_events=learned_events,
            )
            run.checkpoints.append(checkpoint)
            last = (step, uses, shown_count, hits)
            scenario.progress(
                f"{name:<16} step {step:>6}: usage {checkpoint.usage_rate:5.1f}  hit {checkpoint.hit_rate:5.1f} "
                f"(interval {checkpoint.interval_hit_rate:5.1f})  "
                f"R@5 {recall:5.1f}  nDCG@10 {ndcg:5.1f}  coverage {checkpoint.coverage:5.1f}"
            )
    run.seconds = time.perf_counter() - started
    if scenario.add_at is not None:
        waits = list(held_found.values())
        run.held_back = {
            "tools": len(scenario.held_back),
            "recommended": len(held_found),
            "never_recommended": len(held_waiting),
            "median_queries_before_recommended": statistics.median(waits) if waits else None,
            "median_including_never": statistics.median(waits + list(held_waiting.values()))
            if waits or held_waiting
            else None,
        }
    return run


def prepare_embeddings(scenario: Scenario) -> int:
    """Fill the embedding cache with every text the replay will embed, in batches."""
    texts = [
        t
        for q in [*scenario.stream, *scenario.test]
        for t in read_conversation([{"role": "user", "content": q.text}]).queries()
    ]
    return prefill_cache(texts)


def clear_pending_flags() -> None:
    cache.delete_many([REBUILD_PENDING_KEY, LEARN_PENDING_KEY])
