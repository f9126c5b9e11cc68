"""The operator's side: saves are validated by the services' checks and every action
(start, stop, promote, roll back) calls a service, which records who did it."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from experiments import services
from experiments.models import Experiment, ExperimentEvent, PolicyVersion, Variant
from experiments.policies import InvalidPolicy, policy_validate
from toolrec_site.errors import ToolrecError


def _policy_field_clean(value: Any) -> dict[str, Any]:
    try:
        return policy_validate(value)
    except InvalidPolicy as exc:
        raise forms.ValidationError(exc.message) from exc


class VariantForm(forms.ModelForm):
    class Meta:
        model = Variant
        fields = ("name", "role", "policy", "weight", "is_control", "learning")

    def clean_policy(self) -> dict[str, Any]:
        return _policy_field_clean(self.cleaned_data.get("policy"))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        experiment = self.instance.experiment if self.instance.experiment_id else None
        if "learning" in self.changed_data and experiment is not None and experiment.status != "draft":
            # Its own state is seeded when the experiment starts: switching later would serve
            # a variant without one, or leave one learning for nobody.
            self.add_error("learning", "Set when the experiment is a draft; it is seeded at start.")
        if isinstance(data.get("policy"), dict) and "name" in data:
            spec = services.VariantSpec(
                data["name"], data["policy"], role=data.get("role", "live"), learning=data.get("learning", "shared")
            )
            try:
                services.variant_learning_check(spec)
            except ToolrecError as exc:
                self.add_error("learning", exc.message)
        return data


class VariantFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        kept = [f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        controls = [f.cleaned_data["name"] for f in kept if f.cleaned_data.get("is_control")]
        if any(f.cleaned_data.get("is_control") and f.cleaned_data.get("role") == "shadow" for f in kept):
            raise forms.ValidationError("A shadow variant is never served, so it cannot be the control.")
        if kept and len(controls) != 1:
            raise forms.ValidationError(f"Mark exactly one variant as the control (marked: {controls or 'none'}).")


class VariantInline(admin.TabularInline):
    model = Variant
    form = VariantForm
    formset = VariantFormSet
    extra = 1


class ExperimentEventInline(admin.TabularInline):
    """The log of actions, the automatic ones (ramps, guardrails) with their reasons."""

    model = ExperimentEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "action", "actor", "reason", "details")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _actor(request: HttpRequest) -> str:
    return getattr(request.user, "username", "") or "admin"


def _each(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Experiment], verb: str) -> None:
    for experiment in queryset:
        try:
            if verb == "start":
                services.experiment_start(experiment=experiment, actor=_actor(request))
            elif verb == "stop":
                services.experiment_stop(experiment=experiment, actor=_actor(request), reason="stopped in the admin")
            else:
                treatments = [v.name for v in experiment.variants.all() if not v.is_control and v.role == "live"]
                if len(treatments) != 1:
                    raise ToolrecError("promote from the results page: it has several treatments")
                services.experiment_promote(experiment=experiment, variant_name=treatments[0], actor=_actor(request))
            modeladmin.message_user(request, f"{experiment.key}: {verb} done")
        except ToolrecError as exc:
            modeladmin.message_user(request, f"{experiment.key}: {exc.message}", level=messages.ERROR)


class ExperimentForm(forms.ModelForm):
    """The ramp, guardrails and allocation are checked by the services' checks, field by field."""

    class Meta:
        model = Experiment
        fields = (
            "key",
            "name",
            "unit",
            "traffic_start",
            "traffic_end",
            "allocation",
            "min_share",
            "ramp",
            "guardrails",
        )

    def clean_ramp(self) -> Any:
        try:
            return services.ramp_check(self.cleaned_data.get("ramp"))
        except ToolrecError as exc:
            raise forms.ValidationError(exc.message) from exc

    def clean_guardrails(self) -> Any:
        try:
            return services.guardrails_check(self.cleaned_data.get("guardrails"))
        except ToolrecError as exc:
            raise forms.ValidationError(exc.message) from exc


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    form = ExperimentForm
    list_display = ("key", "name", "unit", "status", "traffic_start", "traffic_end", "started_at", "stopped_at")
    list_filter = ("status", "unit")
    search_fields = ("key", "name")
    readonly_fields = ("status", "started_at", "stopped_at", "stop_reason", "ramp_step", "step_started_at")
    inlines = [VariantInline, ExperimentEventInline]
    actions = ["start", "stop", "promote_treatment"]

    def save_model(self, request: HttpRequest, obj: Experiment, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            services.experiment_event_record(experiment=obj, action="created", actor=_actor(request))

    @admin.action(description="Start the selected experiments")
    def start(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        _each(self, request, queryset, "start")

    @admin.action(description="Stop the selected experiments (traffic returns to the default policy)")
    def stop(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        _each(self, request, queryset, "stop")

    @admin.action(description="Promote the treatment to the default policy (and stop)")
    def promote_treatment(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        _each(self, request, queryset, "promote")


class PolicyVersionForm(forms.ModelForm):
    class Meta:
        model = PolicyVersion
        fields = ("policy",)

    def clean_policy(self) -> dict[str, Any]:
        return _policy_field_clean(self.cleaned_data.get("policy"))


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    """Adding a version makes it the default; versions are never edited, only replaced."""

    form = PolicyVersionForm
    list_display = ("version", "policy", "source", "created_by", "created_at")
    actions = ["roll_back", "restore"]

    def get_readonly_fields(self, request: HttpRequest, obj: PolicyVersion | None = None) -> tuple[str, ...]:
        return ("version", "policy", "source", "created_by", "replaces", "created_at") if obj else ()

    def save_model(self, request: HttpRequest, obj: PolicyVersion, form: Any, change: bool) -> None:
        if change:
            return
        saved = services.policy_default_set(policy=form.cleaned_data["policy"], actor=_actor(request))
        obj.pk, obj.version, obj.source = saved.pk, saved.version, saved.source

    @admin.action(description="Roll back: serve the version the current one replaced")
    def roll_back(self, request: HttpRequest, queryset: QuerySet[PolicyVersion]) -> None:
        try:
            version = services.policy_rollback(actor=_actor(request))
            self.message_user(request, f"serving v{version.version} ({version.source})")
        except ToolrecError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)

    @admin.action(description="Serve the selected version again")
    def restore(self, request: HttpRequest, queryset: QuerySet[PolicyVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select one version.", level=messages.ERROR)
            return
        version = services.policy_version_restore(version=queryset.get(), actor=_actor(request))
        self.message_user(request, f"serving v{version.version} ({version.source})")
