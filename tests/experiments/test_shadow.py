"""Shadow variants through the real API: ranked on every request of the experiment, logged,
never served, and judged against what was used."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from experiments.models import ShadowSlate
from experiments.selectors import reset_cache
from experiments.services import VariantSpec, experiment_create, experiment_start
from feedback.models import Impression, Recommendation, ShadowPending
from recommender.engine.candidate_log import read_candidate_log
from recommender.serving.shadow import shadows_rank
from toolrec_site.errors import ToolrecError

REC, FEEDBACK = "/api/v1/recommendations", "/api/v1/feedback"
QUESTIONS = ["send an email to Bob", "what's the weather in Paris", "book a meeting tomorrow", "convert 10 USD"]


def _traffic(api: APIClient, n: int) -> list[dict]:
    answers = []
    for i in range(n):
        extra = {"user_id": f"u{i}"} if i % 5 else {}  # some requests carry no unit id
        body = api.post(
            REC, {"messages": [{"role": "user", "content": QUESTIONS[i % 4]}], "k": 3, **extra}, format="json"
        ).json()
        answers.append(body)
        if i % 2 == 0:  # the agent used the served slate's second tool
            feedback = {"recommendation_id": body["recommendation_id"], "tool": body["tools"][1]["name"], "used": True}
            assert api.post(FEEDBACK, feedback, format="json").status_code == 201
    return answers


def _queue_again(recs: Any) -> None:
    ShadowPending.objects.bulk_create(ShadowPending(recommendation=r, experiment_key=r.experiment_key) for r in recs)


def _experiment(shadow_policy: object) -> None:
    variants = [
        VariantSpec("control", "semantic", is_control=True),
        VariantSpec("shadow", shadow_policy, role="shadow"),
    ]
    experiment_start(experiment=experiment_create(key="s", variants=variants, actor="t"), actor="t")


def test_a_shadow_ranks_every_request_and_is_never_served(api: APIClient, indexed: None) -> None:
    _experiment({"name": "hybrid", "exploration": "none", "w_semantic": 0.1, "w_learned": 0.9})
    answers = _traffic(api, 20)
    assert {a["variant"] for a in answers} == {"control", "excluded"}
    assert {a["policy"] for a in answers if a["variant"] == "control"} == {"semantic"}
    slates = ShadowSlate.objects.filter(experiment_key="s", variant="shadow")
    assert slates.count() == 20  # requests without a user id too: a shadow changes nothing they see
    one = slates.first()
    candidates = set(Impression.objects.values_list("tool_id", flat=True)) | set(one.tool_ids)
    assert len(one.tool_ids) == 3 and set(one.tool_ids) <= candidates and len(one.served_target) == 3
    assert Recommendation.objects.count() == 20  # the shadow logged no recommendation of its own


def test_a_shadow_identical_to_the_served_policy_holds_every_use_at_its_rank(
    api: APIClient, indexed: None, admin_client: Client
) -> None:
    _experiment("semantic")
    _traffic(api, 16)
    out = StringIO()
    call_command("experiment_results", "s", stdout=out)
    text = out.getvalue()
    assert "shadow shadow: 16 slates; 8 of 8 uses (100.0%) were in its slate, mean rank 2.00" in text
    # served deterministically and the shadow is the same policy: the estimate is the truth
    assert "uses per recommendation served 0.500, shadow (SNIPS) 0.500" in text
    assert "did not explore" in text
    admin_client.post("/dashboard/experiments/s/", {"action": "look"})
    assert "Shadow variants" in admin_client.get("/dashboard/experiments/s/").content.decode()


def test_a_shadow_cannot_be_the_control(db: None) -> None:
    try:
        experiment_create(key="x", variants=[VariantSpec("a", "semantic", is_control=True, role="shadow")], actor="t")
    except ToolrecError as exc:
        assert "cannot be the control" in exc.message
    else:
        raise AssertionError("a shadow control was accepted")


def test_a_shadow_ranks_the_served_candidates_from_the_log(api: APIClient, indexed: None, settings: Any) -> None:
    """The worker ranks from the logged candidates: every one of them is logged while a shadow
    runs (not only LOG_CANDIDATES), so a shadow of the served policy picks the served slate."""
    settings.LOG_CANDIDATES = 2
    api.post(REC, {"messages": [{"role": "user", "content": "send an email"}], "k": 3}, format="json")
    _experiment("semantic")
    reset_cache()  # the request above cached "no experiment" for 5 s
    _traffic(api, 8)
    outside = Recommendation.objects.get(experiment_key="")
    assert outside.candidate_log is not None
    assert len(read_candidate_log(bytes(outside.candidate_log)).tool_ids) <= 2 + 3
    for rec in Recommendation.objects.filter(experiment_key="s"):
        assert rec.candidate_log is not None
        logged = read_candidate_log(bytes(rec.candidate_log))
        assert len(logged.tool_ids) == 12  # the whole small catalog was a candidate
        served = list(rec.impressions.order_by("rank").values_list("tool_id", flat=True))
        slate = ShadowSlate.objects.get(recommendation=rec, variant="shadow")
        assert slate.tool_ids == served and slate.served_target == [1.0, 1.0, 1.0]
    assert not ShadowPending.objects.exists()  # each queue row went with its slates


def test_a_shadow_run_again_adds_nothing_and_a_bad_log_spoils_no_batch(api: APIClient, indexed: None) -> None:
    _experiment({"name": "hybrid", "exploration": "thompson"})
    _traffic(api, 6)
    recs = Recommendation.objects.filter(experiment_key="s")
    _queue_again(recs)  # as after a redelivered task
    out = StringIO()
    call_command("experiment_results", "s", stdout=out)
    assert "shadow shadow: 6 slates (6 requests not ranked yet)" in out.getvalue()
    assert shadows_rank().recommendations == 6 and ShadowSlate.objects.count() == 6

    ShadowSlate.objects.all().delete()
    _queue_again(recs)
    broken = recs.first()
    Recommendation.objects.filter(pk=broken.pk).update(candidate_log=None)
    run = shadows_rank()
    assert (run.recommendations, run.slates, run.unrankable) == (6, 5, 1)
    assert not ShadowPending.objects.exists()
    assert not ShadowSlate.objects.filter(recommendation=broken).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="TOAST compression is PostgreSQL's")
def test_candidate_logs_are_compressed_with_lz4(api: APIClient, indexed: None) -> None:
    """pglz cost the server twice lz4's CPU per logged recommendation (feedback migration 0007)."""
    _experiment("semantic")
    _traffic(api, 3)
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT pg_column_compression(candidate_log) FROM feedback_recommendation")
        assert cursor.fetchall() == [("lz4",)]


def test_the_minute_look_reuses_recent_shadow_results_and_look_now_recomputes(
    api: APIClient, indexed: None, settings: Any
) -> None:
    """Shadow results are computed over every slate of the experiment: the periodic look takes
    a look's younger than SHADOW_RESULTS_SECONDS, and says when they were computed."""
    from experiments.models import Experiment, ExperimentLook
    from experiments.rollout import experiment_look_record, experiment_watch

    _experiment("semantic")
    experiment = Experiment.objects.get(key="s")
    _traffic(api, 4)
    first = experiment_look_record(experiment=experiment)  # "Look now": computed
    assert first.results["shadows"][0]["recommendations"] == 4
    _traffic(api, 4)
    experiment_watch(experiment_id=experiment.pk)  # the minute's look, 4 new slates later
    reused = ExperimentLook.objects.order_by("-pk").first().results
    assert reused["shadows"] == first.results["shadows"] and reused["shadows_at"] == first.results["shadows_at"]
    settings.SHADOW_RESULTS_SECONDS = 0  # too old now
    experiment_watch(experiment_id=experiment.pk)
    fresh = ExperimentLook.objects.order_by("-pk").first().results
    assert fresh["shadows"][0]["recommendations"] == 8 and fresh["shadows_at"] > first.results["shadows_at"]
    settings.SHADOW_RESULTS_SECONDS = 3600
    _traffic(api, 4)
    assert experiment_look_record(experiment=experiment).results["shadows"][0]["recommendations"] == 12
