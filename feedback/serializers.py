from __future__ import annotations

from typing import Any

from rest_framework import serializers


class FeedbackEventSerializer(serializers.Serializer):
    # Not trimmed: a tool's name may begin with a space, and is reported as the API returned it.
    tool = serializers.CharField(
        max_length=200,
        trim_whitespace=False,
        help_text="The tool's function name as recommended (or its name, or namespace/name).",
    )
    used = serializers.BooleanField()
    reward = serializers.FloatField(required=False, allow_null=True, min_value=-1e6, max_value=1e6)
    event_id = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=False,
        help_text="Your id for this event: a retry with the same id counts once.",
    )


class FeedbackRequestSerializer(serializers.Serializer):
    """Either ``events: [...]`` or a single event's fields at the top level."""

    recommendation_id = serializers.UUIDField()
    # many=True makes a ListSerializer, which takes these bounds (the stubs do not know it)
    events = FeedbackEventSerializer(many=True, required=False, max_length=50, min_length=1)  # type: ignore[call-arg]
    tool = serializers.CharField(max_length=200, required=False, trim_whitespace=False)
    used = serializers.BooleanField(required=False)
    reward = serializers.FloatField(required=False, allow_null=True, min_value=-1e6, max_value=1e6)
    event_id = serializers.CharField(max_length=200, required=False, allow_blank=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "events" in attrs:
            if "tool" in attrs:
                raise serializers.ValidationError("Give either events or a single tool, not both.")
            return attrs
        if "tool" not in attrs or "used" not in attrs:
            raise serializers.ValidationError("Give events, or tool and used.")
        attrs["events"] = [{k: attrs.pop(k) for k in ("tool", "used", "reward", "event_id") if k in attrs}]
        return attrs


class FeedbackResponseSerializer(serializers.Serializer):
    recorded = serializers.IntegerField()
    duplicates = serializers.IntegerField()
