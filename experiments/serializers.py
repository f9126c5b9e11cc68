"""Shapes of the experiments API. Shape checks only: what an experiment may be (a policy's
fields, the ramp, the guardrails, one control, disjoint traffic) is checked by the services,
which the admin and the commands call too, and their errors name the field."""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from experiments.models import Experiment, ExperimentEvent, PolicyVersion, Variant
from toolrec_site.fields import StrictBooleanField, StrictCharField, StrictFloatField, StrictIntegerField

SLUG = RegexValidator(r"^[-a-zA-Z0-9_]+$", "Use letters, digits, hyphens and underscores only.")
MAX_VARIANTS = 20
MAX_WEIGHT = 1_000_000


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "description": "A preset name, e.g. semantic, bandit, thompson."},
            {"type": "object", "additionalProperties": {}, "description": 'e.g. {"name": "bandit", "alpha": 0.2}'},
        ],
        "description": "A policy preset or object; each field is checked (an unknown or bad field is a 400).",
    }
)
class PolicyField(serializers.JSONField):
    pass


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "object", "additionalProperties": {}},
        "description": 'Steps such as {"share": 0.1, "min_minutes": 60, "min_units": 200}, shares rising.',
    }
)
class RampField(serializers.JSONField):
    pass


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {},
        "description": 'Optional tau, alpha, max_p99_ms, min_units, metrics, e.g. {"max_p99_ms": 300}.',
    }
)
class GuardrailsField(serializers.JSONField):
    pass


class VariantWriteSerializer(serializers.Serializer):
    name = StrictCharField(max_length=100, validators=[SLUG])
    policy = PolicyField()
    weight = StrictIntegerField(required=False, default=1, min_value=0, max_value=MAX_WEIGHT)
    is_control = StrictBooleanField(required=False, default=False)
    role = serializers.ChoiceField(choices=Variant.Role.values, required=False, default=Variant.Role.LIVE)
    learning = serializers.ChoiceField(
        choices=Variant.Learning.values,
        required=False,
        default=Variant.Learning.SHARED,
        help_text="isolated: the variant learns in a state of its own, from its own traffic only.",
    )


class ExperimentCreateSerializer(serializers.Serializer):
    key = StrictCharField(max_length=100, validators=[SLUG])
    name = StrictCharField(max_length=200, required=False, allow_blank=True, default="")
    unit = serializers.ChoiceField(choices=Experiment.Unit.values, required=False, default=Experiment.Unit.USER)
    traffic_start = StrictFloatField(required=False, default=0.0, min_value=0.0, max_value=1.0)
    traffic_end = StrictFloatField(required=False, default=1.0, min_value=0.0, max_value=1.0)
    allocation = serializers.ChoiceField(
        choices=Experiment.Allocation.values, required=False, default=Experiment.Allocation.FIXED
    )
    min_share = StrictFloatField(required=False, default=0.1, min_value=0.0, max_value=1.0)
    ramp = RampField(required=False, default=list)  # type: ignore[arg-type]  # the stubs type JSON as a mapping
    guardrails = GuardrailsField(required=False, default=dict)
    # many=True makes a ListSerializer, which takes these bounds (the stubs do not know it)
    variants = VariantWriteSerializer(many=True, min_length=1, max_length=MAX_VARIANTS)  # type: ignore[call-arg]


class StopSerializer(serializers.Serializer):
    reason = StrictCharField(max_length=300, required=False, allow_blank=True, default="")


class PromoteSerializer(serializers.Serializer):
    variant = StrictCharField(max_length=100, help_text="The variant whose policy becomes the default.")


class VariantSerializer(serializers.ModelSerializer):
    policy = PolicyField()

    class Meta:
        model = Variant
        fields = ["name", "role", "policy", "weight", "is_control", "learning"]
        read_only_fields = fields


class ExperimentSerializer(serializers.ModelSerializer):
    variants = VariantSerializer(many=True, read_only=True)
    ramp = RampField(read_only=True)
    guardrails = GuardrailsField(read_only=True)

    class Meta:
        model = Experiment
        fields = [
            "key",
            "name",
            "unit",
            "status",
            "traffic_start",
            "traffic_end",
            "allocation",
            "min_share",
            "ramp",
            "ramp_step",
            "guardrails",
            "created_at",
            "started_at",
            "stopped_at",
            "stop_reason",
            "variants",
        ]
        read_only_fields = fields


class ExperimentEventSerializer(serializers.ModelSerializer):
    details = serializers.JSONField(read_only=True)

    class Meta:
        model = ExperimentEvent
        fields = ["created_at", "action", "actor", "reason", "details"]
        read_only_fields = fields


class ExperimentDetailSerializer(ExperimentSerializer):
    events = serializers.SerializerMethodField(help_text="What happened to it, newest first (the last 100).")

    class Meta(ExperimentSerializer.Meta):
        fields = [*ExperimentSerializer.Meta.fields, "events"]
        read_only_fields = fields

    @extend_schema_field(ExperimentEventSerializer(many=True))
    def get_events(self, experiment: Experiment) -> list[dict[str, object]]:
        events = experiment.events.order_by("-created_at", "-id")[:100]
        return list(ExperimentEventSerializer(events, many=True).data)


class ExperimentPageSerializer(serializers.Serializer):
    """What GET /experiments answers: one page (limit/offset pagination)."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ExperimentSerializer(many=True)


class ExperimentListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Experiment.Status.values, required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=10**9)


class ResultsQuerySerializer(serializers.Serializer):
    over_time = serializers.IntegerField(
        required=False, default=0, min_value=0, max_value=100, help_text="Add the effect at N points in time."
    )


class PolicyVersionSerializer(serializers.ModelSerializer):
    policy = serializers.JSONField(read_only=True)
    replaces = serializers.SerializerMethodField(help_text="The version it replaced (what a rollback returns to).")

    class Meta:
        model = PolicyVersion
        fields = ["version", "policy", "source", "created_by", "created_at", "replaces"]
        read_only_fields = fields

    def get_replaces(self, version: PolicyVersion) -> int | None:
        return version.replaces.version if version.replaces is not None else None


class DefaultPolicySerializer(serializers.Serializer):
    policy = serializers.JSONField(help_text="What serves traffic outside experiments now.")
    version = serializers.IntegerField(help_text="Its version; 0 while RECOMMEND_POLICY serves (no version saved).")
    history = PolicyVersionSerializer(many=True, help_text="The last 20 versions, newest first.")


class PromotedSerializer(serializers.Serializer):
    experiment = ExperimentSerializer()
    default_policy = PolicyVersionSerializer()


RESULTS_SCHEMA = {
    "type": "object",
    "required": ["experiment", "status", "variants", "comparisons", "srm", "verdict", "verdict_text"],
    "properties": {
        "experiment": {"type": "string"},
        "status": {"type": "string", "enum": Experiment.Status.values},
        "variants": {"type": "array", "items": {"type": "object", "additionalProperties": {}}},
        "comparisons": {"type": "array", "items": {"type": "object", "additionalProperties": {}}},
        "srm": {"type": "object", "additionalProperties": {}},
        "verdict": {"type": "string", "enum": ["keep_running", "ship", "stop"]},
        "verdict_text": {"type": "string"},
    },
    "additionalProperties": {},
    "description": "As `manage.py experiment_results KEY --json` writes it (intervals not yet known are null).",
}
