"""Promote and roll back as an operator does (the dashboard's buttons), with the policy that
served the next requests read where the log records it: their Recommendation rows."""

from __future__ import annotations

import time
import types
from typing import Any

from django.test import Client
from rest_framework.test import APIClient

from experiments import selectors
from experiments.services import VariantSpec, experiment_create, experiment_start
from feedback.models import Recommendation

URL = "/api/v1/recommendations"
USERS = ["u1", "u2", "u3", "u4", "u5", "u6", ""]  # "" is a request without a unit id


def _served(api: APIClient, user_id: str) -> tuple[str, str]:
    body = {"messages": [{"role": "user", "content": "send an email"}], "user_id": user_id}
    response = api.post(URL, body, format="json")
    assert response.status_code == 200, response.json()
    row = Recommendation.objects.get(pk=response.json()["recommendation_id"])
    assert row.policy == response.json()["policy"]
    return row.variant, row.policy


def _start(settings: Any) -> None:
    settings.RECOMMEND_POLICY = {"name": "semantic"}
    variants = [VariantSpec("control", "semantic", is_control=True), VariantSpec("winner", "bandit")]
    experiment_start(experiment=experiment_create(key="e", variants=variants, actor="t"), actor="t")
    selectors.reset_cache()


def test_the_next_requests_are_served_by_the_promoted_variant_then_by_the_previous_default(
    api: APIClient, indexed: None, admin_client: Client, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _start(settings)
    before = {_served(api, user) for user in USERS}
    assert ("control", "semantic") in before and ("winner", "bandit") in before
    # The server runs on_commit callbacks after the commit, as a real request does.
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/dashboard/experiments/e/", {"action": "promote", "variant": "winner"})
    assert response.status_code == 302
    assert {_served(api, user) for user in USERS} == {("default", "bandit")}  # same process, no restart
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post("/dashboard/experiments/", {"action": "rollback"}).status_code == 302
    assert {_served(api, user) for user in USERS} == {("default", "semantic")}


def test_another_web_process_serves_the_promoted_variant_once_its_cache_expires(
    api: APIClient, indexed: None, admin_client: Client, settings: Any, monkeypatch: Any
) -> None:
    """No on_commit reset reaches another process: its cached serving config lasts at most
    CACHE_SECONDS, then it reads the new default version (no restart, no signal)."""
    _start(settings)
    _served(api, "u1")  # the serving config is cached
    response = admin_client.post("/dashboard/experiments/e/", {"action": "promote", "variant": "winner"})
    assert response.status_code == 302
    # Still the cached config, in which the experiment runs: this process was not told.
    assert _served(api, "") == ("excluded", "semantic")
    later = time.monotonic() + selectors.CACHE_SECONDS + 1
    monkeypatch.setattr(selectors, "time", types.SimpleNamespace(monotonic=lambda: later))
    assert {_served(api, user) for user in USERS} == {("default", "bandit")}
