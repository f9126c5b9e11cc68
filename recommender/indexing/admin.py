from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from recommender.indexing.models import IndexSnapshot
from toolrec_site.scheduling import index_rebuild_schedule


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
        index_rebuild_schedule(countdown=0)
        messages.success(request, "An index rebuild was scheduled.")
