from __future__ import annotations

from typing import Any

from rest_framework import serializers

from catalog.models import Tool


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


class ToolWriteSerializer(serializers.Serializer):
    """Shape checks only; the catalog's own validation (schema, lengths) runs in the service."""

    namespace = serializers.CharField(max_length=100, required=False, default="default")
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    parameters = serializers.JSONField(required=False, default=None)
    category = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list)
    family = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    # A field named like Field.source: DRF's metaclass moves declared fields off the class.
    source = serializers.CharField(  # type: ignore[assignment]
        max_length=200, required=False, allow_blank=True, default="api"
    )
    enabled = serializers.BooleanField(required=False, default=True)
    shared = serializers.BooleanField(
        required=False, default=False, help_text="Share with every tenant (needs the admin scope)."
    )


class ToolUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True)
    parameters = serializers.JSONField(required=False)
    category = serializers.CharField(max_length=100, required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    family = serializers.CharField(max_length=200, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)
