"""The MCP server face through the SDK's own client, over streamable HTTP and over stdio:
the same answers and the same feedback log as REST."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import httpx2
import pytest
import uvicorn
from django.conf import settings
from django.db import connection
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from rest_framework.test import APIClient

from agents.mcp_server import http_app
from feedback.models import UsageEvent

PORT = 8171
WEATHER = "what's the weather in Paris tomorrow?"


@pytest.fixture
def mcp_http(transactional_db: Any) -> Iterator[str]:
    """The MCP HTTP app served by uvicorn in a thread of this process (so it reads the test
    database); yields its /mcp URL."""
    server = uvicorn.Server(uvicorn.Config(http_app(), host="127.0.0.1", port=PORT, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the MCP HTTP server did not start"
    yield f"http://127.0.0.1:{PORT}/mcp"
    server.should_exit = True
    thread.join(timeout=10)


async def _session(client: Client) -> dict[str, Any]:
    """List the tools, find tools for the weather question, report the first one used twice."""
    listed = await client.list_tools()
    found = await client.call_tool("find_tools", {"query": WEATHER, "k": 3})
    assert not found.is_error, found.content
    body = found.structured_content
    first = body["tools"][0]["name"]
    reports = [
        (await client.call_tool("report_tool_use", {"recommendation_id": body["recommendation_id"], "tool": first}))
        for _ in range(2)
    ]
    bad = await client.call_tool("find_tools", {"query": WEATHER, "k": 500})
    return {
        "tools": sorted(t.name for t in listed.tools),
        "body": body,
        "reports": [r.structured_content for r in reports],
        "bad": bad,
    }


def _check(outcome: dict[str, Any], raw_api_key: str) -> None:
    assert outcome["tools"] == ["find_tools", "report_tool_use"]
    names = [t["name"] for t in outcome["body"]["tools"]]
    assert names[:2] == ["weather_get_forecast", "weather_get_current"], names
    assert outcome["reports"] == [{"recorded": 1, "duplicates": 0}, {"recorded": 0, "duplicates": 1}]
    assert outcome["bad"].is_error and "k" in outcome["bad"].content[0].text
    recommendation_id = outcome["body"]["recommendation_id"]
    # the same use reported through REST is the same event: still counted once
    rest = APIClient()
    rest.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_api_key}")
    again = rest.post(
        "/api/v1/feedback",
        {"recommendation_id": recommendation_id, "tool": "weather_get_forecast", "used": True},
        format="json",
    )
    assert again.json() == {"recorded": 0, "duplicates": 1}
    assert UsageEvent.objects.filter(recommendation_id=recommendation_id, used=True).count() == 1


def test_find_tools_and_report_over_http(mcp_http: str, indexed: None, raw_api_key: str) -> None:
    async def run() -> dict[str, Any]:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {raw_api_key}"})
        async with Client(streamable_http_client(mcp_http, http_client=http), cache=None) as client:
            return await _session(client)

    _check(anyio.run(run), raw_api_key)


def test_http_needs_a_valid_key(mcp_http: str) -> None:
    for headers in ({}, {"Authorization": "Bearer trk_wrong"}):
        response = httpx.post(mcp_http, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def _child_env(raw_api_key: str) -> dict[str, str]:
    """What the stdio child needs to serve this test's database, snapshot and cache (the SDK
    hands a child only a minimal environment)."""
    passed = ("REDIS_URL", "HF_HUB_OFFLINE", "LITELLM_LOCAL_MODEL_COST_MAP", "HOME", "PATH")
    env = {name: os.environ[name] for name in passed if name in os.environ}
    return env | {
        "DJANGO_SETTINGS_MODULE": "toolrec_site.test_settings",
        "DATABASE_URL": _database_url(),
        "TOOLREC_VAR_DIR": str(settings.VAR_DIR),
        "CACHE_KEY_PREFIX": str(settings.CACHES["default"].get("KEY_PREFIX", "")),
        "SECRET_KEY": settings.SECRET_KEY,
        "TOOLREC_API_KEY": raw_api_key,
        "LEARNING_AUTO_SCHEDULE": "false",
    }


@pytest.mark.django_db(transaction=True)
def test_find_tools_and_report_over_stdio(indexed: None, raw_api_key: str) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the stdio server is a child process: it can read the test database only on PostgreSQL")
    params = StdioServerParameters(
        command=sys.executable,
        args=["manage.py", "mcp_server"],
        env=_child_env(raw_api_key),
        cwd=str(settings.BASE_DIR),
    )

    async def run() -> dict[str, Any]:
        async with Client(params, cache=None, read_timeout_seconds=60) as client:
            return await _session(client)

    _check(anyio.run(run), raw_api_key)


def test_stdio_refuses_to_start_without_a_key(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOOLREC_API_KEY", raising=False)
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="TOOLREC_API_KEY"):
        call_command("mcp_server")
