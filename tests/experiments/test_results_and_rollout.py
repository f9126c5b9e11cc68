"""Results from the real log (requests and feedback through the API), the command, the results
page, and the periodic watch: looks, guardrails, ramps."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from experiments.models import Experiment, ExperimentEvent, ExperimentLook, PolicyVersion, Variant
from experiments.selectors import assignment_for, reset_cache
from experiments.services import VariantSpec, experiment_create, experiment_start
from experiments.tasks import watch_experiments

REC, FEEDBACK = "/api/v1/recommendations", "/api/v1/feedback"
AB = [VariantSpec("control", "semantic", is_control=True), VariantSpec("treatment", "semantic")]


def _serve(api: APIClient, users: range, *, uses: dict[str, float], rounds: int = 1) -> dict[str, int]:
    """Each user asks `rounds` times; the answer's first tool is reported used in a share
    of the requests of each variant (`uses`: variant -> share, by user number)."""
    served: dict[str, int] = {}
    for r in range(rounds):
        for i in users:
            body = api.post(
                REC, {"messages": [{"role": "user", "content": "send an email"}], "user_id": f"u{i}"}, format="json"
            ).json()
            served[body["variant"]] = served.get(body["variant"], 0) + 1
            if (i * 7 + r) % 100 < 100 * uses.get(body["variant"], 0.0):
                feedback = {
                    "recommendation_id": body["recommendation_id"],
                    "tool": body["tools"][0]["name"],
                    "used": True,
                }
                assert api.post(FEEDBACK, feedback, format="json").status_code == 201
    return served


def _started(**fields: Any) -> Experiment:
    experiment = experiment_create(key="e", variants=AB, actor="t", **fields)
    experiment_start(experiment=experiment, actor="t")
    return experiment


def test_the_command_reports_the_logged_experiment(api: APIClient, indexed: None, tmp_path: Path) -> None:
    _started()
    served = _serve(api, range(60), uses={"control": 0.2, "treatment": 0.8}, rounds=2)
    api.post(REC, {"messages": [{"role": "user", "content": "hello"}]}, format="json")  # no user id: excluded
    out = StringIO()
    call_command("experiment_results", "e", "--json", str(tmp_path / "r.json"), "--over-time", "3", stdout=out)
    body = json.loads((tmp_path / "r.json").read_text())
    by_name = {v["name"]: v for v in body["variants"]}
    assert by_name["control"]["recommendations"] == served["control"]
    assert by_name["control"]["units"] + by_name["treatment"]["units"] == 60
    assert by_name["treatment"]["hit_rate"] > by_name["control"]["hit_rate"] + 0.4
    assert by_name["treatment"]["usage_rate"] > 0 and by_name["control"]["p99_ms"] > 0
    assert body["excluded_requests"] == 1 and body["srm"]["mismatch"] is False
    hit = next(c for c in body["comparisons"] if c["metric"] == "hit_rate")
    assert hit["ci"][0] > 0 and hit["ci"][0] < hit["delta"] < hit["ci"][1]
    assert len(body["effect_over_time"]) == 3
    text = out.getvalue()
    assert "SRM: ok" in text and "excluded requests (no unit id): 1" in text and body["verdict_text"] in text


@pytest.mark.django_db
def test_the_command_refuses_an_unknown_key() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no experiment"):
        call_command("experiment_results", "nope")


def test_the_watch_stops_a_treatment_worse_beyond_doubt(api: APIClient, indexed: None, admin_client: Client) -> None:
    experiment = _started(guardrails={"min_units": 20})
    _serve(api, range(120), uses={"control": 0.9, "treatment": 0.05}, rounds=2)
    assert watch_experiments.apply().get() == {"e": "stopped"}
    experiment.refresh_from_db()
    assert experiment.status == "stopped" and experiment.stop_reason.startswith("guardrail: treatment: hit rate worse")
    event = ExperimentEvent.objects.get(experiment=experiment, action="guardrail")
    assert event.actor == "automatic" and "always-valid interval" in event.reason
    reset_cache()
    assert assignment_for(user_id="u1", conversation_id="").variant == "default"  # traffic back to the default
    page = admin_client.get(f"/admin/experiments/experiment/{experiment.pk}/change/").content.decode()
    assert "hit rate worse beyond doubt" in page


def test_the_watch_leaves_an_a_a_test_running(api: APIClient, indexed: None) -> None:
    experiment = _started(guardrails={"min_units": 20})
    _serve(api, range(80), uses={"control": 0.5, "treatment": 0.5})
    assert watch_experiments.apply().get() == {"e": "watched"}
    look = ExperimentLook.objects.get(experiment=experiment)
    assert look.verdict == "keep_running" and look.units == 80


def test_a_ramp_widens_the_share_after_its_time_and_sample(api: APIClient, indexed: None) -> None:
    ramp = [{"share": 0.1, "min_minutes": 0, "min_units": 5}, {"share": 0.5, "min_minutes": 60}]
    experiment = _started(ramp=ramp, guardrails={"min_units": 1000})
    weights = dict(Variant.objects.filter(experiment=experiment).values_list("name", "weight"))
    assert weights == {"control": 9000, "treatment": 1000}
    served = _serve(api, range(100), uses={})
    assert 2 <= served["treatment"] <= 25
    assert watch_experiments.apply().get() == {"e": "ramped"}
    experiment.refresh_from_db()
    assert experiment.ramp_step == 1
    assert dict(Variant.objects.filter(experiment=experiment).values_list("name", "weight"))["treatment"] == 5000
    event = ExperimentEvent.objects.get(experiment=experiment, action="ramped")
    assert event.actor == "automatic" and "treatment share 50%" in event.reason
    reset_cache()
    moved = sum(assignment_for(user_id=f"u{i}", conversation_id="").variant == "treatment" for i in range(400))
    assert 150 < moved < 250
    assert watch_experiments.apply().get() == {"e": "watched"}  # the last step's minimum time has not passed


@pytest.mark.django_db
def test_a_bad_ramp_is_refused_naming_the_step() -> None:
    from toolrec_site.errors import ToolrecError

    with pytest.raises(ToolrecError, match=r"ramp\[1\]\.share"):
        experiment_create(key="e", variants=AB, actor="t", ramp=[{"share": 0.1}, {"share": 2}])


def test_the_results_page_shows_the_looks_and_its_buttons_act(
    api: APIClient, indexed: None, admin_client: Client
) -> None:
    experiment = _started()
    _serve(api, range(30), uses={"control": 0.3, "treatment": 0.6})
    page = admin_client.get("/dashboard/experiments/e/")
    assert page.status_code == 200 and "No look yet" in page.content.decode()
    assert admin_client.post("/dashboard/experiments/e/", {"action": "look"}).status_code == 302
    html = admin_client.get("/dashboard/experiments/e/").content.decode()
    assert "Verdict:" in html and 'id="effect-data"' in html and "Sample ratio" in html and "Promote treatment" in html
    listing = admin_client.get("/dashboard/experiments/").content.decode()
    assert "keep_running" in listing or "ship" in listing
    admin_client.post("/dashboard/experiments/e/", {"action": "promote", "variant": "treatment"})
    experiment.refresh_from_db()
    assert experiment.status == "stopped"
    assert PolicyVersion.objects.order_by("-version").first().source == "promoted e/treatment"
    admin_client.post("/dashboard/experiments/", {"action": "rollback"})
    assert PolicyVersion.objects.order_by("-version").first().source == "rollback to v1"


@pytest.mark.django_db
def test_staff_without_the_permission_cannot_act(client: Client) -> None:
    experiment_create(key="e", variants=AB, actor="t")
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(viewer)
    assert client.get("/dashboard/experiments/e/").status_code == 200
    assert client.post("/dashboard/experiments/e/", {"action": "stop"}).status_code == 403
    assert Experiment.objects.get(key="e").status == "draft"


@pytest.mark.django_db
def test_bad_guardrails_are_refused_naming_the_field(admin_client: Client) -> None:
    from toolrec_site.errors import ToolrecError

    with pytest.raises(ToolrecError, match=r"guardrails\.max_p99: unknown field"):
        experiment_create(key="e", variants=AB, actor="t", guardrails={"max_p99": 300})
    with pytest.raises(ToolrecError, match=r"guardrails\.tau"):
        experiment_create(key="e", variants=AB, actor="t", guardrails={"tau": 3})
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
            "ramp": '[{"share": 0.5}, {"share": 0.2}]',
            "guardrails": "{}",
            "variants-TOTAL_FORMS": "0",
            "variants-INITIAL_FORMS": "0",
            "events-TOTAL_FORMS": "0",
            "events-INITIAL_FORMS": "0",
        },
    )
    assert "ramp: shares must rise step by step" in response.content.decode()
    assert not Experiment.objects.exists()
