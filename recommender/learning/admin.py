from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import F, FloatField, QuerySet
from django.db.models.functions import Cast, Coalesce, NullIf
from django.http import HttpRequest

from catalog.admin import ToolAdmin
from catalog.models import Tool
from recommender.learning.models import IsolatedLearningState, LearningState, RankerModel, ToolStats
from recommender.learning.ranker_training import ranker_activate, ranker_deactivate
from toolrec_site.scheduling import TRAIN_RANKER, run_task


@admin.register(LearningState)
class LearningStateAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "recommendations_learned", "events_learned", "learn_seconds")
    readonly_fields = ("id", "created_at", "recommendations_learned", "events_learned", "learn_seconds")
    exclude = ("bandit",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(IsolatedLearningState)
class IsolatedLearningStateAdmin(admin.ModelAdmin):
    """Written by experiment_start (seed) and the learner only: shown, never edited."""

    list_display = ("experiment_key", "variant", "version", "serving", "recommendations_learned", "events_learned")
    list_filter = ("serving",)
    fields = (
        "experiment_key",
        "variant",
        "version",
        "serving",
        "seeded_from",
        "recommendations_learned",
        "events_learned",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(RankerModel)
class RankerModelAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "is_active", "training_groups", "ndcg_at_10", "baseline_ndcg_at_10")
    list_filter = ("is_active",)
    readonly_fields = ("id", "created_at", "is_active", "training_groups", "metrics", "feature_names")
    exclude = ("model_text",)
    actions = ("activate", "deactivate_all", "train_now")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="nDCG@10")
    def ndcg_at_10(self, obj: RankerModel) -> object:
        return obj.metrics.get("ndcg@10")

    @admin.display(description="retrieval nDCG@10")
    def baseline_ndcg_at_10(self, obj: RankerModel) -> object:
        return obj.metrics.get("baseline_ndcg@10")

    @admin.action(description="Activate the selected ranker (roll back = activate an older one)")
    def activate(self, request: HttpRequest, queryset: QuerySet[RankerModel]) -> None:
        if queryset.count() != 1:
            messages.error(request, "Select exactly one ranker to activate.")
            return
        ranker = ranker_activate(ranker_id=queryset.get().pk)
        messages.success(request, f"{ranker} is now served by the ltr and hybrid policies.")

    @admin.action(description="Deactivate every ranker")
    def deactivate_all(self, request: HttpRequest, queryset: QuerySet[RankerModel]) -> None:
        ranker_deactivate()
        messages.success(request, "No ranker is active; ltr falls back to the bandit.")

    @admin.action(description="Train a new ranker now")
    def train_now(self, request: HttpRequest, queryset: QuerySet[RankerModel]) -> None:
        run_task(TRAIN_RANKER)
        messages.success(request, "Training was scheduled.")


@admin.register(ToolStats)
class ToolStatsAdmin(admin.ModelAdmin):
    """The learner's per-tool counts (read-only: they are rebuilt from the log)."""

    list_display = ("tool", "times_recommended", "times_used", "last_recommended_at", "last_used_at")
    list_select_related = ("tool",)
    search_fields = ("tool__name",)
    ordering = ("-times_used",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class _BandFilter(admin.SimpleListFilter):
    """Tools by a band of one annotated count or rate (`bands`: value -> (label, lookup))."""

    bands: dict[str, tuple[str, dict[str, object]]] = {}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, label) for value, (label, _) in self.bands.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        band = self.bands.get(self.value() or "")
        return queryset.filter(**band[1]) if band else queryset


class ActivityFilter(_BandFilter):
    title = "recommended and used"
    parameter_name = "activity"
    bands = {
        "never_recommended": ("never recommended", {"recommendations": 0}),
        "never_used": ("recommended, never used", {"recommendations__gt": 0, "uses": 0}),
        "used": ("used", {"uses__gt": 0}),
    }


class RecommendationsFilter(_BandFilter):
    title = "recommendations"
    parameter_name = "recommendations"
    bands = {
        "1-99": ("1 to 99", {"recommendations__gte": 1, "recommendations__lt": 100}),
        "100-9999": ("100 to 9,999", {"recommendations__gte": 100, "recommendations__lt": 10_000}),
        "10000+": ("10,000 or more", {"recommendations__gte": 10_000}),
    }


class UsageRateFilter(_BandFilter):
    title = "usage rate"
    parameter_name = "usage_rate"
    bands = {
        "under-1": ("under 1%", {"usage_rate__lt": 0.01}),
        "1-10": ("1% to 10%", {"usage_rate__gte": 0.01, "usage_rate__lt": 0.1}),
        "10-50": ("10% to 50%", {"usage_rate__gte": 0.1, "usage_rate__lt": 0.5}),
        "50+": ("50% or more", {"usage_rate__gte": 0.5}),
    }


class ToolCurationAdmin(ToolAdmin):
    """The catalog's tool admin with what curators ask of the learned counts: how often each
    tool was recommended and used, and which never were. One LEFT JOIN of the per-tool
    counts (ToolStats, kept by the learner: recommendations are counted once learned, a
    minute or so after they were served); registered here because the catalog stage cannot
    import the learning one."""

    def get_list_display(self, request: HttpRequest) -> tuple[str, ...]:
        return (*ToolAdmin.list_display[:-1], "recommendations", "uses", "usage_rate", "last_used")

    def get_list_filter(self, request: HttpRequest) -> tuple[type[admin.ListFilter] | str, ...]:
        return (ActivityFilter, RecommendationsFilter, UsageRateFilter, *ToolAdmin.list_filter)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tool]:
        recommendations = Coalesce(F("stats__times_recommended"), 0)
        uses = Coalesce(F("stats__times_used"), 0)
        return (
            super()
            .get_queryset(request)
            .annotate(
                recommendations=recommendations,
                uses=uses,
                usage_rate=Cast(uses, FloatField()) / NullIf(Cast(recommendations, FloatField()), 0.0),
                last_used=F("stats__last_used_at"),
            )
        )

    @admin.display(description="recommended", ordering="recommendations")
    def recommendations(self, obj: Tool) -> int:
        return int(getattr(obj, "recommendations", 0))

    @admin.display(description="used", ordering="uses")
    def uses(self, obj: Tool) -> int:
        return int(getattr(obj, "uses", 0))

    @admin.display(description="usage rate", ordering=F("usage_rate").asc(nulls_first=True))
    def usage_rate(self, obj: Tool) -> str:
        rate = getattr(obj, "usage_rate", None)
        return "-" if rate is None else f"{rate:.1%}"

    @admin.display(description="last used", ordering=F("last_used").asc(nulls_first=True))
    def last_used(self, obj: Tool) -> object:
        return getattr(obj, "last_used", None)


admin.site.unregister(Tool)
admin.site.register(Tool, ToolCurationAdmin)
