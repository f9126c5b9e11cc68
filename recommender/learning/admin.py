from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from recommender.learning.models import LearningState, RankerModel, ToolStats
from recommender.learning.ranker_training import ranker_activate, ranker_deactivate
from toolrec_site.scheduling import TRAIN_RANKER, run_task


@admin.register(LearningState)
class LearningStateAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "recommendations_learned", "events_learned", "learn_seconds")
    readonly_fields = ("id", "created_at", "recommendations_learned", "events_learned", "learn_seconds")
    exclude = ("bandit",)

    def has_add_permission(self, request: HttpRequest) -> bool:
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
