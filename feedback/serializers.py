from __future__ import annotations

from typing import Any

from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers

from toolrec_site.fields import StrictBooleanField, StrictCharField, StrictFloatField


class FeedbackEventSerializer(serializers.Serializer):
    # Not trimmed: a tool's name may begin with a space, and is reported as the API returned it.
    tool = StrictCharField(
        max_length=200,
        help_text="The tool's function name as recommended (or its name, or namespace/name).",
    )
    used = StrictBooleanField()
    reward = StrictFloatField(required=False, allow_null=True, min_value=-1e6, max_value=1e6)
    event_id = StrictCharField(
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
    tool = StrictCharField(max_length=200, required=False)
    used = StrictBooleanField(required=False)
    reward = StrictFloatField(required=False, allow_null=True, min_value=-1e6, max_value=1e6)
    event_id = StrictCharField(max_length=200, required=False, allow_blank=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # The schema's oneOf, exactly: a batch (events) or a single event (tool and used),
        # and a body that is both is neither.
        batch, single = "events" in attrs, "tool" in attrs and "used" in attrs
        if batch and single:
            raise serializers.ValidationError("Give either events or a single tool, not both.")
        if not batch and not single:
            raise serializers.ValidationError("Give events, or tool and used.")
        if single:
            attrs["events"] = [{k: attrs[k] for k in ("tool", "used", "reward", "event_id") if k in attrs}]
        return attrs


class FeedbackBatchSerializer(FeedbackRequestSerializer):
    """For the schema only: the request with ``events``."""

    events = FeedbackEventSerializer(many=True, max_length=50, min_length=1)  # type: ignore[call-arg]


class FeedbackSingleSerializer(FeedbackRequestSerializer):
    """For the schema only: the request with one event's fields at the top level."""

    tool = StrictCharField(max_length=200)
    used = StrictBooleanField()


FEEDBACK_REQUEST_SCHEMA = PolymorphicProxySerializer(
    component_name="FeedbackRequest",
    serializers=[FeedbackBatchSerializer, FeedbackSingleSerializer],
    resource_type_field_name=None,
)


class FeedbackResponseSerializer(serializers.Serializer):
    recorded = serializers.IntegerField()
    duplicates = serializers.IntegerField()
