"""The one entry point of a recommendation, for every face of the service.

REST (`api.py`) and the MCP server (`agents/mcp_server.py`) both hand the request body to
`recommendation_answer`: the same validation (the request serializer), the same service
(`recommendation_create`) and the same answer body, so a change to the request path reaches
both faces at once and neither can drift (one request path, as the issue asks).
"""

from __future__ import annotations

from typing import Any

from access.models import ApiKey
from recommender.engine.types import ToolFilter
from recommender.serving.serializers import RecommendationRequestSerializer, RecommendationResponseSerializer
from recommender.serving.services import RecommendationResult, recommendation_create
from recommender.serving.tool_formats import OutputShape


def _tool_filter(data: dict[str, Any]) -> ToolFilter | None:
    filters = data.get("filters") or {}
    namespaces = set(filters.get("namespaces") or []) | ({data["namespace"]} if data.get("namespace") else set())
    categories = set(filters.get("categories") or []) | ({data["category"]} if data.get("category") else set())
    tool_filter = ToolFilter(
        namespaces=frozenset(namespaces) or None,
        categories=frozenset(categories) or None,
        tags=frozenset(t.lower() for t in filters["tags"]) if filters.get("tags") else None,
        include=frozenset(filters["include"]) if filters.get("include") else None,
        exclude=frozenset(filters.get("exclude") or ()),
    )
    return None if tool_filter.is_empty else tool_filter


def recommendation_answer(*, api_key: ApiKey, payload: Any) -> tuple[dict[str, Any], RecommendationResult]:
    """Validate a recommendation request body, serve it, and return the answer body (and the
    result, whose timings the REST face puts in a header). Bad input raises DRF's
    ValidationError; domain errors raise ToolrecError: each face maps them to its own shape."""
    serializer = RecommendationRequestSerializer(data=payload)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    result = recommendation_create(
        api_key=api_key,
        messages=data["messages"],
        user_id=data["user_id"],
        conversation_id=data["conversation_id"],
        k=data.get("k"),
        tool_filter=_tool_filter(data),
        explain=data["explain"],
        output=OutputShape(data["format"], data["defer_loading"], data.get("max_tool_tokens")),
    )
    return dict(RecommendationResponseSerializer(result).data), result
