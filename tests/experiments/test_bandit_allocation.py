"""Bandit-allocated experiments through the real API: sticky units, logged probabilities,
shares that follow Thompson sampling with a floor, and unbiased results."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from experiments.models import ExperimentEvent, ExperimentUnit, Variant
from experiments.rollout import experiments_watch
from experiments.selectors import reset_cache
from experiments.services import VariantSpec, experiment_create, experiment_start
from toolrec_site.errors import ToolrecError

REC, FEEDBACK = "/api/v1/recommendations", "/api/v1/feedback"
AB = [VariantSpec("control", "semantic", is_control=True), VariantSpec("treatment", {"name": "hybrid"})]


def _ask(api: APIClient, user: str, use: bool) -> str:
    body = api.post(
        REC, {"messages": [{"role": "user", "content": "send an email"}], "user_id": user}, format="json"
    ).json()
    if use:
        feedback = {"recommendation_id": body["recommendation_id"], "tool": body["tools"][0]["name"], "used": True}
        assert api.post(FEEDBACK, feedback, format="json").status_code == 201
    return str(body["variant"])


def test_shares_follow_the_better_variant_and_units_stay_put(api: APIClient, indexed: None, tmp_path: Path) -> None:
    experiment = experiment_create(key="b", variants=AB, actor="t", allocation="thompson", min_share=0.1)
    experiment_start(experiment=experiment, actor="t")
    first = {f"u{i}": _ask(api, f"u{i}", use=False) for i in range(60)}
    for user, variant in first.items():  # the treatment's users use what they are shown
        _ask(api, user, use=variant == "treatment" or user.endswith("0"))
    units = ExperimentUnit.objects.filter(experiment=experiment)
    assert units.count() == 60 and {u.probability for u in units} == {0.5}
    assert experiments_watch() == {"b": "allocated"}
    weights = dict(Variant.objects.filter(experiment=experiment).values_list("name", "weight"))
    assert weights["treatment"] > 8000 and weights["control"] >= 1000  # the floor: min_share 0.1
    event = ExperimentEvent.objects.get(experiment=experiment, action="allocated")
    assert event.actor == "automatic" and "Thompson" in event.reason
    reset_cache()
    assert all(_ask(api, user, use=False) == variant for user, variant in first.items())  # sticky
    newcomers = [_ask(api, f"new{i}", use=False) for i in range(40)]
    assert newcomers.count("treatment") > 25
    late = ExperimentUnit.objects.get(experiment=experiment, unit_id="new0")
    assert late.probability == pytest.approx(late.shares[late.variant]) and late.probability != 0.5
    out = StringIO()
    from django.core.management import call_command

    call_command("experiment_results", "b", "--json", str(tmp_path / "b.json"), stdout=out)
    body = json.loads((tmp_path / "b.json").read_text())
    assert sum(v["units"] for v in body["variants"]) == 100
    assert body["srm"]["mismatch"] is False  # expected counts follow the shares each unit was placed with


@pytest.mark.django_db
def test_a_bandit_experiment_refuses_a_ramp_or_an_impossible_floor() -> None:
    with pytest.raises(ToolrecError, match="ramp"):
        experiment_create(key="b", variants=AB, actor="t", allocation="thompson", ramp=[{"share": 0.1}])
    with pytest.raises(ToolrecError, match="min_share"):
        experiment_create(key="b", variants=AB, actor="t", allocation="thompson", min_share=0.6)
