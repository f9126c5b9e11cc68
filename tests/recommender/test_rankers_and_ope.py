from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings
from rest_framework.test import APIClient

from access.models import ApiKey
from feedback.services import FeedbackItem, feedback_record
from recommender.learning.learner import learning_batch
from recommender.learning.models import RankerModel
from recommender.learning.ranker_training import ranker_activate, ranker_train
from recommender.serving.holders import learned
from recommender.serving.services import recommendation_create

QUESTIONS = ["send an email to {}", "what's the weather in {}", "convert 10 dollars for {}", "directions to {}"]
EPSILON = {"name": "hybrid", "exploration": "epsilon", "epsilon": 0.3}


def _serve(n: int, policy: dict[str, object] | None = None, use_first: bool = True) -> None:
    api_key = ApiKey.objects.get()
    for i in range(n):
        result = recommendation_create(
            api_key=api_key,
            messages=[{"role": "user", "content": QUESTIONS[i % 4].format(f"place {i}")}],
            k=3,
            policy=policy,
        )
        if (use_first or i % 2) and result.recommendation_id is not None:
            feedback_record(
                api_key=api_key,
                recommendation_id=result.recommendation_id,
                items=[FeedbackItem(tool=result.tools[i % 2].name, used=True)],
            )


def test_a_ranker_is_trained_versioned_and_served_once_activated(raw_api_key: str, indexed: None) -> None:
    _serve(60)
    ranker = ranker_train()
    assert ranker is not None and ranker.training_groups == 60
    assert {"ndcg@10", "baseline_ndcg@10"} <= set(ranker.metrics)
    assert not ranker.is_active
    learned.reset()
    assert learned.get().ranker_text is None
    ranker_activate(ranker_id=ranker.pk)
    learned.reset()
    assert learned.get().ranker_id == ranker.pk
    api_key = ApiKey.objects.get()
    result = recommendation_create(
        api_key=api_key,
        messages=[{"role": "user", "content": "email Bob"}],
        k=3,
        policy={"name": "ltr", "exploration": "none"},
    )
    assert result.policy == "ltr"
    second = ranker_train()
    ranker_activate(ranker_id=second.pk)
    assert list(RankerModel.objects.filter(is_active=True).values_list("pk", flat=True)) == [second.pk]
    ranker_activate(ranker_id=ranker.pk)  # rolling back
    assert RankerModel.objects.get(is_active=True).pk == ranker.pk


def test_too_little_feedback_trains_nothing(raw_api_key: str, indexed: None) -> None:
    _serve(5)
    assert ranker_train() is None


def test_off_policy_estimates_of_the_logging_policy_equal_what_it_got(
    raw_api_key: str, indexed: None, tmp_path: Path
) -> None:
    _serve(40, policy=EPSILON, use_first=False)
    out, path = StringIO(), tmp_path / "ope.json"
    call_command("evaluate_policy", "--policy-json", json.dumps(EPSILON), "--json", str(path), stdout=out)
    report = json.loads(path.read_text())
    assert report["recommendations"] == 40 and report["events"] == 120
    # Same policy, same model state: every importance weight is 1, so IPS and SNIPS are the
    # logged value itself.
    for name in ("ips", "snips"):
        assert report["estimates"][name]["value"] == pytest.approx(report["logged_value"])
        assert report["estimates"][name]["ci_low"] <= report["logged_value"] <= report["estimates"][name]["ci_high"]
    assert "doubly" not in out.getvalue() and "dr" in report["estimates"]


def test_off_policy_estimates_warn_about_deterministic_logs(raw_api_key: str, indexed: None) -> None:
    _serve(10, policy={"name": "semantic"})
    learning_batch(delay_seconds=0)
    out = StringIO()
    call_command("evaluate_policy", "--policy", "epsilon", stdout=out)
    assert "deterministic" in out.getvalue()


@override_settings(RECOMMEND_POLICY={"name": "no-such-policy"})
def test_an_invalid_policy_configuration_falls_back_to_semantic(api: APIClient, indexed: None) -> None:
    response = api.post(
        "/api/v1/recommendations", {"messages": [{"role": "user", "content": "email Bob"}]}, format="json"
    )
    assert response.status_code == 200 and response.json()["policy"] == "semantic"
