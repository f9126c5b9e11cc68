"""A recommended tool in the shape each SDK takes.

Every shape is derived from the OpenAI Chat entry the snapshot holds, and the name a model
calls comes from that entry's `function.name` only (`called_name`), so a change of naming
(unique names across namespaces) changes every format at once.

* `openai`: the Chat Completions `tools` entry (what the service always answered).
* `openai_responses`: the Responses API function tool, plus a ready `tool_choice` of type
  `allowed_tools`: a client that keeps its whole tool list in `tools` (cached prompt) only
  restricts it per turn.
* `anthropic`: the Messages API tool (`name`, `description`, `input_schema`); with
  `defer_loading` the entries carry `defer_loading: true` and the answer lists
  `tool_reference` blocks, what a client-side tool search returns in its `tool_result` so
  that Claude loads just those tools.
* `mcp`: the MCP `tools/list` entry (`inputSchema`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

FORMATS = ("openai", "openai_responses", "anthropic", "mcp")
EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class OutputShape:
    """How the asker wants the tools: the format, Anthropic's or OpenAI's deferred loading,
    and a cap on the tokens the definitions may cost."""

    format: str = "openai"
    defer_loading: bool = False
    max_tool_tokens: int | None = None


def called_name(definition: dict[str, Any]) -> str:
    """The name a model calls the tool by (the one place that reads it)."""
    return str(definition["function"]["name"])


def _parts(definition: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    function = definition["function"]
    return called_name(definition), str(function.get("description") or ""), function.get("parameters") or EMPTY_SCHEMA


def tool_entry(definition: dict[str, Any], output_format: str, *, defer_loading: bool = False) -> dict[str, Any]:
    """The tool as an entry of the `tools` list of `output_format`."""
    if output_format == "openai":
        return definition
    name, description, schema = _parts(definition)
    if output_format == "openai_responses":
        # strict is explicit: the Responses API enforces strict schemas unless told otherwise,
        # and catalog schemas are rarely strict-compatible (every property required, no extras).
        entry: dict[str, Any] = {
            "type": "function",
            "name": name,
            "description": description,
            "parameters": schema,
            "strict": False,
        }
    elif output_format == "anthropic":
        entry = {"name": name, "description": description, "input_schema": schema}
    elif output_format == "mcp":
        entry = {"name": name, "description": description, "inputSchema": schema}
    else:
        raise ValueError(f"unknown format {output_format!r}")
    if defer_loading and output_format in ("anthropic", "openai_responses"):
        entry["defer_loading"] = True
    return entry


def answer_extras(names: Sequence[str], output_format: str) -> dict[str, Any]:
    """What an answer of `output_format` carries besides its tools."""
    if output_format == "openai_responses":
        return {
            "tool_choice": {
                "type": "allowed_tools",
                "mode": "auto",
                "tools": [{"type": "function", "name": name} for name in names],
            }
        }
    if output_format == "anthropic":
        return {"tool_references": [{"type": "tool_reference", "tool_name": name} for name in names]}
    return {}
