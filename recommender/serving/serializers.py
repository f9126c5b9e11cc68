from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from recommender.serving.tool_formats import FORMATS, OutputShape, answer_extras, called_name, tool_entry
from toolrec_site.fields import StrictBooleanField, StrictCharField, StrictIntegerField

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def _without_nul(value: Any) -> Any:
    """The value with NUL characters removed from every string in it. PostgreSQL cannot store
    them (the request failed with a 500 when the message was logged), they mean nothing to
    retrieval, and tool results pasted from binary output do carry them."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    return value


@extend_schema_field(
    {
        "type": "object",
        "description": "An OpenAI-style chat message; other keys (name, tool_call_id, ...) are kept.",
        "required": ["role"],
        "properties": {
            "role": {"type": "string", "enum": sorted(ROLES)},
            "content": {
                "nullable": True,
                "description": "Text, or a list of parts (those with text are read).",
                "anyOf": [{"type": "string"}, {"type": "array", "items": {}}],
            },
            "tool_calls": {
                "type": "array",
                "nullable": True,
                "items": {},
                "description": "The calls an assistant message made; their function names are read.",
            },
        },
    }
)
class MessageField(serializers.DictField):
    """One OpenAI-style chat message; only its shape is checked here."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError("each message must be an object")
        role = data.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise serializers.ValidationError(f"role must be one of {', '.join(sorted(ROLES))}")
        content = data.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise serializers.ValidationError("content must be a string, a list of parts or null")
        tool_calls = data.get("tool_calls")
        if tool_calls is not None and not isinstance(tool_calls, list):
            raise serializers.ValidationError("tool_calls must be a list")
        cleaned: dict[str, Any] = _without_nul(data)
        return cleaned


class FilterSerializer(serializers.Serializer):
    namespaces = serializers.ListField(child=StrictCharField(max_length=100), required=False, max_length=100)
    categories = serializers.ListField(child=StrictCharField(max_length=100), required=False, max_length=100)
    tags = serializers.ListField(child=StrictCharField(max_length=100), required=False, max_length=100)
    include = serializers.ListField(child=StrictCharField(max_length=200), required=False, max_length=1000)
    exclude = serializers.ListField(child=StrictCharField(max_length=200), required=False, max_length=1000)


class RecommendationRequestSerializer(serializers.Serializer):
    messages = serializers.ListField(child=MessageField(), min_length=1, max_length=settings.MAX_MESSAGES)
    user_id = StrictCharField(max_length=200, required=False, allow_blank=True, default="")
    conversation_id = StrictCharField(max_length=200, required=False, allow_blank=True, default="")
    k = StrictIntegerField(min_value=1, max_value=settings.RECOMMEND_MAX_K, required=False)
    namespace = StrictCharField(max_length=100, required=False, help_text="Shorthand for filters.namespaces.")
    category = StrictCharField(max_length=100, required=False, help_text="Shorthand for filters.categories.")
    filters = FilterSerializer(required=False)
    explain = StrictBooleanField(required=False, default=False)
    format = serializers.ChoiceField(
        choices=FORMATS,
        required=False,
        default="openai",
        help_text="The shape of each tool's `definition`: OpenAI Chat, OpenAI Responses, Anthropic or MCP.",
    )
    defer_loading = StrictBooleanField(
        required=False,
        default=False,
        help_text="anthropic and openai_responses: definitions carry defer_loading (for a client-side tool search).",
    )
    max_tool_tokens = StrictIntegerField(
        min_value=1,
        max_value=1_000_000,
        required=False,
        help_text="The definitions (in `format`, o200k_base tokens) must fit in this many tokens.",
    )


class RecommendedToolSerializer(serializers.Serializer):
    tool_id = serializers.IntegerField()
    name = serializers.CharField(
        help_text="The function name: unique in the catalog, valid for every provider; the model calls "
        "the tool by it and feedback reports it by it."
    )
    key = serializers.CharField(help_text='The tool in the catalog, as "namespace/name".')
    rank = serializers.IntegerField()
    score = serializers.FloatField()
    function = serializers.DictField(help_text="The OpenAI Chat tools entry, whatever the format.")
    definition = serializers.SerializerMethodField(help_text="The tools entry in the requested format.")
    reason = serializers.CharField(required=False, help_text="Why it was recommended; only with explain.")

    def get_definition(self, instance: Any) -> dict[str, Any]:
        # The format is the whole answer's (RecommendationResult.output), read from the root.
        output = getattr(self.root.instance, "output", None) or OutputShape()
        return tool_entry(instance.function, output.format, defer_loading=output.defer_loading)

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        if data.get("reason") is None:
            data.pop("reason", None)
        return data


class RecommendationResponseSerializer(serializers.Serializer):
    """The answer's body: only these fields leave the service (a RecommendationResult
    carries more, such as its timings, which go to the Server-Timing header)."""

    recommendation_id = serializers.UUIDField()
    experiment = serializers.CharField()
    variant = serializers.CharField()
    policy = serializers.CharField()
    snapshot_version = serializers.IntegerField()
    tools = RecommendedToolSerializer(many=True)
    match = serializers.SerializerMethodField(
        help_text="How likely the top tool is to be used: {label: good, weak or none, probability, basis: "
        "retrieval (a prior on the top tool's similarity, before feedback) or feedback (fitted on the log)}."
    )
    format = serializers.CharField(source="output.format")
    tool_tokens = serializers.IntegerField(help_text="What the definitions cost, in o200k_base tokens.")
    tool_choice = serializers.DictField(
        required=False, help_text="openai_responses: a tool_choice of type allowed_tools naming the tools."
    )
    tool_references = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="anthropic: tool_reference blocks, what a client-side tool search returns in its tool_result.",
    )
    latency_ms = serializers.FloatField()

    def get_match(self, instance: Any) -> dict[str, Any]:
        match = instance.match
        return {"label": match.label, "probability": match.probability, "basis": match.basis}

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        data.update(answer_extras([called_name(t.function) for t in instance.tools], instance.output.format))
        return data
