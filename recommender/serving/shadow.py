"""Shadow variants: ranked on the candidates the served policy ranked, by a Celery task
(`rank_shadows`), off the web processes, and their slates logged (ShadowSlate) for the
experiment's shadow results (experiments.shadow_results).

A request of an experiment with shadows logs its whole candidate set (tool ids, retrieval
scores and the feature matrix the served policy ranked; `Recommendation.candidate_log`) and
adds a row to the narrow queue table ShadowPending. At most once per `SHADOW_ASK_SECONDS`
per process it asks for a ranking run, and runs ask for the next one while there is work
(toolrec_site.scheduling.shadows_rank_after); beat runs one every 30 s for whatever a lost
publish left pending. A run claims queue rows
with a skip-locked select (runs may overlap), reads their logs (the recommendation rows are
only read: no lock, no rewrite), ranks each shadow on the logged candidates (one policy pass,
`slate_with_inclusion`, plus LambdaMART scores for ltr; no second retrieval), and in one
transaction stores one ShadowSlate per (recommendation, variant) (unique: a redelivered run
adds nothing) and deletes the queue rows. Its commit does not wait for the disk: a crash may
lose the last batch's slates, and with them its deletes, so the batch is ranked again.

Why not in the web process, where this project ranked shadows first (on a background thread
after the answer): the job is small (about 2 ms of CPU for a Thompson shadow, 1 ms now,
against about 25 ms for the served request), but in the web process it competed with the
request threads for the GIL, and with 4 concurrent clients on 2 cores it raised the served
p99 by 40% (bench/results/recommend_latency_shadow_alternate_1000.json). In a worker it
competes for CPU only, and a worker of its own (`SHADOW_QUEUE`) can run at a lower priority
than the web processes (deploy/systemd/toolrec-shadow-worker.service).

What differs from ranking inside the request: the bandit and ranker are the newest shared
ones when the batch starts (a learner batch later at most, seconds; the worker loads only
those, `ranking_state_load`, not the retrieval-side state), and a Thompson shadow's draws
are its own. A recommendation whose log cannot be ranked (a feature set older than the
bandit's) leaves the queue without a slate and is counted in the logs.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction

from experiments.models import ShadowSlate, Variant
from feedback.models import Impression, Recommendation, ShadowPending
from feedback.services import skip_wal_flush
from recommender.engine.candidate_log import LoggedCandidates, read_candidate_log
from recommender.engine.ltr import predict as ltr_predict
from recommender.engine.policy import slate_with_inclusion
from recommender.learning.state import RankingState
from recommender.serving.holders import ranking
from recommender.serving.ranking import policy_config

log = logging.getLogger(__name__)

Shadows = tuple[tuple[str, dict[str, Any]], ...]  # (variant, policy), as Assignment.shadows


@dataclass(frozen=True)
class ShadowRun:
    recommendations: int = 0  # claimed and marked done
    slates: int = 0  # stored
    unrankable: int = 0  # marked done without a slate (no log, or features the policy cannot read)


def shadows_rank(*, batch_size: int | None = None, max_batches: int = 50) -> ShadowRun:
    """Rank the shadows of pending recommendations, oldest first, batch by batch until none
    is left (or `max_batches`: a run has a time limit, the next run goes on)."""
    size = batch_size or settings.SHADOW_BATCH_SIZE
    total = ShadowRun()
    for _ in range(max_batches):
        done = _batch_rank(size)
        total = ShadowRun(
            total.recommendations + done.recommendations,
            total.slates + done.slates,
            total.unrankable + done.unrankable,
        )
        if done.recommendations < size:
            break
    return total


def _batch_rank(size: int) -> ShadowRun:
    state = ranking.get()  # the shared bandit and ranker (shadows learn shared), the newest
    with transaction.atomic():
        skip_wal_flush()
        claimed = shadows_claim(size)
        if not claimed:
            return ShadowRun()
        rows = list(
            Recommendation.objects.filter(pk__in=[rec for _, rec in claimed]).values_list(
                "pk", "experiment_key", "k", "candidate_log"
            )
        )
        ids = [pk for pk, *_ in rows]
        shadows = _shadows_of({key for _, key, _, _ in rows})
        served = _served_tools(ids)
        slates: list[ShadowSlate] = []
        unrankable = 0
        for pk, key, k, data in rows:
            try:
                logged = read_candidate_log(bytes(data)) if data else None
                if logged is None or not shadows.get(key):
                    raise ValueError("no candidate log" if logged is None else "no shadow variants")
                slates += shadow_slates(pk, key, shadows[key], logged, served.get(pk, []), k, state)
            except ValueError as exc:  # a shadow never fails the rest of the batch
                unrankable += 1
                log.warning("shadows cannot rank recommendation %s: %s", pk, exc)
        ShadowSlate.objects.bulk_create(slates, ignore_conflicts=True)
        ShadowPending.objects.filter(pk__in=[pk for pk, _ in claimed]).delete()
    return ShadowRun(len(claimed), len(slates), unrankable)


def shadows_claim(size: int) -> list[tuple[int, uuid.UUID]]:
    """The oldest queue rows nobody else holds, (row id, recommendation id), locked until the
    caller's transaction ends. Only the queue's rows are locked: a use reported meanwhile for
    one of these recommendations (the conversation's next turn) takes its foreign-key lock on
    the recommendation row, which no shadow run holds."""
    return list(
        ShadowPending.objects.select_for_update(skip_locked=True)
        .order_by("pk")
        .values_list("pk", "recommendation_id")[:size]
    )


def _shadows_of(keys: set[str]) -> dict[str, Shadows]:
    """Each experiment's shadow variants, as they are now (a running experiment's variants
    cannot be edited; a stopped one's pending requests are still ranked)."""
    out: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    variants = Variant.objects.filter(experiment__key__in=keys, role=Variant.Role.SHADOW).order_by("pk")
    for key, name, policy in variants.values_list("experiment__key", "name", "policy"):
        out[key].append((name, policy))
    return {key: tuple(v) for key, v in out.items()}


def _served_tools(ids: list[uuid.UUID]) -> dict[uuid.UUID, list[int]]:
    """The served slate of each recommendation: catalog tool ids in rank order."""
    out: dict[uuid.UUID, list[int]] = defaultdict(list)
    rows = Impression.objects.filter(recommendation_id__in=ids).order_by("recommendation_id", "rank")
    for rec_id, tool_id in rows.values_list("recommendation_id", "tool_id"):
        out[rec_id].append(tool_id)
    return out


def shadow_slates(
    recommendation_id: uuid.UUID,
    experiment_key: str,
    shadows: Shadows,
    logged: LoggedCandidates,
    served_tool_ids: list[int],
    k: int,
    state: RankingState | None,
) -> list[ShadowSlate]:
    """Each shadow's slate on the logged candidates, and its inclusion probability of every
    served tool (in the served rank order: the target side of the off-policy estimate; 0 for
    a served tool the log does not hold, such as a pinned tool outside the candidates)."""
    position = {int(t): i for i, t in enumerate(logged.tool_ids)}
    bandit = state.bandit if state is not None else None
    rows = []
    for name, raw in shadows:
        config = policy_config(raw)
        ltr_scores = None
        if state is not None and state.ranker_text and config.name in ("ltr", "hybrid"):
            ltr_scores = ltr_predict(state.ranker_text, logged.features)
        kwargs: dict[str, Any] = dict(
            retrieval_scores=logged.retrieval,
            k=k,
            config=config,
            bandit=bandit,
            ltr_scores=ltr_scores,
            rng=np.random.default_rng(),
        )
        slate, target = slate_with_inclusion(logged.features, **kwargs)
        rows.append(
            ShadowSlate(
                recommendation_id=recommendation_id,
                experiment_key=experiment_key,
                variant=name,
                policy=slate.policy,
                tool_ids=[int(logged.tool_ids[i]) for i in slate.order],
                served_target=[float(target[position[t]]) if t in position else 0.0 for t in served_tool_ids],
            )
        )
    return rows
