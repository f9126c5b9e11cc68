"""A LiteLLM hook: each chat request gets the tools toolrec recommends for its conversation,
and the tools the model then calls are reported back as uses.

Importing this module imports LiteLLM (about 4 s); the rest of the package never does.

On the LiteLLM proxy (config.yaml):

    litellm_settings:
      callbacks: my_hooks.toolrec_hook     # my_hooks.py: toolrec_hook = ToolrecHook(base_url=..., api_key=...)

the proxy calls `async_pre_call_hook` (tools replaced) and `async_post_call_success_hook`
(calls reported). With the LiteLLM SDK (`litellm.callbacks = [hook]`), `acompletion` calls
`async_pre_call_deployment_hook` and `async_log_success_event` instead. A request already
handled by the proxy hook is not recommended for again.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from litellm.integrations.custom_logger import CustomLogger

from toolrec_client.adapters import openai_tools, tool_calls_in
from toolrec_client.client import AsyncToolrecClient, ToolrecError
from toolrec_client.models import FeedbackEvent

log = logging.getLogger(__name__)
METADATA_KEY = "toolrec_recommendation_id"
TOOLS_KEY = "toolrec_tools"  # the names recommended: only calls of these are reported
CHAT_CALL_TYPES = frozenset({"completion", "acompletion"})


class ToolrecHook(CustomLogger):
    """`mode="replace"`: the request's tools become the recommended ones. `mode="restrict"`:
    the request's own tools are kept, those not recommended are dropped (the request keeps
    its definitions; a request with no tools gets the recommended ones). toolrec failing
    never fails the request: it goes on with the tools it had."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        k: int = 5,
        max_tool_tokens: int | None = None,
        mode: str = "replace",
        client: AsyncToolrecClient | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("replace", "restrict"):
            raise ValueError("mode must be 'replace' or 'restrict'")
        self.client = client or AsyncToolrecClient(base_url, api_key, max_retries=1)
        self.k, self.max_tool_tokens, self.mode = k, max_tool_tokens, mode
        self._by_call_id: dict[str, dict[str, Any]] = {}  # litellm_call_id -> its metadata (SDK path)

    async def _apply(self, data: dict[str, Any]) -> str | None:
        """Recommend for `data["messages"]` and set `data["tools"]`; the recommendation id."""
        messages = data.get("messages")
        if not messages:
            return None
        metadata = data.get("metadata") or {}
        try:
            answer = await self.client.recommend(
                messages,
                k=self.k,
                max_tool_tokens=self.max_tool_tokens,
                user_id=metadata.get("user_api_key_user_id") or data.get("user"),
                conversation_id=metadata.get("conversation_id"),
            )
        except (ToolrecError, httpx.HTTPError, ValueError) as error:
            log.warning("toolrec: no recommendation (%s); the request keeps its tools", error)
            return None
        recommended = openai_tools(answer)
        if self.mode == "restrict" and data.get("tools"):
            wanted = set(answer.names)
            recommended = [t for t in data["tools"] if (t.get("function") or {}).get("name") in wanted]
        if recommended:
            data["tools"] = recommended
        else:
            data.pop("tools", None)
            data.pop("tool_choice", None)  # a tool_choice without tools is an error for every provider
        data["metadata"] = {**metadata, METADATA_KEY: answer.recommendation_id, TOOLS_KEY: answer.names}
        return answer.recommendation_id

    async def _report(self, metadata: dict[str, Any], response: Any) -> None:
        recommendation_id = metadata.get(METADATA_KEY)
        # Only recommended tools can be reported (the service answers 400 for the whole batch
        # otherwise); restrict mode may leave the model a tool of the request's own.
        called = [name for name in tool_calls_in(response) if name in set(metadata.get(TOOLS_KEY) or ())]
        if not recommendation_id or not called:
            return
        try:
            await self.client.feedback(recommendation_id, events=[FeedbackEvent(tool=name) for name in called])
        except (ToolrecError, httpx.HTTPError) as error:
            log.warning("toolrec: feedback on %s not recorded (%s)", recommendation_id, error)

    # --- the proxy's hooks ---------------------------------------------------------------
    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: Any) -> dict:
        if str(call_type) in CHAT_CALL_TYPES:
            await self._apply(data)
        return data

    async def async_post_call_success_hook(self, data: dict, user_api_key_dict: Any, response: Any) -> Any:
        await self._report(data.get("metadata") or {}, response)
        return response

    # --- the SDK's hooks ------------------------------------------------------------------
    async def async_pre_call_deployment_hook(self, kwargs: dict[str, Any], call_type: Any) -> dict[str, Any] | None:
        if (kwargs.get("metadata") or {}).get(METADATA_KEY):
            return None  # the proxy hook already did it; its success hook reports
        if getattr(call_type, "value", call_type) not in CHAT_CALL_TYPES:
            return None
        recommendation_id = await self._apply(kwargs)
        call_id = kwargs.get("litellm_call_id")
        if recommendation_id and call_id:
            self._by_call_id[str(call_id)] = kwargs["metadata"]
        return kwargs

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        call_id = kwargs.get("litellm_call_id")
        metadata = self._by_call_id.pop(str(call_id), None) if call_id else None
        if metadata is not None:
            await self._report(metadata, response_obj)
