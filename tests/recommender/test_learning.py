from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest
from django.apps import apps as django_apps
from rest_framework.test import APIClient

from access.models import ApiKey
from catalog.models import Tool
from feedback.models import Impression, Recommendation, UsageEvent
from recommender.engine.bandit import LinearBanditState
from recommender.engine.features import FEATURE_INDEX
from recommender.indexing.models import IndexSnapshot
from recommender.learning.learner import learning_batch, learning_state_rebuild
from recommender.learning.models import LearningState, MemoryEntry, UserToolStats
from recommender.serving.holders import learned
from recommender.serving.services import recommendation_create

REC, FEEDBACK = "/api/v1/recommendations", "/api/v1/feedback"


def _recommend(api: APIClient, text: str, **extra: Any) -> dict[str, Any]:
    response = api.post(REC, {"messages": [{"role": "user", "content": text}], **extra}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def _use(api: APIClient, body: dict[str, Any], tool: str) -> None:
    response = api.post(
        FEEDBACK, {"recommendation_id": body["recommendation_id"], "tool": tool, "used": True}, format="json"
    )
    assert response.status_code == 201


def _latest_bandit() -> LinearBanditState:
    return LinearBanditState.from_bytes(bytes(LearningState.objects.order_by("-pk").first().bandit))


def test_a_batch_learns_uses_and_misses_once(api: APIClient, indexed: None) -> None:
    first = _recommend(api, "send an email to Bob", k=3, user_id="ann")
    _use(api, first, first["tools"][0]["name"])
    _recommend(api, "convert 20 dollars to euros", k=3)  # no use: three misses
    outcome = learning_batch(delay_seconds=0)
    assert outcome is not None and outcome.recommendations == 2 and outcome.events == 1
    bandit = _latest_bandit()
    assert bandit.n_updates == 6  # every shown tool, used or not
    assert MemoryEntry.objects.count() == 1
    stats = UserToolStats.objects.get(user_id="ann", tool__name=first["tools"][0]["name"])
    assert (stats.times_recommended, stats.times_used) == (1, 1)
    assert not Recommendation.objects.filter(learned_at=None).exists()
    assert not UsageEvent.objects.filter(learned_at=None).exists()
    assert learning_batch(delay_seconds=0) is None  # nothing is learned twice


def test_recent_recommendations_wait_for_their_feedback(api: APIClient, indexed: None) -> None:
    _recommend(api, "send an email to Bob", k=3)
    assert learning_batch(delay_seconds=3600) is None
    assert learning_batch(delay_seconds=0) is not None


def test_a_late_use_turns_the_learned_miss_into_a_use_exactly(api: APIClient, indexed: None) -> None:
    body = _recommend(api, "send an email to Bob", k=2)
    learning_batch(delay_seconds=0)
    before = _latest_bandit()
    _use(api, body, body["tools"][1]["name"])
    assert learning_batch(delay_seconds=0) is not None
    after = _latest_bandit()
    features = np.asarray(Impression.objects.get(recommendation_id=body["recommendation_id"], rank=2).features)
    assert np.allclose(after.A_inv, before.A_inv)  # the impression is not counted twice
    assert np.allclose(after.b, before.b + features)  # its reward went from 0 to 1
    serving_model = IndexSnapshot.objects.get(is_active=True).embedding_model
    assert list(MemoryEntry.objects.values_list("embedding_model", flat=True)) == [serving_model]


def test_the_state_can_be_rebuilt_from_the_log(api: APIClient, indexed: None) -> None:
    for text, tool_index in (("send an email", 0), ("what is the weather", 1), ("stock price of ACME", 0)):
        body = _recommend(api, text, k=3, user_id="u")
        _use(api, body, body["tools"][tool_index]["name"])
        learning_batch(delay_seconds=0)
    learned_once = _latest_bandit()
    memory_once = MemoryEntry.objects.count()
    learning_state_rebuild()
    again = _latest_bandit()
    assert np.allclose(again.A_inv, learned_once.A_inv) and np.allclose(again.b, learned_once.b)
    assert MemoryEntry.objects.count() == memory_once == 3


ASK_WEATHER = "weather in {} for the coming days"


def _agent_wants_current_weather(api: APIClient) -> None:
    """The agent always needs the current weather when asked about 'the weather in X'."""
    cities = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Delhi", "Quito", "Seoul", "Perth", "Dakar", "Hanoi", "Porto"]
    for round_ in range(3):
        for city in cities:
            body = _recommend(api, ASK_WEATHER.format(city), k=2, user_id=f"user-{round_}")
            if "weather_get_current" in [t["name"] for t in body["tools"]]:
                _use(api, body, "weather_get_current")
        learning_batch(delay_seconds=0)
    learned.reset()


def test_what_is_learned_changes_what_is_recommended(api: APIClient, indexed: None) -> None:
    """Semantic retrieval puts the forecast first; after feedback, the learned policy does not."""
    semantic = _recommend(api, ASK_WEATHER.format("Madrid"), k=1)
    assert semantic["tools"][0]["name"] == "weather_get_forecast"  # before any feedback
    _agent_wants_current_weather(api)
    assert _recommend(api, ASK_WEATHER.format("Madrid"), k=1)["tools"][0]["name"] == "weather_get_current"


def test_a_tool_similar_requests_used_is_recommended_when_retrieval_cuts_it(
    api: APIClient, indexed: None, settings: Any
) -> None:
    """With one retrieval candidate (the forecast), the learned tool can only come from the
    context memory: on for learning policies, never for the semantic baseline, and off with
    MEMORY_CANDIDATES=0."""
    _agent_wants_current_weather(api)
    settings.RECOMMEND_CANDIDATES = 1
    ask = ASK_WEATHER.format("Madrid")

    def top(policy: dict[str, Any]) -> str:
        result = recommendation_create(
            api_key=ApiKey.objects.get(),
            messages=[{"role": "user", "content": ask}],
            k=1,
            policy=policy,
            record=False,
        )
        return result.tools[0].name

    bandit = {"name": "bandit", "exploration": "none"}
    assert top(bandit) == "weather_get_current"
    assert top({"name": "semantic"}) == "weather_get_forecast"
    settings.MEMORY_CANDIDATES = 0
    assert top(bandit) == "weather_get_forecast"


def test_a_state_learned_over_other_features_is_not_served_and_learning_starts_over(
    api: APIClient, indexed: None
) -> None:
    LearningState.objects.create(bandit=LinearBanditState.initial(5).to_bytes())  # an older feature set
    learned.reset()
    body = _recommend(api, "send an email to Bob", k=3)  # the bandit policy must not fail on it
    assert len(body["tools"]) == 3
    _use(api, body, body["tools"][0]["name"])
    assert learning_batch(delay_seconds=0) is not None
    assert _latest_bandit().d != 5 and _latest_bandit().n_updates == 3


@pytest.mark.django_db(transaction=True)  # on PostgreSQL the signals are read on another connection
def test_a_users_history_and_co_use_reach_the_next_recommendations_features(api: APIClient, indexed: None) -> None:
    first = _recommend(api, "send an email to Bob", k=3, user_id="ann")
    email_tool = first["tools"][0]["name"]
    _use(api, first, email_tool)
    learning_batch(delay_seconds=0)  # per-user counts

    def features_of(body: dict[str, Any], tool: str) -> list[float]:
        impression = Impression.objects.get(recommendation_id=body["recommendation_id"], tool__name=tool)
        return impression.features

    again = _recommend(api, "send an email to Carol", k=3, user_id="ann")
    stranger = _recommend(api, "send an email to Carol", k=3, user_id="bob")
    index = FEATURE_INDEX["user_log_uses"]
    assert features_of(again, email_tool)[index] > 0 and features_of(stranger, email_tool)[index] == 0

    # co-use: a tool used after the email tool in a conversation is boosted after a later call of it
    call = {
        "role": "assistant",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": email_tool, "arguments": "{}"}}],
    }
    messages = [
        {"role": "user", "content": "send an email to Bob"},
        call,
        {"role": "tool", "tool_call_id": "c1", "content": "sent"},
    ]
    follow = api.post(
        REC, {"messages": [*messages, {"role": "user", "content": "and what is the weather"}], "k": 3}, format="json"
    ).json()
    _use(api, follow, follow["tools"][0]["name"])
    learning_batch(delay_seconds=0)
    later = api.post(
        REC, {"messages": [*messages, {"role": "user", "content": "and what is the weather"}], "k": 3}, format="json"
    ).json()
    assert features_of(later, follow["tools"][0]["name"])[FEATURE_INDEX["co_use"]] > 0


def test_contexts_of_another_model_of_the_same_size_are_not_compared(api: APIClient, indexed: None) -> None:
    """Two embedding models of one dimension live in different spaces: after a switch, the
    old model's contexts must not vote or add candidates, and the new model's replace them."""
    _agent_wants_current_weather(api)
    serving_model = IndexSnapshot.objects.get(is_active=True).embedding_model
    assert set(MemoryEntry.objects.values_list("embedding_model", flat=True)) == {serving_model}
    votes = FEATURE_INDEX["votes_log"]

    def shown_votes(body: dict[str, Any]) -> list[float]:
        rec = body["recommendation_id"]
        return [f[votes] for f in Impression.objects.filter(recommendation_id=rec).values_list("features", flat=True)]

    assert max(shown_votes(_recommend(api, ASK_WEATHER.format("Madrid"), k=2))) > 0
    entries = MemoryEntry.objects.count()
    MemoryEntry.objects.update(embedding_model="hosted/another-384-model")  # same vectors, same size
    learned.reset()

    body = _recommend(api, ASK_WEATHER.format("Lisbon"), k=2)

    assert learned.get().memory.model == "hosted/another-384-model" and len(learned.get().memory) == entries
    assert shown_votes(body) == [0.0, 0.0]  # kept, but not read
    _use(api, body, body["tools"][0]["name"])
    learning_batch(delay_seconds=0)
    learned.reset()
    state = learned.get()
    assert state.memory.model == serving_model and len(state.memory) == 1  # the serving model's context only
    assert max(shown_votes(_recommend(api, ASK_WEATHER.format("Lisbon"), k=2))) > 0


def test_the_upgrade_names_existing_contexts_after_the_serving_model(indexed: None) -> None:
    migration = importlib.import_module("recommender.migrations.0004_memoryentry_embedding_model")
    tool = Tool.objects.get(name="weather_get_current")
    MemoryEntry.objects.create(tool=tool, vector=np.ones(4, dtype=np.float32).tobytes())
    MemoryEntry.objects.create(tool=tool, vector=np.ones(4, dtype=np.float32).tobytes(), embedding_model="kept")

    migration.name_existing_entries(django_apps, None)

    serving_model = IndexSnapshot.objects.get(is_active=True).embedding_model
    assert sorted(MemoryEntry.objects.values_list("embedding_model", flat=True)) == sorted(["kept", serving_model])


def test_a_memory_of_another_embedding_model_is_set_aside_not_served(api: APIClient, indexed: None) -> None:
    """After EMBEDDING_MODEL changes, the stored contexts have another dimension: requests
    are still served (without votes or learned recall) and the new model's contexts win."""
    tool = Tool.objects.get(name="weather_get_current")
    old = np.full(8, 1 / np.sqrt(8), dtype=np.float32)
    MemoryEntry.objects.bulk_create([MemoryEntry(tool=tool, vector=old.tobytes()) for _ in range(3)])
    learning_batch(delay_seconds=0)  # publishes a state for the memory to ride on
    learned.reset()

    body = _recommend(api, ASK_WEATHER.format("Madrid"), k=2)

    assert body["policy"] == "bandit"
    assert learned.get().memory.dim == 8  # nothing newer yet: kept, but not read
    _use(api, body, body["tools"][0]["name"])
    learning_batch(delay_seconds=0)
    learned.reset()
    state = learned.get()
    assert state.memory.dim != 8 and len(state.memory) == 1  # the new model's context only


def test_shadows_rank_with_the_newest_bandit_and_reuse_it_until_then(db: None) -> None:
    """ranking_state_load: the shadow worker's bandit and ranker, without the memory."""
    from recommender.engine.bandit import LinearBanditState
    from recommender.engine.features import N_FEATURES
    from recommender.learning.models import LearningState, RankerModel
    from recommender.learning.state import ranking_state_load

    assert ranking_state_load(None) is None
    first = LinearBanditState.initial(N_FEATURES)
    LearningState.objects.create(bandit=first.to_bytes())
    loaded = ranking_state_load(None)
    assert loaded is not None and loaded.ranker_text is None
    assert np.array_equal(loaded.bandit.A_inv, first.A_inv)
    assert ranking_state_load(loaded) is loaded  # nothing newer: the same object
    newer = LearningState.objects.create(bandit=LinearBanditState.initial(N_FEATURES, ridge=2.0).to_bytes())
    again = ranking_state_load(loaded)
    assert again is not None and again.version == newer.pk
    assert np.array_equal(again.bandit.A_inv, np.eye(N_FEATURES) / 2)
    RankerModel.objects.create(model_text="tree", is_active=True)
    with_ranker = ranking_state_load(again)
    assert with_ranker is not None and with_ranker.ranker_text == "tree"
    assert with_ranker.bandit is again.bandit  # the same version: not loaded again
