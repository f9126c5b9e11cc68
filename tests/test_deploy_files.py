"""deploy/: the example alert rules and Grafana dashboard parse, and every metric they name
is one that /metrics really exports. promtool (Debian's `prometheus` package; CI installs
it) also checks the rules and the example config and runs the rules' unit tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from feedback.models import Recommendation
from recommender.learning.learner import learning_batch
from tests.conftest import in_ci
from toolrec_site.scheduling import ROLLUP_DASHBOARD, task_named

DEPLOY = Path(settings.BASE_DIR) / "deploy"
RULES = DEPLOY / "prometheus" / "toolrec-alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "toolrec-dashboard.json"
PROMETHEUS_OWN = {"up"}  # series Prometheus itself adds per target
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression: identifiers outside strings, label
    matchers, ranges and label lists that are neither functions nor keywords."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = _LABEL_LISTS.sub("", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        if expr[match.end() :].lstrip().startswith("(") or match.group() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (job, le) (rate(tool_recommendation_latency_seconds_bucket{job="x"}[5m])))'
        " > 0.1 and on (job) max by (job) (toolrec_window_recommendations offset 1h) >= 200"
    )
    assert metric_names(expr) == {"tool_recommendation_latency_seconds_bucket", "toolrec_window_recommendations"}


@pytest.fixture
def exported(api: APIClient, indexed: None) -> set[str]:
    """The sample names of /metrics after some traffic (labelled series appear once used)."""
    for text in ("send an email to Bob", "weather in Paris"):
        response = api.post("/api/v1/recommendations", {"messages": [{"role": "user", "content": text}]}, format="json")
        body = response.json()
        events = [{"tool": body["tools"][0]["name"], "used": True}, {"tool": body["tools"][1]["name"], "used": False}]
        api.post("/api/v1/feedback", {"recommendation_id": body["recommendation_id"], "events": events}, format="json")
    Recommendation.objects.update(created_at=timezone.now() - timedelta(minutes=7))
    learning_batch(delay_seconds=0)
    assert task_named(ROLLUP_DASHBOARD).apply().successful()  # the success gauges read its rows
    text = Client().get("/metrics").content.decode()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def test_the_alert_rules_name_only_exported_metrics(exported: set[str]) -> None:
    rules = _rules()
    assert {r["alert"] for r in rules} >= {
        "ToolrecRecommendationLatencyP99High",
        "ToolrecHighErrorRate",
        "ToolrecLearnerLagging",
        "ToolrecUsageRateDropped",
        "ToolrecWorkerDown",
    }
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"} and rule["annotations"]["summary"], rule["alert"]
        names = metric_names(rule["expr"])
        assert names and names <= exported | PROMETHEUS_OWN, (rule["alert"], names - exported)


def test_the_dashboard_charts_only_exported_metrics(exported: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in dashboard["panels"]:
        assert panel["targets"] and panel["description"], panel["title"]
    for expr in _dashboard_exprs():
        names = metric_names(expr)
        assert names and names <= exported, (expr, names - exported)
    charted = {n for e in _dashboard_exprs() for n in metric_names(e)}
    for success in ("toolrec_usage_rate", "toolrec_hit_rate", "toolrec_coverage", "toolrec_learner_lag_seconds"):
        assert success in charted
    for variable in dashboard["templating"]["list"]:
        metric = re.fullmatch(r"label_values\((\w+),\s*\w+\)", variable["definition"])
        assert metric and metric.group(1) in exported


def _promtool() -> str | None:
    found = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if found is None and in_ci():
        raise RuntimeError("CI must check the alert rules with promtool (.ci/run installs it)")
    return found


@pytest.mark.parametrize(
    "args",
    [
        ["check", "rules", "toolrec-alerts.yml"],
        ["test", "rules", "toolrec-alerts.test.yml"],
        ["check", "config", "prometheus.example.yml"],
    ],
    ids=["check-rules", "rule-unit-tests", "check-config"],
)
def test_promtool_accepts_the_prometheus_files(args: list[str]) -> None:
    promtool = _promtool()
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus; or set PROMTOOL)")
    result = subprocess.run([promtool, *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
