"""Rate limits per key, admin sign-in throttling, /metrics access, production settings."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from access.services import api_key_create
from catalog.models import Tool
from feedback.models import UsageEvent
from tests.access.conftest import client_for
from toolrec_site.env import Rate

RECOMMEND, FEEDBACK, TOOLS = "/api/v1/recommendations", "/api/v1/feedback", "/api/v1/tools"


def _ask(client: APIClient) -> Any:
    return client.post(RECOMMEND, {"messages": [{"role": "user", "content": "send an email"}], "k": 2}, format="json")


def test_a_key_over_its_rate_gets_429_with_retry_after_and_others_do_not(indexed: None, settings: Any) -> None:
    settings.RATE_LIMITS = {"recommend": Rate(3, 60), "feedback": Rate(2, 60), "catalog_write": Rate(1, 60)}
    scopes = ["recommend", "feedback", "catalog:write"]
    client, other = (client_for(api_key_create(name=n, scopes=scopes)[1]) for n in ("busy", "quiet"))
    answers = [_ask(client) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert limited.json()["error"]["code"] == "throttled"
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert _ask(other).status_code == 200  # per key
    rec = answers[0].json()["recommendation_id"]
    reports = [
        client.post(
            FEEDBACK, {"recommendation_id": rec, "tool": "mail_send", "used": True, "event_id": f"e{i}"}, format="json"
        )
        for i in range(3)
    ]
    assert [r.status_code for r in reports] == [201, 201, 429] and "Retry-After" in reports[-1]
    assert UsageEvent.objects.count() == 1  # the second report was a duplicate use; the third never ran
    created = [client.post(TOOLS, {"name": f"tool_{i}"}, format="json").status_code for i in range(2)]
    assert created == [201, 429] and not Tool.objects.filter(name="tool_1").exists()
    assert client.get(TOOLS).status_code == 200  # reads are not catalog writes


def test_admin_sign_in_is_throttled_after_repeated_failures(db: None, settings: Any) -> None:
    settings.ADMIN_LOGIN_FAILURES = Rate(3, 3600)
    name, password = f"admin-{uuid.uuid4().hex[:8]}", "correct horse battery staple"
    get_user_model().objects.create_superuser(name, "a@example.com", password)
    browser = Client()
    failed = [browser.post("/admin/login/", {"username": name, "password": "wrong"}).status_code for _ in range(3)]
    assert failed == [200, 200, 200]
    locked = browser.post("/admin/login/", {"username": name, "password": password})
    assert locked.status_code == 429 and int(locked["Retry-After"]) > 0
    assert "_auth_user_id" not in browser.session


def test_a_successful_sign_in_is_not_throttled(db: None, settings: Any) -> None:
    settings.ADMIN_LOGIN_FAILURES = Rate(3, 3600)
    name, password = f"admin-{uuid.uuid4().hex[:8]}", "correct horse battery staple"
    get_user_model().objects.create_superuser(name, "a@example.com", password)
    response = Client(REMOTE_ADDR="10.9.8.7").post("/admin/login/", {"username": name, "password": password})
    assert response.status_code == 302


def test_metrics_answer_only_the_token_or_the_allowed_networks(db: None, settings: Any) -> None:
    settings.METRICS_TOKEN = "scrape-" + "s" * 30
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    outside = Client(REMOTE_ADDR="203.0.113.9")
    assert outside.get("/metrics").status_code == 404
    assert outside.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    with_token = outside.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}")
    assert with_token.status_code == 200 and b"toolrec_" in with_token.content
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 404  # no longer allowed


def _settings_in_a_new_process(**env: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_PROXY_SSL_HEADER)"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SECURE_", "SECRET_KEY", "DEBUG", "BEHIND"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "DJANGO_SETTINGS_MODULE": "toolrec_site.settings", **env},
        capture_output=True,
        text=True,
        cwd=str(django_settings.BASE_DIR),
        timeout=120,
    )


def test_production_settings_refuse_a_short_secret_key() -> None:
    refused = _settings_in_a_new_process(DEBUG="false", SECRET_KEY="x")
    assert refused.returncode != 0 and "at least 50 characters" in refused.stderr


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DEBUG": "false"}, "True 31536000 True True None"),
        ({"DEBUG": "false", "BEHIND_TLS_PROXY": "true"}, "True 31536000 True True ('HTTP_X_FORWARDED_PROTO', 'https')"),
        ({"DEBUG": "false", "SECURE_SSL_REDIRECT": "false"}, "False 31536000 True True None"),
        ({"DEBUG": "true"}, "False 0 False False None"),
    ],
)
def test_production_settings_turn_on_https_only_when_debug_is_off(env: dict[str, str], expected: str) -> None:
    result = _settings_in_a_new_process(SECRET_KEY="k" * 50, **env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == expected
