from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from feedback.models import Impression, Recommendation, UsageEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """The feedback log is written by the API only; the admin shows it."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ImpressionInline(admin.TabularInline):
    model = Impression
    fields = ("rank", "tool", "score", "propensity")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Recommendation)
class RecommendationAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "variant", "policy", "user_id", "conversation_id", "k", "latency_ms")
    list_filter = ("variant", "policy")
    search_fields = ("id", "user_id", "conversation_id", "query_text")
    inlines = [ImpressionInline]


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "tool", "used", "reward", "source", "created_at", "learned_at")
    list_filter = ("source", "used")
    list_select_related = ("tool",)
    search_fields = ("event_id", "tool__name")
