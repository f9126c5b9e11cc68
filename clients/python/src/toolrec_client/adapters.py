"""An answer as the tool list each SDK takes, built on the client from the OpenAI entry that
every answer carries (so one answer serves any SDK, whatever `format` it was asked in)."""

from __future__ import annotations

from typing import Any

from toolrec_client.models import Recommendation

_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def _parts(function_entry: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    function = function_entry["function"]
    return str(function["name"]), str(function.get("description") or ""), function.get("parameters") or _EMPTY_SCHEMA


def openai_tools(answer: Recommendation) -> list[dict[str, Any]]:
    """`tools=` for OpenAI Chat Completions (and LiteLLM)."""
    return [t.function for t in answer.tools]


def responses_tools(answer: Recommendation, *, defer_loading: bool = False) -> list[dict[str, Any]]:
    """`tools=` for the OpenAI Responses API (flat function tools, not strict)."""
    tools = []
    for t in answer.tools:
        name, description, schema = _parts(t.function)
        entry: dict[str, Any] = {
            "type": "function",
            "name": name,
            "description": description,
            "parameters": schema,
            "strict": False,
        }
        if defer_loading:
            entry["defer_loading"] = True
        tools.append(entry)
    return tools


def responses_tool_choice(answer: Recommendation, *, mode: str = "auto") -> dict[str, Any]:
    """`tool_choice=` for the Responses API restricting a cached full tool list to the answer."""
    return {"type": "allowed_tools", "mode": mode, "tools": [{"type": "function", "name": n} for n in answer.names]}


def anthropic_tools(answer: Recommendation, *, defer_loading: bool = False) -> list[dict[str, Any]]:
    """`tools=` for the Anthropic Messages API."""
    tools = []
    for t in answer.tools:
        name, description, schema = _parts(t.function)
        entry: dict[str, Any] = {"name": name, "description": description, "input_schema": schema}
        if defer_loading:
            entry["defer_loading"] = True
        tools.append(entry)
    return tools


def anthropic_tool_references(answer: Recommendation) -> list[dict[str, Any]]:
    """The `tool_result` content of a client-side tool search: Claude loads these deferred tools."""
    return [{"type": "tool_reference", "tool_name": n} for n in answer.names]


def mcp_tools(answer: Recommendation) -> list[dict[str, Any]]:
    """MCP `tools/list` entries (`inputSchema`)."""
    tools = []
    for t in answer.tools:
        name, description, schema = _parts(t.function)
        tools.append({"name": name, "description": description, "inputSchema": schema})
    return tools


def tool_calls_in(response: Any) -> list[str]:
    """Names of the tools a chat completion (an OpenAI or LiteLLM response object, or its
    dict) called, in order, without repeats."""
    body = response.model_dump() if hasattr(response, "model_dump") else response
    names: list[str] = []
    for choice in (body or {}).get("choices") or []:
        for call in (choice.get("message") or {}).get("tool_calls") or []:
            name = (call.get("function") or {}).get("name")
            if name and name not in names:
                names.append(str(name))
    return names
