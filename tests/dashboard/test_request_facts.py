"""What the request path now logs for the dashboard: cache hits, exploratory picks, whether
the user's history changed the slate, and the best similarity."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from rest_framework.test import APIClient

from feedback.models import Impression, Recommendation
from recommender.engine.bandit import LinearBanditState
from recommender.engine.conversation import read_conversation
from recommender.engine.features import FEATURE_INDEX, N_FEATURES
from recommender.engine.memory import ContextMemory
from recommender.engine.policy import PolicyConfig
from recommender.engine.types import Candidates
from recommender.learning.state import LearnedState
from recommender.serving.ranking import rank
from recommender.serving.request_signals import RequestSignals

URL = "/api/v1/recommendations"


def _ask(api: APIClient, text: str, **extra: Any) -> Recommendation:
    response = api.post(URL, {"messages": [{"role": "user", "content": text}], **extra}, format="json")
    assert response.status_code == 200, response.json()
    return Recommendation.objects.get(pk=response.json()["recommendation_id"])


def test_the_second_identical_request_is_answered_by_the_embedding_cache(api: APIClient, indexed: None) -> None:
    _ask(api, "what is the weather in Lisbon on friday")
    again = _ask(api, "what is the weather in Lisbon on friday")
    assert again.embed_cache_lookups >= 1
    assert again.embed_cache_hits == again.embed_cache_lookups


def test_the_best_similarity_is_logged_and_higher_for_a_matching_request(api: APIClient, indexed: None) -> None:
    good = _ask(api, "send an email to my colleague about the meeting")
    poor = _ask(api, "zxq vortl plim")
    assert good.best_similarity is not None and poor.best_similarity is not None
    assert good.best_similarity > poor.best_similarity


def test_exploratory_picks_are_marked_on_their_impressions(api: APIClient, indexed: None) -> None:
    policy = {"name": "bandit", "exploration": "epsilon", "epsilon": 1.0}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("django.conf.settings.RECOMMEND_POLICY", policy)
        recommendation = _ask(api, "convert 100 dollars to euros", k=3)
    explored = list(Impression.objects.filter(recommendation=recommendation).values_list("explored", flat=True))
    assert len(explored) == 3 and any(explored)


def _state(user_weight: float) -> LearnedState:
    b = np.zeros(N_FEATURES)
    b[FEATURE_INDEX["user_log_uses"]] = user_weight
    bandit = LinearBanditState(d=N_FEATURES, A_inv=np.eye(N_FEATURES), b=b, n_updates=1, version=1)
    return LearnedState(1, bandit, ContextMemory(4, max_size=10), 0, None, None, None)


def _rank(config: PolicyConfig, history: dict[int, tuple[int, int]], learned: LearnedState) -> Any:
    n = 6
    return rank(
        candidates=Candidates(
            rows=np.arange(n),
            dense=np.linspace(0.9, 0.4, n, dtype=np.float32),
            sparse=np.zeros(n, dtype=np.float32),
            fused=np.linspace(1.0, 0.5, n, dtype=np.float32),
        ),
        tool_ids=np.arange(100, 100 + n),
        context=read_conversation([{"role": "user", "content": "hello"}]),
        query_vector=np.zeros(4, dtype=np.float32),
        memory=None,
        called_ids=[],
        user_id="u1",
        k=2,
        config=config,
        learned=learned,
        rng=np.random.default_rng(7),
        signals=RequestSignals(user=history, co_use={}),
    )


@pytest.mark.django_db
def test_a_slate_the_users_history_changed_is_marked_personalized() -> None:
    bandit = PolicyConfig(name="bandit", exploration="none")
    lifted = _rank(bandit, {105: (20, 20)}, _state(10.0))
    assert 5 in lifted.slate.order and lifted.personalized
    # the same history on a tool the slate holds anyway changes nothing
    assert not _rank(bandit, {100: (20, 20)}, _state(10.0)).personalized
    # the semantic policy ignores the history
    assert not _rank(PolicyConfig(name="semantic"), {105: (20, 20)}, _state(10.0)).personalized
    assert not _rank(bandit, {}, _state(10.0)).personalized
