"""The catalog API: list, create, update, disable tools. One view per operation."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.callers import caller_of
from catalog.importers import InvalidTool, make_spec
from catalog.selectors import tool_create_owner, tool_get_visible, tool_get_writable, tool_list
from catalog.serializers import (
    MAX_PAGE_SIZE,
    ToolListQuerySerializer,
    ToolPageSerializer,
    ToolSerializer,
    ToolUpdateSerializer,
    ToolWriteSerializer,
)
from catalog.services import tool_create, tool_set_enabled, tool_update
from toolrec_site.errors import ToolrecError
from toolrec_site.openapi import ERROR_SCHEMA

TOOL_ID = OpenApiParameter("tool_id", {"type": "integer", "minimum": 1, "maximum": 10**18 - 1}, OpenApiParameter.PATH)
ERROR = OpenApiResponse(response=ERROR_SCHEMA, description="A tool of that name is in the namespace already.")


class ToolPagination(LimitOffsetPagination):
    max_limit = MAX_PAGE_SIZE


class ToolListCreateApi(APIView):
    throttle_scope = "catalog_write"  # writes only (access.throttling)

    @extend_schema(operation_id="tools_list", parameters=[ToolListQuerySerializer], responses=ToolPageSerializer)
    def get(self, request: Request) -> Response:
        # a plain dict: DRF reads a flag missing from a QueryDict as an unchecked checkbox
        query = ToolListQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        tools = tool_list(
            policy=caller_of(request).policy,
            namespace=query.validated_data.get("namespace"),
            category=query.validated_data.get("category"),
            enabled=query.validated_data.get("enabled"),
            search=query.validated_data.get("search"),
        )
        paginator = ToolPagination()
        page = paginator.paginate_queryset(tools, request, view=self)
        return paginator.get_paginated_response(ToolSerializer(page, many=True).data)

    @extend_schema(request=ToolWriteSerializer, responses={201: ToolSerializer, 409: ERROR})
    def post(self, request: Request) -> Response:
        serializer = ToolWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        tenant_id = tool_create_owner(caller=caller_of(request), shared=data["shared"], namespace=data["namespace"])
        try:
            spec = make_spec(
                name=data["name"],
                description=data["description"],
                parameters=data["parameters"],
                category=data["category"],
                tags=data["tags"],
                family=data["family"],
                source=data["source"],
            )
        except InvalidTool as exc:
            raise ToolrecError(str(exc)) from exc
        tool = tool_create(namespace=data["namespace"], spec=spec, enabled=data["enabled"], tenant_id=tenant_id)
        return Response(ToolSerializer(tool).data, status=status.HTTP_201_CREATED)


class ToolDetailApi(APIView):
    throttle_scope = "catalog_write"  # writes only (access.throttling)

    @extend_schema(parameters=[TOOL_ID], responses=ToolSerializer)
    def get(self, request: Request, tool_id: int) -> Response:
        return Response(ToolSerializer(tool_get_visible(policy=caller_of(request).policy, tool_id=tool_id)).data)

    @extend_schema(parameters=[TOOL_ID], request=ToolUpdateSerializer, responses=ToolSerializer)
    def patch(self, request: Request, tool_id: int) -> Response:
        tool = tool_get_writable(caller=caller_of(request), tool_id=tool_id)
        serializer = ToolUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            tool = tool_update(tool=tool, changes=dict(serializer.validated_data))
        except InvalidTool as exc:
            raise ToolrecError(str(exc)) from exc
        return Response(ToolSerializer(tool).data)

    @extend_schema(
        parameters=[TOOL_ID],
        request=None,
        responses={200: ToolSerializer},
        description="Disable the tool. It is kept (its history stays), so the answer is 200 with the tool.",
    )
    def delete(self, request: Request, tool_id: int) -> Response:
        tool = tool_get_writable(caller=caller_of(request), tool_id=tool_id)
        tool_set_enabled(tool_ids=[tool.pk], enabled=False)
        tool.refresh_from_db()
        return Response(ToolSerializer(tool).data)
