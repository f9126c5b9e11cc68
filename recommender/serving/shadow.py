"""Shadow variants: ranked on the request the served policy just answered, after the answer
is ready, on one background thread per process, and their slates logged (ShadowSlate) for
the experiment's shadow results (experiments.shadow_results).

A shadow reuses the request's candidates and feature matrix, so it costs one policy pass
(`choose_slate` and `inclusion_probabilities`, plus LambdaMART scores for ltr), not a second
retrieval. The queue is bounded: when shadows fall behind, new jobs are dropped (counted)
rather than let memory grow or slow the served path."""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.db import close_old_connections, transaction

from experiments.models import ShadowSlate
from recommender.engine.ltr import predict as ltr_predict
from recommender.engine.policy import choose_slate, inclusion_probabilities
from recommender.engine.types import FloatArray, IntArray
from recommender.learning.state import LearnedState
from recommender.serving.ranking import policy_config

log = logging.getLogger(__name__)
MAX_PENDING = 256


@dataclass(frozen=True, eq=False)
class ShadowJob:
    recommendation_id: uuid.UUID
    experiment_key: str
    shadows: tuple[tuple[str, dict[str, Any]], ...]
    features: FloatArray
    retrieval_scores: FloatArray
    tool_ids: IntArray  # catalog ids of the candidates
    served_order: IntArray  # the served slate, as candidate indices
    k: int
    learned: LearnedState | None


class _Queue:
    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.pending = 0
        self.dropped = 0

    def submit(self, job: ShadowJob) -> None:
        with self._lock:
            if self.pending >= MAX_PENDING:
                self.dropped += 1
                return
            self.pending += 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow")
            executor = self._executor
        executor.submit(self._run, job)

    def _run(self, job: ShadowJob) -> None:
        try:
            shadow_run(job)
        except Exception:  # a shadow never fails anything served
            log.exception("shadow ranking failed for %s", job.recommendation_id)
        finally:
            close_old_connections()
            with self._lock:
                self.pending -= 1


queue = _Queue()


def shadow_schedule(job: ShadowJob) -> None:
    """Rank the shadows once the served recommendation is committed (off the response's path);
    inline when background threads are off (tests)."""
    if not job.shadows:
        return
    if not settings.BACKGROUND_THREADS:
        shadow_run(job)
        return
    transaction.on_commit(lambda: queue.submit(job))


def shadow_run(job: ShadowJob) -> list[ShadowSlate]:
    rows = []
    bandit = job.learned.bandit if job.learned is not None else None
    for name, raw in job.shadows:
        config = policy_config(raw)
        ltr_scores = None
        if job.learned is not None and job.learned.ranker_text and config.name in ("ltr", "hybrid"):
            ltr_scores = ltr_predict(job.learned.ranker_text, job.features)
        rng = np.random.default_rng()
        kwargs: dict[str, Any] = dict(
            retrieval_scores=job.retrieval_scores, k=job.k, config=config, bandit=bandit, ltr_scores=ltr_scores, rng=rng
        )
        slate = choose_slate(job.features, **kwargs)
        target = inclusion_probabilities(job.features, **kwargs)
        rows.append(
            ShadowSlate(
                recommendation_id=job.recommendation_id,
                experiment_key=job.experiment_key,
                variant=name,
                policy=slate.policy,
                tool_ids=[int(job.tool_ids[i]) for i in slate.order],
                served_target=[float(target[i]) for i in job.served_order],
            )
        )
    return ShadowSlate.objects.bulk_create(rows)
