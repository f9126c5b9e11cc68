from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest

from access.models import ApiKey
from access.services import api_key_create, api_key_revoke


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "prefix")
    fields = ("name", "prefix", "is_active", "created_at")
    readonly_fields = ("prefix", "created_at")
    actions = ("revoke",)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            obj.save(update_fields=["name", "is_active"])
            return
        created, raw_key = api_key_create(name=obj.name)
        obj.pk, obj.prefix, obj.key_hash = created.pk, created.prefix, created.key_hash
        messages.warning(request, f"The new API key is {raw_key} — copy it now, it is not shown again.")

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        for api_key in queryset:
            api_key_revoke(api_key=api_key)
        messages.success(request, f"Revoked {queryset.count()} key(s).")
