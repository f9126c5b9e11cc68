from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog.models import Tool
from toolrec_site.fields import StrictBooleanField, StrictBooleanQueryField, StrictCharField

MAX_PAGE_SIZE = 500
MAX_OFFSET = 10**9


class ToolSerializer(serializers.ModelSerializer):
    key = serializers.CharField(read_only=True)
    shared = serializers.SerializerMethodField(help_text="Shared by an admin with every tenant (else your tenant's).")
    function = serializers.SerializerMethodField()

    class Meta:
        model = Tool
        fields = [
            "id",
            "key",
            "namespace",
            "name",
            "shared",
            "description",
            "parameters",
            "category",
            "tags",
            "family",
            "source",
            "enabled",
            "content_hash",
            "created_at",
            "updated_at",
            "function",
        ]
        read_only_fields = fields

    def get_shared(self, tool: Tool) -> bool:
        return tool.tenant_id is None

    def get_function(self, tool: Tool) -> dict[str, Any]:
        return tool.function_definition()


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "additionalProperties": {},
        "description": 'A JSON Schema of the arguments, {"type": "object", ...}; checked against the meta-schema.',
    }
)
class ParametersField(serializers.JSONField):
    pass


class ToolPageSerializer(serializers.Serializer):
    """What GET /tools answers: one page of tools (limit/offset pagination)."""

    count = serializers.IntegerField(help_text="Tools matching the filters, on all pages.")
    next = serializers.URLField(allow_null=True, help_text="The next page, or null on the last.")
    previous = serializers.URLField(allow_null=True, help_text="The previous page, or null on the first.")
    results = ToolSerializer(many=True)


class ToolWriteSerializer(serializers.Serializer):
    """Shape checks only; the catalog's own validation (schema, lengths) runs in the service."""

    namespace = StrictCharField(max_length=100, required=False, default="default")
    name = StrictCharField(max_length=200)
    description = StrictCharField(required=False, allow_blank=True, default="")
    parameters = ParametersField(required=False, default=None)
    category = StrictCharField(max_length=100, required=False, allow_blank=True, default="")
    tags = serializers.ListField(child=StrictCharField(max_length=100), required=False, default=list)
    family = StrictCharField(max_length=200, required=False, allow_blank=True, default="")
    # A field named like Field.source: DRF's metaclass moves declared fields off the class.
    source = StrictCharField(  # type: ignore[assignment]
        max_length=200, required=False, allow_blank=True, default="api"
    )
    enabled = StrictBooleanField(required=False, default=True)
    shared = StrictBooleanField(
        required=False, default=False, help_text="Share with every tenant (needs the admin scope)."
    )


class ToolUpdateSerializer(serializers.Serializer):
    description = StrictCharField(required=False, allow_blank=True)
    parameters = ParametersField(required=False)
    category = StrictCharField(max_length=100, required=False, allow_blank=True)
    tags = serializers.ListField(child=StrictCharField(max_length=100), required=False)
    family = StrictCharField(max_length=200, required=False, allow_blank=True)
    enabled = StrictBooleanField(required=False)


class ToolListQuerySerializer(serializers.Serializer):
    """GET /tools query parameters, bounded as the schema documents them: an offset past
    PostgreSQL's bigint, or a NUL in a filter, is a 400 with its reason, not a 500."""

    namespace = serializers.CharField(max_length=100, required=False, allow_blank=True)
    category = serializers.CharField(max_length=100, required=False, allow_blank=True)
    enabled = StrictBooleanQueryField(required=False)
    search = serializers.CharField(max_length=200, required=False, allow_blank=True)
    limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_SIZE, required=False)
    offset = serializers.IntegerField(min_value=0, max_value=MAX_OFFSET, required=False)
