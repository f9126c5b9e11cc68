"""Every answer under /api/ is JSON in the one error shape, and nothing a client sends
yields a 500 (issue 11, bad input)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from catalog.models import Tool
from feedback.models import Recommendation
from tests.conftest import in_ci

REC = "/api/v1/recommendations"
TOOLS = "/api/v1/tools"


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] and error["message"]
    return error


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/api/v1/nothing-here", 404),
        ("post", "/api/v2/recommendations", 404),
        ("get", "/api/v1/tools/99999999999999999999999", 404),  # past bigint: no DataError
        ("get", "/api/v1/tools/0", 404),
        ("get", REC, 405),
        ("put", TOOLS, 405),
    ],
)
def test_unknown_paths_and_methods_answer_json(api: APIClient, method: str, path: str, status: int) -> None:
    response = getattr(api, method)(path)
    _error(response, status)
    assert response["X-Request-ID"]


def test_an_uncaught_error_is_a_json_500_with_a_logged_request_id(
    api: APIClient, indexed: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("recommender.serving.answers.recommendation_create", broken)
    with caplog.at_level(logging.ERROR, logger="toolrec.api"):
        response = api.post(REC, {"messages": [{"role": "user", "content": "hi"}]}, format="json")
    error = _error(response, 500)
    request_id = response["X-Request-ID"]
    assert error["code"] == "server_error" and error["details"] == {"request_id": request_id}
    assert "a bug" not in response.content.decode()  # no internals leak
    assert any(request_id in r.getMessage() and r.exc_info for r in caplog.records)


def test_a_client_request_id_is_kept(api: APIClient) -> None:
    assert api.get("/api/v1/nothing", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    assert api.get("/api/v1/nothing", HTTP_X_REQUEST_ID="<script>")["X-Request-ID"] != "<script>"


def _nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth - 1):
        value = {"type": "object", "properties": {"a": value}}
    return value


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        (REC, '{"messages": [{"role": "user", "content": ' + "[" * 100 + "]" * 100 + "}]}", "nested deeper"),
        (REC, '{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested deeper"),  # the decoder's own limit
        (REC, '{"messages": [{"role": "user", "content": "weather \\ud800 in Paris"}]}', "surrogate"),
        (REC, '{"messages": [{"role": "user", "content": "hi", "\\udfff": 1}]}', "surrogate"),
        (REC, '{"messages": [{"role": "user", "content": "hi", "x\\u0000": 1}]}', "NUL"),
        (
            REC,
            '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": '
            '[{"id": "c", "type": "function", "function": {"name": "send\\udc00mail", "arguments": "{}"}}]}]}',
            "surrogate",
        ),
        (TOOLS, '{"name": "deep", "parameters": ' + str(_nested(100, {})).replace("'", '"') + "}", "nested deeper"),
        (TOOLS, '{"name": "bad\\ud800name"}', "surrogate"),
        (
            "/api/v1/feedback",
            '{"recommendation_id": "00000000-0000-0000-0000-000000000000", '
            '"tool": "x", "used": true, "event_id": "a\\u0000b"}',
            "Null characters",
        ),
    ],
)
def test_hostile_bodies_are_a_400_with_a_reason(
    api: APIClient, indexed: None, path: str, body: str, reason: str
) -> None:
    tools_before = Tool.objects.count()
    error = _error(api.post(path, body, content_type="application/json"), 400)
    assert reason in error["message"]
    assert Recommendation.objects.count() == 0 and Tool.objects.count() == tools_before


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"namespace": "a\x00b"}, "NUL"),
        ({"x\x00": "1"}, "NUL"),
        ({"limit": str(10**20)}, "limit"),
        ({"offset": str(10**20)}, "offset"),
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"enabled": "perhaps"}, "enabled"),
        ({"enabled": ""}, "enabled"),  # not a boolean, as the schema says
        ({"search": "x" * 201}, "search"),
    ],
)
def test_bad_query_parameters_are_a_400_with_a_reason(
    api: APIClient, db: None, query: dict[str, str], reason: str
) -> None:
    assert reason in _error(api.get(TOOLS, query), 400)["message"]


def test_a_page_is_capped_not_refused_below_the_cap(api: APIClient, indexed: None) -> None:
    body = api.get(TOOLS, {"limit": 500, "offset": 2}).json()
    assert body["count"] == Tool.objects.count() and len(body["results"]) == Tool.objects.count() - 2


have_postgres = connection.vendor == "postgresql"
if in_ci() and not have_postgres:
    raise RuntimeError("CI must run the create race on PostgreSQL (set DATABASE_URL)")


@pytest.mark.skipif(not have_postgres, reason="the create race needs PostgreSQL (set DATABASE_URL)")
@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_creates_of_one_name_are_one_201_and_nine_409(raw_api_key: str) -> None:
    start = threading.Barrier(10)
    statuses: list[int] = []

    def create() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_api_key}")
        start.wait()
        try:
            statuses.append(client.post(TOOLS, {"name": "race", "description": "x"}, format="json").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] + [409] * 9
    assert Tool.objects.filter(name="race").count() == 1
