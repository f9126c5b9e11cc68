"""The catalog API: list, create, update, disable tools. One view per operation."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.callers import caller_of
from catalog.importers import InvalidTool, make_spec
from catalog.selectors import tool_create_owner, tool_get_visible, tool_get_writable, tool_list
from catalog.serializers import ToolSerializer, ToolUpdateSerializer, ToolWriteSerializer
from catalog.services import tool_create, tool_set_enabled, tool_update
from toolrec_site.errors import ToolrecError


def _bool_param(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    if value.lower() in {"1", "true", "yes"}:
        return True
    if value.lower() in {"0", "false", "no"}:
        return False
    raise ToolrecError("enabled must be true or false.")


class ToolListCreateApi(APIView):
    throttle_scope = "catalog_write"  # writes only (access.throttling)

    @extend_schema(
        parameters=[
            OpenApiParameter("namespace", str),
            OpenApiParameter("category", str),
            OpenApiParameter("enabled", bool),
            OpenApiParameter("search", str),
        ],
        responses=ToolSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        tools = tool_list(
            policy=caller_of(request).policy,
            namespace=request.query_params.get("namespace"),
            category=request.query_params.get("category"),
            enabled=_bool_param(request.query_params.get("enabled")),
            search=request.query_params.get("search"),
        )
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(tools, request, view=self)
        return paginator.get_paginated_response(ToolSerializer(page, many=True).data)

    @extend_schema(request=ToolWriteSerializer, responses={201: ToolSerializer})
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

    @extend_schema(responses=ToolSerializer)
    def get(self, request: Request, tool_id: int) -> Response:
        return Response(ToolSerializer(tool_get_visible(policy=caller_of(request).policy, tool_id=tool_id)).data)

    @extend_schema(request=ToolUpdateSerializer, responses=ToolSerializer)
    def patch(self, request: Request, tool_id: int) -> Response:
        tool = tool_get_writable(caller=caller_of(request), tool_id=tool_id)
        serializer = ToolUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            tool = tool_update(tool=tool, changes=dict(serializer.validated_data))
        except InvalidTool as exc:
            raise ToolrecError(str(exc)) from exc
        return Response(ToolSerializer(tool).data)

    @extend_schema(request=None, responses=ToolSerializer, description="Disable the tool (it is kept).")
    def delete(self, request: Request, tool_id: int) -> Response:
        tool = tool_get_writable(caller=caller_of(request), tool_id=tool_id)
        tool_set_enabled(tool_ids=[tool.pk], enabled=False)
        tool.refresh_from_db()
        return Response(ToolSerializer(tool).data)
