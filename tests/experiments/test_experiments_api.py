"""The experiments API (/api/v1/experiments): the lifecycle through HTTP with an operator's
key, the same services as the admin, the one error shape for whatever a client gets wrong."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from access.services import api_key_create
from experiments.models import Experiment, ExperimentEvent, PolicyVersion
from recommender.learning.models import IsolatedLearningState
from toolrec_site.env import Rate

URL = "/api/v1/experiments"
AB = {
    "key": "ab",
    "variants": [
        {"name": "control", "policy": "semantic", "is_control": True},
        {"name": "treatment", "policy": {"name": "bandit", "alpha": 0.3}, "learning": "isolated"},
    ],
}


@pytest.fixture
def ops(db: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='ops', scopes=['experiments'])[1]}")
    return client


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.json()
    body: dict[str, Any] = response.json()
    return body


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.json()
    error = response.json()["error"]
    assert error["code"] and error["message"]
    return str(error["message"])


def test_only_an_operators_key_may_see_or_run_experiments(api: APIClient, ops: APIClient) -> None:
    """A tenant's ordinary key (recommend, feedback, catalog:write) cannot read or change what
    every tenant is served; the experiments scope can, and so can admin."""
    for method, path in [("get", URL), ("post", URL), ("get", f"{URL}/ab"), ("get", f"{URL}/default-policy")]:
        assert _error(getattr(api, method)(path, {}, format="json"), 403).endswith("'experiments' scope.")
    assert APIClient().get(URL).status_code == 401
    _ok(ops.post(URL, AB, format="json"), 201)
    admin = APIClient()
    admin.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='root', scopes=['admin'])[1]}")
    assert [e["key"] for e in _ok(admin.get(URL))["results"]] == ["ab"]


def test_an_experiment_runs_its_lifecycle_through_the_api(
    ops: APIClient, api: APIClient, indexed: None, django_assert_max_num_queries: Any
) -> None:
    created = _ok(ops.post(URL, {**AB, "name": "A/B", "traffic_end": 0.5}, format="json"), 201)
    assert created["status"] == "draft" and created["traffic_end"] == 0.5
    assert [(v["name"], v["is_control"], v["learning"]) for v in created["variants"]] == [
        ("control", True, "shared"),
        ("treatment", False, "isolated"),
    ]
    assert created["variants"][1]["policy"] == {"name": "bandit", "alpha": 0.3}
    assert created["events"][0]["action"] == "created" and created["events"][0]["actor"].startswith("api key ops")

    started = _ok(ops.post(f"{URL}/ab/start"))
    assert started["status"] == "running" and started["started_at"]
    assert IsolatedLearningState.objects.filter(experiment_key="ab", variant="treatment", serving=True).exists()
    served = [
        api.post(
            "/api/v1/recommendations",
            {"messages": [{"role": "user", "content": "send an email"}], "user_id": f"u{i}"},
            format="json",
        ).json()
        for i in range(30)
    ]
    assert {s["experiment"] for s in served} == {"ab", ""}  # half the units are outside its slice

    with django_assert_max_num_queries(6):
        listed = _ok(ops.get(URL, {"status": "running"}))
    assert listed["count"] == 1 and listed["results"][0]["variants"][1]["name"] == "treatment"
    with django_assert_max_num_queries(6):
        _ok(ops.get(f"{URL}/ab"))
    results = _ok(ops.get(f"{URL}/ab/results", {"over_time": 3}))
    assert results["experiment"] == "ab" and results["status"] == "running"
    assert sum(v["recommendations"] for v in results["variants"]) == sum(s["experiment"] == "ab" for s in served)
    assert {"srm", "comparisons", "verdict", "verdict_text", "effect_over_time"} <= set(results)

    stopped = _ok(ops.post(f"{URL}/ab/stop", {"reason": "enough"}, format="json"))
    assert stopped["status"] == "stopped" and stopped["stop_reason"] == "enough"
    assert not IsolatedLearningState.objects.filter(serving=True).exists()
    assert _error(ops.post(f"{URL}/ab/stop"), 409) == "ab is not running (stopped)"
    assert _error(ops.post(f"{URL}/ab/start"), 409).startswith("ab is stopped")


def test_promote_then_roll_back_the_default_policy(ops: APIClient, db: None) -> None:
    _ok(ops.post(URL, AB, format="json"), 201)
    _ok(ops.post(f"{URL}/ab/start"))
    assert _ok(ops.get(f"{URL}/default-policy"))["version"] == 0  # RECOMMEND_POLICY serves
    promoted = _ok(ops.post(f"{URL}/ab/promote", {"variant": "treatment"}, format="json"))
    assert promoted["experiment"]["status"] == "stopped"
    assert promoted["default_policy"]["policy"] == {"name": "bandit", "alpha": 0.3}
    assert promoted["default_policy"]["version"] == 2 and promoted["default_policy"]["replaces"] == 1
    rolled = _ok(ops.post(f"{URL}/default-policy/rollback"))
    assert rolled["version"] == 3 and rolled["policy"] == PolicyVersion.objects.get(version=1).policy
    assert [v["version"] for v in rolled["history"]] == [3, 2, 1]
    actions = list(ExperimentEvent.objects.filter(experiment__key="ab").values_list("action", flat=True))
    assert "promoted" in actions


def test_rolling_back_with_no_earlier_default_is_a_conflict(ops: APIClient) -> None:
    assert _error(ops.post(f"{URL}/default-policy/rollback"), 409).startswith("There is no earlier default")


def _variants(**treatment: Any) -> dict[str, Any]:
    return {"key": "bad", "variants": [{"name": "control", "policy": "semantic"}, {"name": "t", **treatment}]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_variants(policy={"name": "bandit", "aplha": 0.3}), "variants.t.policy.aplha: unknown field"),
        (_variants(policy={"name": "bandit", "alpha": "wide"}), "variants.t.policy.alpha: must be a float"),
        (_variants(policy="bandot"), "variants.t.policy: unknown preset 'bandot'"),
        (_variants(policy=7), "variants.t.policy: must be a JSON object or a preset name"),
        (_variants(policy="bandit", weight="1"), "variants: "),
        (_variants(policy="bandit", is_control="yes"), "variants: "),
        (_variants(policy="semantic", learning="isolated"), "variants.t.learning: the semantic policy"),
        (_variants(policy="bandit", learning="alone"), "variants: "),
        ({**_variants(policy="bandit"), "traffic_start": "0"}, "traffic_start: "),
        ({**_variants(policy="bandit"), "traffic_start": 0.5, "traffic_end": 0.5}, "traffic: the slice"),
        ({**_variants(policy="bandit"), "key": "not a slug"}, "key: "),
        ({**_variants(policy="bandit"), "key": "default-policy"}, "key: 'default-policy' is reserved"),
        ({**_variants(policy="bandit"), "ramp": [{"share": 2}]}, "ramp[0].share: must be a number in (0, 1]"),
        ({**_variants(policy="bandit"), "guardrails": {"max_p99": 3}}, "guardrails.max_p99: unknown field"),
        ({"key": "bad", "variants": []}, "variants: "),
        ({"key": "bad"}, "variants: This field is required."),
    ],
)
def test_a_bad_experiment_is_a_400_naming_what_is_wrong(ops: APIClient, body: dict[str, Any], message: str) -> None:
    assert _error(ops.post(URL, body, format="json"), 400).startswith(message)
    assert not Experiment.objects.exists()


def test_unknown_keys_and_variants_and_bad_bodies_are_4xx(ops: APIClient) -> None:
    for path in ("nope", "nope/results"):
        assert _error(ops.get(f"{URL}/{path}"), 404) == "No experiment 'nope'."
    for action in ("start", "stop", "promote"):
        assert _error(ops.post(f"{URL}/nope/{action}", {"variant": "x"}, format="json"), 404)
    _ok(ops.post(URL, AB, format="json"), 201)
    assert _error(ops.post(URL, AB, format="json"), 409) == "key: an experiment 'ab' exists already"
    assert _error(ops.post(f"{URL}/ab/promote", {"variant": "nope"}, format="json"), 400).startswith("variant: ab has")
    assert _error(ops.post(f"{URL}/ab/promote", {"variant": 3}, format="json"), 400).startswith("variant: ")
    assert _error(ops.post(f"{URL}/ab/stop", {"reason": ["x"]}, format="json"), 400).startswith("reason: ")
    assert _error(ops.get(URL, {"status": "paused"}), 400).startswith("status: ")
    assert _error(ops.get(f"{URL}/ab/results", {"over_time": "many"}), 400).startswith("over_time: ")
    assert _error(ops.post(URL, "[1]", content_type="application/json"), 400)


def test_the_experiments_api_has_its_own_rate_limit(ops: APIClient, settings: Any) -> None:
    cache.clear()
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "experiments": Rate(2, 60)}
    assert ops.get(URL).status_code == 200 and ops.get(URL).status_code == 200
    limited = ops.get(URL)
    assert limited.status_code == 429 and int(limited["Retry-After"]) >= 1
    assert limited.json()["error"]["code"] == "throttled"


def test_the_schema_documents_every_operation_with_its_scope_error(db: None) -> None:
    schema = APIClient().get("/api/v1/schema", {"format": "json"}).json()
    operations = {
        (path, method): op
        for path, ops in schema["paths"].items()
        if "/experiments" in path
        for method, op in ops.items()
    }
    assert set(operations) == {
        (URL, "get"),
        (URL, "post"),
        (f"{URL}/{{key}}", "get"),
        (f"{URL}/{{key}}/start", "post"),
        (f"{URL}/{{key}}/stop", "post"),
        (f"{URL}/{{key}}/promote", "post"),
        (f"{URL}/{{key}}/results", "get"),
        (f"{URL}/default-policy", "get"),
        (f"{URL}/default-policy/rollback", "post"),
    }
    for op in operations.values():
        assert {"401", "403", "429"} <= set(op["responses"])
    results = operations[(f"{URL}/{{key}}/results", "get")]["responses"]["200"]["content"]["application/json"]
    assert "verdict" in results["schema"]["required"]
    create = schema["components"]["schemas"]["ExperimentCreate"]
    assert create["required"] == ["key", "variants"]
