from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.authentication import ApiKeyAuthentication, api_key_of
from recommender.engine.types import ToolFilter
from recommender.serving.serializers import RecommendationRequestSerializer, RecommendationResponseSerializer
from recommender.serving.services import recommendation_create


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


class RecommendationCreateApi(APIView):
    authentication_classes = [ApiKeyAuthentication]
    throttle_scope = "recommend"

    @extend_schema(
        request=RecommendationRequestSerializer,
        responses=RecommendationResponseSerializer,
        examples=[
            OpenApiExample(
                "weather",
                request_only=True,
                value={"messages": [{"role": "user", "content": "What's the weather in Paris tomorrow?"}], "k": 3},
            )
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = RecommendationRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = recommendation_create(
            api_key=api_key_of(request),
            messages=data["messages"],
            user_id=data["user_id"],
            conversation_id=data["conversation_id"],
            k=data.get("k"),
            tool_filter=_tool_filter(data),
            explain=data["explain"],
        )
        response = Response(RecommendationResponseSerializer(result).data)
        # Standard Server-Timing header: browsers' dev tools and the latency benchmark read it.
        response["Server-Timing"] = ", ".join(f"{name};dur={ms:.2f}" for name, ms in result.timings_ms.items())
        return response
