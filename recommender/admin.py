from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from recommender.models import IndexSnapshot, LearningState, RankerModel
from recommender.rankers import ranker_activate, ranker_deactivate


@admin.register(IndexSnapshot)
class IndexSnapshotAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "status",
        "is_active",
        "tool_count",
        "embedded_count",
        "reused_count",
        "index_kind",
        "build_seconds",
        "created_at",
    )
    list_filter = ("status", "is_active")
    readonly_fields = [f.name for f in IndexSnapshot._meta.fields]
    actions = ("rebuild_now",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Rebuild the index now")
    def rebuild_now(self, request: HttpRequest, queryset: QuerySet[IndexSnapshot]) -> None:
        from recommender.services import index_rebuild_schedule

        index_rebuild_schedule(countdown=0)
        messages.success(request, "An index rebuild was scheduled.")


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
        from recommender.tasks import train_ranker
        from toolrec_site.background import run_task

        run_task(train_ranker)
        messages.success(request, "Training was scheduled.")
