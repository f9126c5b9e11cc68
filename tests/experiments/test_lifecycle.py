from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from experiments.hashing import traffic_bucket
from experiments.models import Experiment, ExperimentEvent, PolicyVersion, Variant
from experiments.policies import InvalidPolicy, policy_validate
from experiments.selectors import assignment_for
from experiments.services import (
    VariantSpec,
    experiment_create,
    experiment_promote,
    experiment_start,
    experiment_stop,
    policy_default_set,
    policy_rollback,
)
from feedback.models import Recommendation
from toolrec_site.errors import Conflict, ToolrecError

URL = "/api/v1/recommendations"
AB = [VariantSpec("control", "semantic", is_control=True), VariantSpec("treatment", "bandit")]


def _ask(api: APIClient, **extra: Any) -> Any:
    response = api.post(URL, {"messages": [{"role": "user", "content": "send an email"}], **extra}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"name": "bandit", "aplha": 0.3}, "policy.aplha"),
        ({"name": "bandit", "alpha": "wide"}, "policy.alpha"),
        ({"name": "bandit", "epsilon": 2}, "policy.epsilon"),
        ({"name": "random-forest"}, "policy.name"),
        ({"exploration": "ucb"}, "policy.name"),
        # bounded: a key with the experiments scope must not make every request allocate gigabytes
        ({"name": "bandit", "exploration": "thompson", "thompson_resamples": 10**9}, "policy.thompson_resamples"),
        ({"name": "bandit", "explore_pool": 10**7}, "policy.explore_pool"),
        ({"name": "hybrid", "w_semantic": 1e300}, "policy.w_semantic"),
    ],
)
def test_a_bad_policy_is_rejected_naming_the_field(policy: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidPolicy) as caught:
        policy_validate(policy)
    assert caught.value.message.startswith(field + ":")


def test_a_preset_name_is_expanded() -> None:
    assert policy_validate("bandit")["name"] == "bandit"
    with pytest.raises(InvalidPolicy, match="unknown preset"):
        policy_validate("bandot")


@pytest.mark.django_db
def test_create_refuses_a_bad_variant_and_saves_nothing() -> None:
    with pytest.raises(InvalidPolicy, match=r"variants\.treatment\.policy\.alpha"):
        experiment_create(
            key="e",
            variants=[VariantSpec("control", "semantic"), VariantSpec("treatment", {"name": "bandit", "alpha": -1})],
            actor="t",
        )
    assert not Experiment.objects.exists() and not Variant.objects.exists()


@pytest.mark.django_db
def test_lifecycle_sets_real_timestamps_control_and_events() -> None:
    experiment = experiment_create(
        key="e", variants=[VariantSpec("a", "semantic"), VariantSpec("b", "bandit")], actor="ann"
    )
    assert Variant.objects.get(experiment=experiment, name="a").is_control  # the first when none is marked
    before = timezone.now()
    experiment_start(experiment=experiment, actor="ann")
    started = experiment.started_at
    assert experiment.status == "running" and started is not None and started >= before
    with pytest.raises(Conflict):
        experiment_start(experiment=experiment, actor="ann")
    experiment_stop(experiment=experiment, actor="bob", reason="enough")
    assert experiment.status == "stopped" and experiment.stopped_at is not None
    assert experiment.stopped_at >= started
    assert experiment.stop_reason == "enough"
    log = list(ExperimentEvent.objects.filter(experiment=experiment).order_by("id").values_list("action", "actor"))
    # the control (semantic) is not the default policy (bandit): said at the start
    assert log == [("created", "ann"), ("started", "ann"), ("warning", "system"), ("stopped", "bob")]


@pytest.mark.django_db
@pytest.mark.parametrize(("control", "warned"), [("bandit", False), ("semantic", True)])
def test_start_warns_when_a_stop_would_not_return_traffic_to_the_control(control: str, warned: bool) -> None:
    """A stop returns units to the default policy: "back to control" only if the control is it."""
    policy_default_set(policy="bandit", actor="t")
    experiment = experiment_create(
        key="w", variants=[VariantSpec("control", control), VariantSpec("treatment", "thompson")], actor="t"
    )
    experiment_start(experiment=experiment, actor="t")
    warnings = ExperimentEvent.objects.filter(experiment=experiment, action="warning")
    assert warnings.exists() is warned
    if warned:
        assert "returns traffic to the default, not to the control" in warnings.get().reason


@pytest.mark.django_db
def test_running_experiments_own_disjoint_slices_of_units() -> None:
    first = experiment_create(key="first", variants=AB, traffic=(0.0, 0.5), actor="t")
    second = experiment_create(key="second", variants=AB, traffic=(0.5, 1.0), actor="t")
    overlapping = experiment_create(key="third", variants=AB, traffic=(0.4, 0.6), actor="t")
    experiment_start(experiment=first, actor="t")
    experiment_start(experiment=second, actor="t")
    with pytest.raises(Conflict, match="overlaps the running experiment 'first'"):
        experiment_start(experiment=overlapping, actor="t")
    seen = {"first": 0, "second": 0}
    for i in range(2000):
        assignment = assignment_for(user_id=f"user-{i}", conversation_id="")
        expected = "first" if traffic_bucket(f"user-{i}") < 0.5 else "second"
        assert assignment.experiment_key == expected
        seen[expected] += 1
    assert min(seen.values()) > 900


@pytest.mark.django_db
def test_a_bad_traffic_slice_is_refused() -> None:
    with pytest.raises(ToolrecError, match="traffic"):
        experiment_create(key="e", variants=AB, traffic=(0.6, 0.2), actor="t")


def test_requests_without_a_unit_id_are_logged_as_excluded(api: APIClient, indexed: None) -> None:
    experiment_start(experiment=experiment_create(key="e", variants=AB, actor="t"), actor="t")
    placed = _ask(api, user_id="u1")
    unplaced = _ask(api, conversation_id="c1")
    assert placed["experiment"] == "e" and placed["variant"] in ("control", "treatment")
    assert unplaced["experiment"] == "e" and unplaced["variant"] == "excluded"
    assert Recommendation.objects.filter(experiment_key="e", variant="excluded").count() == 1


def test_promote_serves_the_variant_and_rollback_the_previous_default(
    api: APIClient, indexed: None, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.RECOMMEND_POLICY = {"name": "semantic"}
    assert _ask(api)["policy"] == "semantic"
    experiment = experiment_create(
        key="e", variants=[VariantSpec("control", "semantic"), VariantSpec("winner", {"name": "hybrid"})], actor="t"
    )
    with django_capture_on_commit_callbacks(execute=True):
        experiment_start(experiment=experiment, actor="t")
        version = experiment_promote(experiment=experiment, variant_name="winner", actor="ann")
    assert _ask(api, user_id="anyone")["policy"] == "hybrid"  # the same process, no restart
    experiment.refresh_from_db()
    assert experiment.status == "stopped" and "promoted winner" in experiment.stop_reason
    history = list(PolicyVersion.objects.order_by("version").values_list("version", "source"))
    assert history == [(1, "RECOMMEND_POLICY"), (2, "promoted e/winner")] and version.version == 2
    with django_capture_on_commit_callbacks(execute=True):
        rolled = policy_rollback(actor="ann")
    assert rolled.version == 3 and rolled.policy == {"name": "semantic"}
    assert _ask(api)["policy"] == "semantic"
    with pytest.raises(Conflict):
        policy_rollback(actor="ann")  # v1 replaced nothing


@pytest.mark.django_db
def test_the_default_policy_is_validated() -> None:
    with pytest.raises(InvalidPolicy, match=r"policy\.exploration"):
        policy_default_set(policy={"name": "bandit", "exploration": "greedy"}, actor="t")
    assert not PolicyVersion.objects.exists()


@pytest.mark.django_db
def test_the_admin_refuses_a_bad_variant_policy(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/experiments/experiment/add/",
        {
            "key": "e",
            "name": "E",
            "unit": "user",
            "traffic_start": "0",
            "traffic_end": "1",
            "allocation": "fixed",
            "min_share": "0.1",
            "ramp": "[]",
            "guardrails": "{}",
            "variants-TOTAL_FORMS": "1",
            "variants-INITIAL_FORMS": "0",
            "variants-0-name": "control",
            "variants-0-policy": '{"name": "bandit", "alpah": 1}',
            "variants-0-weight": "1",
            "variants-0-is_control": "on",
            "variants-0-role": "live",
            "events-TOTAL_FORMS": "0",
            "events-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "policy.alpah: unknown field" in response.content.decode()
    assert not Experiment.objects.exists()


@pytest.mark.django_db
def test_the_admin_adds_a_default_policy_version_and_rolls_back(admin_client: Client) -> None:
    response = admin_client.post("/admin/experiments/policyversion/add/", {"policy": '{"name": "hybrid"}'})
    assert response.status_code == 302
    assert [v.policy["name"] for v in PolicyVersion.objects.order_by("version")] == ["bandit", "hybrid"]
    admin_client.post(
        "/admin/experiments/policyversion/",
        {"action": "roll_back", "_selected_action": [PolicyVersion.objects.first().pk]},
    )
    assert PolicyVersion.objects.order_by("-version").first().policy["name"] == "bandit"
