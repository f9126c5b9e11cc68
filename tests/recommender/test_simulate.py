from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from experiments.models import Experiment
from recommender.management.commands.simulate import tool_vector_folder
from tests.conftest import small_catalog_jsonl

CITIES = [
    "Paris",
    "Rome",
    "Oslo",
    "Lima",
    "Cairo",
    "Delhi",
    "Quito",
    "Seoul",
    "Perth",
    "Dakar",
    "Hanoi",
    "Porto",
    "Bern",
    "Riga",
    "Kyiv",
    "Doha",
    "Suva",
    "Baku",
    "Lagos",
    "Accra",
]


def _queries(path: Path, cities: list[str]) -> Path:
    rows = []
    for i, city in enumerate(cities):
        # This agent needs the current weather whenever it asks about the weather in a city,
        # though retrieval ranks the forecast first: only learning from its uses can fix that.
        rows.append(
            {"qid": f"w{i}", "query": f"weather in {city} for the coming days", "relevant": ["weather_get_current"]}
        )
        rows.append({"qid": f"m{i}", "query": f"send an email to the {city} office", "relevant": ["mail_send"]})
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


@pytest.mark.django_db
def test_learning_beats_semantic_on_a_tiny_catalog(tmp_path: Path) -> None:
    tools = tmp_path / "tools.jsonl"
    tools.write_text(small_catalog_jsonl())
    out, report_path = StringIO(), tmp_path / "sim.json"
    call_command(
        "simulate",
        "--tools",
        str(tools),
        "--queries",
        str(_queries(tmp_path / "stream.jsonl", CITIES[:14])),
        "--test-queries",
        str(_queries(tmp_path / "test.jsonl", CITIES[14:])),
        "--steps",
        "300",
        "--k",
        "1",
        "--batch",
        "20",
        "--eval-every",
        "150",
        "--policies",
        "semantic,hybrid",
        "--seed",
        "3",
        "--false-use",
        "0",
        "--in-current-database",
        "--json",
        str(report_path),
        stdout=out,
    )
    report = json.loads(report_path.read_text())
    semantic, hybrid = ({c["step"]: c for c in run["checkpoints"]} for run in report["runs"])
    assert semantic[300]["hit_rate"] < 60  # it shows the forecast to every weather question
    assert hybrid[300]["hit_rate"] > semantic[300]["hit_rate"] + 15
    assert hybrid[300]["ndcg_at_10"] > semantic[300]["ndcg_at_10"] + 10  # on unseen cities
    assert "hybrid" in out.getvalue() and "usage" in out.getvalue()
    # the per-interval rates add up to the cumulative one (two intervals of 150 steps)
    assert hybrid[150]["interval_hit_rate"] == pytest.approx(hybrid[150]["hit_rate"])
    assert (hybrid[150]["interval_hit_rate"] + hybrid[300]["interval_hit_rate"]) / 2 == pytest.approx(
        hybrid[300]["hit_rate"]
    )


@pytest.mark.django_db
def test_held_back_tools_are_measured_after_they_are_added(tmp_path: Path) -> None:
    tools = tmp_path / "tools.jsonl"
    tools.write_text(small_catalog_jsonl())
    report_path = tmp_path / "sim.json"
    call_command(
        "simulate",
        "--tools",
        str(tools),
        "--queries",
        str(_queries(tmp_path / "q.jsonl", CITIES)),
        "--steps",
        "120",
        "--k",
        "3",
        "--policies",
        "hybrid",
        "--add-tools-at",
        "40:0.5",
        "--eval-every",
        "60",
        "--test-size",
        "10",
        "--in-current-database",
        "--json",
        str(report_path),
        stdout=StringIO(),
    )
    held = json.loads(report_path.read_text())["runs"][0]["held_back"]
    assert held["tools"] == 1 and held["recommended"] == 1
    assert held["median_queries_before_recommended"] is not None


def test_simulate_refuses_unknown_policies(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="unknown policies"):
        call_command("simulate", "--tools", "x", "--queries", "y", "--policies", "magic")


def test_a_second_replay_keeps_its_tool_vectors_apart_while_the_first_runs(tmp_path: Path) -> None:
    """Qdrant local mode lets one process open a folder: two replays at once used to crash
    the second one at its first index rebuild."""
    shared, out = tmp_path / "simulate-qdrant", StringIO()
    with (
        tool_vector_folder(shared, tmp_path / "run1", out) as first,
        tool_vector_folder(shared, tmp_path / "run2", out) as second,
    ):
        assert (first, second) == (shared, tmp_path / "run2" / "qdrant")
        assert "in use by another replay" in out.getvalue()
    with tool_vector_folder(shared, tmp_path / "run3", out) as third:
        assert third == shared  # released when the first run ended


RANDOM = '{"name": "hybrid", "exploration": "epsilon", "epsilon": 1.0, "explore_pool": 200}'


def _experiment_replay(tmp_path: Path, *extra: str) -> dict:
    tools = tmp_path / "tools.jsonl"
    tools.write_text(small_catalog_jsonl())
    report_path = tmp_path / "exp.json"
    call_command(
        "simulate",
        "--tools",
        str(tools),
        "--queries",
        str(_queries(tmp_path / "q.jsonl", CITIES)),
        "--k",
        "1",
        "--batch",
        "20",
        "--seed",
        "3",
        "--false-use",
        "0",
        "--in-current-database",
        "--json",
        str(report_path),
        *extra,
        stdout=StringIO(),
    )
    return dict(json.loads(report_path.read_text()))


# Over HTTP (the default) the server thread has its own database connection: the replay's
# writes must be committed for it to see them, as for a real server.
@pytest.mark.django_db(transaction=True)
def test_an_experiment_replay_measures_the_lift_and_a_lost_log_is_an_srm(tmp_path: Path) -> None:
    report = _experiment_replay(
        tmp_path,
        *("--steps", "800", "--users", "800", "--policies", "semantic,hybrid", "--experiment", "semantic,hybrid"),
        *("--watch-every", "400", "--drop", "hybrid:0.4"),
    )
    results = report["results"]
    assert report["via"] == "http"
    assert sum(sum(w["served"].values()) for w in report["watches"]) == 800  # every request was answered
    assert {v["name"] for v in results["variants"]} == {"semantic", "hybrid"}
    hit = next(c for c in results["comparisons"] if c["metric"] == "hit_rate")
    assert hit["ci"][0] > 0  # the learner's lift, at the unit level
    assert results["srm"]["mismatch"] is False and report["status"] == "running"
    (drop,) = report["drops"]
    assert drop["share"] == 0.4 and drop["results"]["srm"]["mismatch"] is True
    assert drop["results"]["verdict"] == "stop"


@pytest.mark.django_db(transaction=True)
def test_a_ramp_with_a_random_variant_is_stopped_by_its_guardrail(tmp_path: Path, admin_client: Client) -> None:
    report = _experiment_replay(
        tmp_path,
        *("--steps", "600", "--users", "300", "--policies", "semantic", "--policy", f"random={RANDOM}"),
        *("--experiment", "semantic,random", "--ramp", "0.2,0.5,1", "--ramp-min-units", "20"),
        *("--guardrails", '{"min_units": 20}', "--watch-every", "100"),
    )
    assert report["status"] == "stopped"
    assert report["stop_reason"].startswith("guardrail: random: hit rate worse beyond doubt")
    assert [e["action"] for e in report["events"]][-1] == "guardrail"
    assert report["events"][-1]["actor"] == "automatic"
    # Traffic returns to control: every request after the stop served the default, semantic.
    assert report["served_after_stop"] and set(report["served_after_stop"]) == {"default:semantic"}
    experiment = Experiment.objects.get(key=report["experiment"])
    page = admin_client.get(f"/admin/experiments/experiment/{experiment.pk}/change/").content.decode()
    assert "guardrail: random: hit rate worse beyond doubt" in page  # the reason, where an operator looks
