"""The LiteLLM hook against a live test server, with LiteLLM's mock responses (no provider)."""

from __future__ import annotations

import asyncio
from typing import Any

from feedback.models import Recommendation, UsageEvent
from tests.conftest import SMALL_CATALOG

WEATHER = [{"role": "user", "content": "What's the weather in Paris tomorrow?"}]
ALL_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {"name": t["name"], "description": t["description"], "parameters": t["parameters"]},
    }
    for t in SMALL_CATALOG
]
FORECAST_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "weather_get_forecast", "arguments": '{"city": "Paris"}'},
}


def _names(tools: list[dict[str, Any]]) -> list[str]:
    return [t["function"]["name"] for t in tools]


def test_the_proxy_hooks_replace_the_tools_and_report_the_call(
    live_server: Any, raw_api_key: str, indexed: None
) -> None:
    import litellm
    from toolrec_client.litellm_hook import METADATA_KEY, ToolrecHook

    hook = ToolrecHook(live_server.url, raw_api_key, k=3)
    data: dict[str, Any] = {"model": "gpt-4o-mini", "messages": WEATHER, "tools": ALL_TOOLS}

    async def run() -> Any:
        await hook.async_pre_call_hook(None, None, data, "completion")
        response = await litellm.acompletion(**data, mock_response="", mock_tool_calls=[FORECAST_CALL])
        await hook.async_post_call_success_hook(data, None, response)
        return response

    response = asyncio.run(run())
    assert response.choices[0].message.tool_calls[0].function.name == "weather_get_forecast"
    assert len(data["tools"]) == 3 and _names(data["tools"])[0] == "weather_get_forecast"
    recommendation_id = data["metadata"][METADATA_KEY]
    used = UsageEvent.objects.get(recommendation_id=recommendation_id)
    assert used.used and used.tool.name == "weather_get_forecast"


def test_restrict_mode_keeps_the_requests_own_definitions(live_server: Any, raw_api_key: str, indexed: None) -> None:
    from toolrec_client.litellm_hook import ToolrecHook

    own = [
        {**t, "function": {**t["function"], "description": "mine: " + t["function"]["description"]}} for t in ALL_TOOLS
    ]
    data: dict[str, Any] = {"model": "gpt-4o-mini", "messages": WEATHER, "tools": own}
    asyncio.run(
        ToolrecHook(live_server.url, raw_api_key, k=2, mode="restrict").async_pre_call_hook(
            None, None, data, "completion"
        )
    )
    assert len(data["tools"]) == 2 and all(t["function"]["description"].startswith("mine: ") for t in data["tools"])
    assert "weather_get_forecast" in _names(data["tools"])


def test_with_the_sdk_callbacks_a_completion_gets_the_tools_and_its_call_is_reported(
    live_server: Any, raw_api_key: str, indexed: None
) -> None:
    import litellm
    from toolrec_client.litellm_hook import ToolrecHook

    hook = ToolrecHook(live_server.url, raw_api_key, k=3, max_tool_tokens=300)

    async def run() -> Any:
        response = await litellm.acompletion(
            model="gpt-4o-mini", messages=WEATHER, tools=ALL_TOOLS, mock_response="", mock_tool_calls=[FORECAST_CALL]
        )
        # LiteLLM runs success callbacks after returning, from a queue of its own: wait until
        # the hook has taken the call's recommendation and no other task is left.
        for _ in range(100):
            await asyncio.sleep(0.1)
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
            if not hook._by_call_id and not others:
                break
        return response

    previous = litellm.callbacks
    litellm.callbacks = [hook]
    try:
        response = asyncio.run(run())
    finally:
        litellm.callbacks = previous
    assert response.choices[0].message.tool_calls[0].function.name == "weather_get_forecast"
    recommendation = Recommendation.objects.get()
    assert recommendation.impressions.count() <= 3
    assert UsageEvent.objects.get(recommendation=recommendation).tool.name == "weather_get_forecast"


def test_toolrec_down_leaves_the_request_as_it_was(raw_api_key: str) -> None:
    from toolrec_client.litellm_hook import ToolrecHook

    data: dict[str, Any] = {"model": "gpt-4o-mini", "messages": WEATHER, "tools": ALL_TOOLS}
    asyncio.run(ToolrecHook("http://127.0.0.1:9", raw_api_key).async_pre_call_hook(None, None, data, "completion"))
    assert data["tools"] == ALL_TOOLS and "metadata" not in data
