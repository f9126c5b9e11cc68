"""Isolated learning per variant (issue 12, item 7): an isolated variant learns only from
the feedback on what it served and is served from that state; the shared state learns from
all traffic, as if no variant were isolated."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.db.models import F
from rest_framework.test import APIClient

from experiments.models import Experiment, Variant
from experiments.selectors import assignment_for, reset_cache
from experiments.services import VariantSpec, experiment_create, experiment_promote, experiment_start, experiment_stop
from feedback.models import Impression, Recommendation
from recommender.engine.bandit import LinearBanditState
from recommender.engine.features import FEATURE_INDEX, N_FEATURES
from recommender.learning.learner import learning_batch, learning_state_rebuild
from recommender.learning.models import IsolatedLearningState, LearningState
from recommender.learning.state import ToolStatsTable
from recommender.serving.holders import isolated, learned
from tests.conftest import small_catalog_jsonl
from toolrec_site.errors import ToolrecError

REC, FEEDBACK = "/api/v1/recommendations", "/api/v1/feedback"
GREEDY = {"name": "bandit", "exploration": "none", "tool_bonus": 0.0}
QUERIES = ["send an email to Bob", "what's the weather in Paris", "convert 20 dollars to euros", "list my meetings"]


def _start(key: str = "iso", learning: tuple[str, str] = ("isolated", "isolated")) -> Experiment:
    experiment = experiment_create(
        key=key,
        variants=[
            VariantSpec("a", GREEDY, is_control=True, learning=learning[0]),
            VariantSpec("b", GREEDY, learning=learning[1]),
        ],
        actor="test",
    )
    experiment_start(experiment=experiment, actor="test")
    reset_cache()
    return experiment


def _users_of(variant: str, n: int = 3) -> list[str]:
    users = [f"user-{i}" for i in range(200)]
    found = [u for u in users if assignment_for(user_id=u, conversation_id="").variant == variant]
    assert len(found) >= n
    return found[:n]


def _serve_and_use(api: APIClient, users: list[str]) -> list[dict[str, Any]]:
    """A recommendation per user and query; the first tool shown is used."""
    bodies = []
    for user in users:
        for query in QUERIES:
            response = api.post(
                REC, {"messages": [{"role": "user", "content": query}], "user_id": user, "k": 3}, format="json"
            )
            assert response.status_code == 200, response.json()
            body = response.json()
            used = api.post(
                FEEDBACK,
                {"recommendation_id": body["recommendation_id"], "tool": body["tools"][0]["name"], "used": True},
                format="json",
            )
            assert used.status_code == 201
            bodies.append(body)
    return bodies


def _bandit(data: Any) -> LinearBanditState:
    return LinearBanditState.from_bytes(bytes(data))


def _own(variant: str, key: str = "iso") -> IsolatedLearningState:
    return IsolatedLearningState.objects.get(experiment_key=key, variant=variant)


def _shared() -> LinearBanditState:
    return _bandit(LearningState.objects.order_by("-pk").first().bandit)


def _learned_sums(bodies: list[dict[str, Any]]) -> tuple[int, np.ndarray]:
    """What folding these recommendations must add: one update per tool shown, and to b the
    features of each used (first) tool, reward 1."""
    ids = [b["recommendation_id"] for b in bodies]
    shown = Impression.objects.filter(recommendation_id__in=ids).count()
    used = np.zeros(N_FEATURES)
    for body in bodies:
        impression = Impression.objects.get(recommendation_id=body["recommendation_id"], rank=1)
        used += np.asarray(impression.features)
    return shown, used


def test_feedback_on_variant_a_never_moves_bs_own_weights_and_the_shared_state_learns_all(
    api: APIClient, indexed: None
) -> None:
    _start()
    shared_before = _shared()
    b_seed = _bandit(_own("b").bandit)
    served_a = _serve_and_use(api, _users_of("a"))
    assert {body["variant"] for body in served_a} == {"a"}
    assert learning_batch(delay_seconds=0) is not None

    a, b = _own("a"), _own("b")
    shown_a, used_a = _learned_sums(served_a)
    assert (b.version, bytes(b.bandit), b.recommendations_learned) == (1, b_seed.to_bytes(), 0)  # untouched
    own_a = _bandit(a.bandit)
    assert a.version == 2 and a.recommendations_learned == len(served_a)
    assert own_a.n_updates == shown_a and np.allclose(own_a.b, used_a)

    # One batch with both arms' traffic: each state takes its own part only.
    served_b = _serve_and_use(api, _users_of("b"))
    more_a = _serve_and_use(api, _users_of("a")[:1])
    assert learning_batch(delay_seconds=0) is not None
    shown_b, used_b = _learned_sums(served_b)
    shown_more, used_more = _learned_sums(more_a)
    own_b, own_a = _bandit(_own("b").bandit), _bandit(_own("a").bandit)
    assert own_b.n_updates == shown_b and np.allclose(own_b.b, used_b)
    assert own_a.n_updates == shown_a + shown_more and np.allclose(own_a.b, used_a + used_more)
    # The shared state learned every recommendation of both arms, as without isolation.
    shared = _shared()
    assert shared.n_updates - shared_before.n_updates == shown_a + shown_b + shown_more
    assert np.allclose(shared.b - shared_before.b, used_a + used_b + used_more)
    # An arm's own per-tool counts (features of its bandit) hold its shows and uses only.
    a_stats, b_stats = (_own(v).tool_stats for v in ("a", "b"))
    assert a_stats is not None and b_stats is not None
    a_counts, b_counts = ToolStatsTable.from_bytes(bytes(a_stats)), ToolStatsTable.from_bytes(bytes(b_stats))
    assert a_counts.shows.sum() == shown_a + shown_more and a_counts.uses.sum() == len(served_a) + len(more_a)
    assert b_counts.shows.sum() == shown_b and b_counts.uses.sum() == len(served_b)


def test_an_isolated_variant_is_served_from_its_own_state(api: APIClient, indexed: None) -> None:
    _start()
    # a's own bandit prefers the least relevant tools: only its state can make that choice
    contrary = np.zeros(N_FEATURES)
    contrary[FEATURE_INDEX["dense"]] = contrary[FEATURE_INDEX["fused_rel"]] = -50.0
    state = LinearBanditState(d=N_FEATURES, A_inv=np.eye(N_FEATURES), b=contrary, n_updates=1, version=1)
    IsolatedLearningState.objects.filter(variant="a").update(bandit=state.to_bytes(), version=F("version") + 1)
    isolated.reset()

    def first_tool(user: str) -> str:
        body = api.post(
            REC,
            {"messages": [{"role": "user", "content": "send an email to Bob"}], "user_id": user, "k": 3},
            format="json",
        ).json()
        return str(body["tools"][0]["name"])

    assert first_tool(_users_of("b")[0]) == "mail_send"  # b: its own copy of the shared state
    assert first_tool(_users_of("a")[0]) != "mail_send"  # a: its own, contrary weights


def test_stopping_stops_serving_the_own_states_and_promoting_keeps_the_shared_one(
    api: APIClient, indexed: None
) -> None:
    experiment = _start()
    _serve_and_use(api, _users_of("a", 1))
    assert isolated.get() is not None and set(isolated.get() or {}) == {("iso", "a"), ("iso", "b")}
    shared_version = LearningState.objects.order_by("-pk").first().pk
    experiment_promote(experiment=experiment, variant_name="b", actor="test")
    assert not IsolatedLearningState.objects.filter(serving=True).exists()
    assert LearningState.objects.order_by("-pk").first().pk == shared_version  # nothing adopted
    isolated.reset()
    assert isolated.get() == {}
    # Feedback still arriving on what a served is learned into its (stopped) state.
    assert learning_batch(delay_seconds=0) is not None
    assert _own("a").recommendations_learned == len(QUERIES)
    # A new experiment with the same key (the old one deleted) starts from fresh seeds.
    Experiment.objects.filter(pk=experiment.pk).delete()
    _start()
    assert _own("a").version == 1 and _own("a").serving


def test_a_rebuild_relearns_each_own_state_from_its_seed(api: APIClient, indexed: None) -> None:
    _start()
    _serve_and_use(api, _users_of("a", 2) + _users_of("b", 2))
    learning_batch(delay_seconds=0)
    before = {v: _bandit(_own(v).bandit) for v in ("a", "b")}
    learning_state_rebuild()
    for variant, bandit in before.items():
        again = _bandit(_own(variant).bandit)
        assert again.n_updates == bandit.n_updates and np.allclose(again.b, bandit.b)
        assert np.allclose(again.A_inv, bandit.A_inv)


def test_a_shared_variant_learns_nothing_of_its_own(api: APIClient, indexed: None) -> None:
    _start(learning=("shared", "isolated"))
    assert list(IsolatedLearningState.objects.values_list("variant", flat=True)) == ["b"]
    assert not assignment_for(user_id=_users_of("a")[0], conversation_id="").isolated
    _serve_and_use(api, _users_of("a", 1))
    learning_batch(delay_seconds=0)
    assert _own("b").version == 1
    assert Recommendation.objects.filter(variant="a").count() == len(QUERIES)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("variant", "message"),
    [
        (VariantSpec("b", "semantic", learning="isolated"), "variants.b.learning: the semantic policy"),
        (VariantSpec("b", "bandit", role="shadow", learning="isolated"), "variants.b.learning: a shadow"),
        (VariantSpec("b", "bandit", learning="alone"), "variants.b.learning: must be one of"),
    ],
)
def test_isolation_that_could_learn_nothing_is_refused(variant: VariantSpec, message: str) -> None:
    with pytest.raises(ToolrecError) as caught:
        experiment_create(key="e", variants=[VariantSpec("a", "semantic"), variant], actor="t")
    assert caught.value.message.startswith(message)
    assert not Variant.objects.exists()


@pytest.mark.django_db
def test_a_stopped_experiment_closes_its_states_and_keeps_them() -> None:
    experiment = experiment_create(
        key="e", variants=[VariantSpec("a", "semantic"), VariantSpec("b", "bandit", learning="isolated")], actor="t"
    )
    experiment_start(experiment=experiment, actor="t")
    assert experiment.events.get(action="started").details == {"isolated": ["b"]}
    experiment_stop(experiment=experiment, actor="t")
    row = IsolatedLearningState.objects.get()
    assert not row.serving and bytes(row.seed_bandit) == bytes(row.bandit)


@pytest.mark.django_db(transaction=True)  # the replay's HTTP server answers from its own thread and connection
def test_simulate_isolated_gives_the_learner_its_own_state(tmp_path: Path) -> None:
    """`simulate --experiment semantic,bandit --isolated`: the bandit arm learns alone (the
    semantic arm reads nothing learned and stays shared)."""
    (tmp_path / "tools.jsonl").write_text(small_catalog_jsonl())
    queries = [
        {"qid": f"q{i}", "query": f"weather in city {i} right now", "relevant": ["weather_get_current"]}
        for i in range(20)
    ]
    (tmp_path / "q.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    call_command(
        "simulate",
        *("--tools", str(tmp_path / "tools.jsonl"), "--queries", str(tmp_path / "q.jsonl")),
        *("--k", "1", "--batch", "20", "--seed", "3", "--steps", "200", "--users", "100"),
        *("--policies", "semantic,bandit", "--experiment", "semantic,bandit", "--isolated"),
        *("--in-current-database", "--json", str(tmp_path / "exp.json")),
        stdout=StringIO(),
    )
    key = json.loads((tmp_path / "exp.json").read_text())["experiment"]
    own = IsolatedLearningState.objects.get(experiment_key=key)
    assert own.variant == "bandit" and own.serving
    served = Recommendation.objects.filter(experiment_key=key, variant="bandit").count()
    assert 0 < own.recommendations_learned == served
    assert _bandit(own.bandit).n_updates == served  # k = 1: one impression each


def test_a_process_serves_a_new_own_state_once_it_is_published(indexed: None) -> None:
    _start()
    shared = LearningState.objects.order_by("-pk").first()
    first = isolated.served(learned.get(), "iso", "a")
    assert first is not None and first is isolated.served(learned.get(), "iso", "a")  # built once
    assert first.memory is learned.get().memory  # the shared memory, not a copy
    newer = LinearBanditState.initial(N_FEATURES)
    newer = LinearBanditState(d=N_FEATURES, A_inv=newer.A_inv, b=np.ones(N_FEATURES), n_updates=7, version=3)
    IsolatedLearningState.objects.filter(variant="a").update(bandit=newer.to_bytes(), version=F("version") + 1)
    served = isolated.served(learned.get(), "iso", "a")
    assert served is not None and served.bandit.n_updates == 7 and np.allclose(served.bandit.b, 1.0)
    assert served.version == shared.pk  # the shared version it is combined with
    assert isolated.served(learned.get(), "iso", "missing") is learned.get()  # no own state: the shared one


def _admin_add(admin_client: Any, policy: str, learning: str) -> str:
    response = admin_client.post(
        "/admin/experiments/experiment/add/",
        {
            **{"key": "e", "name": "E", "unit": "user", "traffic_start": "0", "traffic_end": "1"},
            **{"allocation": "fixed", "min_share": "0.1", "ramp": "[]", "guardrails": "{}"},
            **{"variants-TOTAL_FORMS": "2", "variants-INITIAL_FORMS": "0"},
            **{"variants-0-name": "control", "variants-0-policy": '"semantic"', "variants-0-weight": "1"},
            **{"variants-0-is_control": "on", "variants-0-role": "live", "variants-0-learning": "shared"},
            **{"variants-1-name": "t", "variants-1-policy": policy, "variants-1-weight": "1"},
            **{"variants-1-role": "live", "variants-1-learning": learning},
            **{"events-TOTAL_FORMS": "0", "events-INITIAL_FORMS": "0"},
        },
    )
    return str(response.content.decode())


@pytest.mark.django_db
def test_the_admin_checks_a_variants_learning_and_keeps_it_while_running(admin_client: Any) -> None:
    from experiments.admin import VariantForm

    assert "the semantic policy reads nothing learned" in _admin_add(admin_client, '"semantic"', "isolated")
    assert not Experiment.objects.exists()
    _admin_add(admin_client, '{"name": "bandit"}', "isolated")
    variant = Variant.objects.get(name="t")
    assert variant.learning == "isolated"
    experiment_start(experiment=variant.experiment, actor="t")
    data = {"name": "t", "role": "live", "policy": '{"name": "bandit"}', "weight": "1", "learning": "shared"}
    form = VariantForm(instance=variant, data=data)
    assert not form.is_valid() and "seeded at start" in str(form.errors["learning"])
