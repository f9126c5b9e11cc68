"""The Python client (clients/python) against a live test server: the real API over HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from toolrec_client import (
    AsyncToolrecClient,
    FeedbackEvent,
    ToolrecClient,
    ToolrecError,
    anthropic_tool_references,
    anthropic_tools,
    mcp_tools,
    openai_tools,
    responses_tool_choice,
    responses_tools,
)

from feedback.models import UsageEvent

WEATHER = [{"role": "user", "content": "What's the weather in Paris tomorrow?"}]


def test_recommend_and_feedback_round_trip(live_server: Any, raw_api_key: str, indexed: None) -> None:
    with ToolrecClient(live_server.url, raw_api_key) as client:
        answer = client.recommend(WEATHER, k=3, user_id="u1", explain=True)
        assert answer.tools[0].name == "weather_get_forecast" and answer.tools[0].reason
        assert answer.match.label in ("good", "weak") and 0 < answer.match.probability <= 1
        assert answer.tool_tokens > 0
        first = client.feedback(answer.recommendation_id, tool="weather_get_forecast", used=True)
        again = client.feedback(answer.recommendation_id, tool="weather_get_forecast", used=True)
    assert (first.recorded, again.recorded, again.duplicates) == (1, 0, 1)
    assert UsageEvent.objects.filter(recommendation_id=answer.recommendation_id, used=True).count() == 1


def test_the_client_adapters_build_what_the_service_answers_in_each_format(
    live_server: Any, raw_api_key: str, indexed: None
) -> None:
    with ToolrecClient(live_server.url, raw_api_key) as client:
        plain = client.recommend(WEATHER, k=4)
        responses = client.recommend(WEATHER, k=4, format="openai_responses")
        anthropic = client.recommend(WEATHER, k=4, format="anthropic", defer_loading=True)
        mcp = client.recommend(WEATHER, k=4, format="mcp")
    assert openai_tools(plain) == [t.definition for t in plain.tools]
    assert responses_tools(responses) == [t.definition for t in responses.tools]
    assert responses_tool_choice(responses) == responses.tool_choice
    assert anthropic_tools(anthropic, defer_loading=True) == [t.definition for t in anthropic.tools]
    assert anthropic_tool_references(anthropic) == anthropic.tool_references
    assert mcp_tools(mcp) == [t.definition for t in mcp.tools]


def test_the_async_client_recommends_and_reports(live_server: Any, raw_api_key: str, indexed: None) -> None:
    async def run() -> tuple[Any, Any]:
        async with AsyncToolrecClient(live_server.url, raw_api_key) as client:
            answer = await client.recommend(WEATHER, k=2, max_tool_tokens=400)
            outcome = await client.feedback(
                answer.recommendation_id, events=[FeedbackEvent(tool=answer.names[0], event_id="e-1")]
            )
            return answer, outcome

    answer, outcome = asyncio.run(run())
    assert answer.tool_tokens <= 400 and answer.names
    assert outcome.recorded == 1
    assert UsageEvent.objects.get(event_id="e-1").tool_id == answer.tools[0].tool_id


def test_a_503_is_retried_with_backoff_then_raised(live_server: Any, raw_api_key: str) -> None:
    attempts: list[int] = []
    http = httpx.Client(base_url=live_server.url, event_hooks={"response": [lambda r: attempts.append(r.status_code)]})
    client = ToolrecClient(live_server.url, raw_api_key, max_retries=2, backoff=0.01, http=http)
    with pytest.raises(ToolrecError) as raised:
        client.recommend(WEATHER)  # no index built yet: the service answers 503
    assert raised.value.status == 503 and raised.value.code == "unavailable"
    assert attempts == [503, 503, 503]


def test_a_client_error_is_not_retried(live_server: Any, raw_api_key: str, indexed: None) -> None:
    attempts: list[int] = []
    http = httpx.Client(base_url=live_server.url, event_hooks={"response": [lambda r: attempts.append(r.status_code)]})
    client = ToolrecClient(live_server.url, raw_api_key, max_retries=3, backoff=0.01, http=http)
    with pytest.raises(ToolrecError) as raised:
        client.recommend(WEATHER, format="gemini")
    assert raised.value.status == 400 and "format" in raised.value.message and attempts == [400]


def test_a_rate_limited_request_succeeds_after_retry_after() -> None:
    statuses = iter([429, 502, 200])
    seen: list[int] = []

    def flaky_server(request: httpx.Request) -> httpx.Response:
        status = next(statuses)
        seen.append(status)
        if status != 200:
            return httpx.Response(status, headers={"Retry-After": "0"}, json={"error": {"code": "x", "message": "y"}})
        return httpx.Response(200, json={"recommendation_id": "r", "tools": [], "match": json.loads(MATCH)})

    http = httpx.Client(base_url="http://toolrec.test", transport=httpx.MockTransport(flaky_server))
    answer = ToolrecClient("http://toolrec.test", "key", http=http, backoff=0.01).recommend(WEATHER)
    assert seen == [429, 502, 200] and answer.recommendation_id == "r" and answer.match.label == "none"


MATCH = '{"label": "none", "probability": 0.0, "basis": "retrieval"}'


def test_importing_the_client_does_not_import_litellm() -> None:
    import subprocess
    import sys

    code = "import sys, toolrec_client; print('litellm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env())
    assert out.stdout.strip() == "False"


def _env() -> dict[str, str]:
    import os
    from pathlib import Path

    import toolrec_client

    return {**os.environ, "PYTHONPATH": str(Path(toolrec_client.__file__).parent.parent)}
