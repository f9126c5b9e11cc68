"""Python client of toolrec: tool recommendations for LLM agents.

`ToolrecClient` / `AsyncToolrecClient` call the API; `openai_tools`, `responses_tools`,
`anthropic_tools`, `mcp_tools` (and friends) turn an answer into each SDK's tool list. The
LiteLLM hook lives in `toolrec_client.litellm_hook` (imported on demand: LiteLLM is slow
to import).
"""

from toolrec_client.adapters import (
    anthropic_tool_references,
    anthropic_tools,
    mcp_tools,
    openai_tools,
    responses_tool_choice,
    responses_tools,
    tool_calls_in,
)
from toolrec_client.client import AsyncToolrecClient, ToolrecClient, ToolrecError
from toolrec_client.models import FeedbackEvent, FeedbackResult, Match, Recommendation, RecommendedTool

__all__ = [
    "AsyncToolrecClient",
    "FeedbackEvent",
    "FeedbackResult",
    "Match",
    "Recommendation",
    "RecommendedTool",
    "ToolrecClient",
    "ToolrecError",
    "anthropic_tool_references",
    "anthropic_tools",
    "mcp_tools",
    "openai_tools",
    "responses_tool_choice",
    "responses_tools",
    "tool_calls_in",
]
