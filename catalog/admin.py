from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from catalog.importers import InvalidTool, make_spec, validate_parameters
from catalog.models import Tool
from catalog.services import tool_create, tool_set_enabled, tool_update
from toolrec_site.errors import ToolrecError
from toolrec_site.scheduling import index_rebuild_schedule


class ToolForm(forms.ModelForm):
    class Meta:
        model = Tool
        fields = ["tenant", "namespace", "name", "description", "parameters", "category", "tags", "family", "enabled"]

    def clean_parameters(self) -> dict[str, Any]:
        try:
            return validate_parameters(self.cleaned_data.get("parameters"))
        except InvalidTool as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(Tool)
class ToolAdmin(admin.ModelAdmin):
    form = ToolForm
    list_display = ("name", "namespace", "tenant", "category", "family", "enabled", "updated_at")
    list_filter = ("enabled", "tenant", "namespace", "category")
    search_fields = ("name", "description", "family", "category")
    readonly_fields = ("content_hash", "source", "created_at", "updated_at")
    list_per_page = 50
    actions = ("enable_tools", "disable_tools", "reindex")

    def get_readonly_fields(self, request: HttpRequest, obj: Tool | None = None) -> Any:
        # A tool does not change hands: its tenant is chosen when it is created.
        return (*self.readonly_fields, "tenant") if obj is not None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Tool, form: Any, change: bool) -> None:
        data = form.cleaned_data
        try:
            if change:
                saved = tool_update(tool=obj, changes=data)
            else:
                spec = make_spec(
                    name=data["name"],
                    description=data.get("description", ""),
                    parameters=data.get("parameters"),
                    category=data.get("category", ""),
                    tags=data.get("tags") or [],
                    family=data.get("family", ""),
                    source="admin",
                )
                tenant = data.get("tenant")
                saved = tool_create(
                    namespace=data["namespace"],
                    spec=spec,
                    enabled=data.get("enabled", True),
                    tenant_id=tenant.pk if tenant is not None else None,
                )
        except (InvalidTool, ToolrecError) as exc:
            messages.error(request, str(exc))
            return
        obj.pk = saved.pk

    @admin.action(description="Enable the selected tools")
    def enable_tools(self, request: HttpRequest, queryset: QuerySet[Tool]) -> None:
        count = tool_set_enabled(tool_ids=queryset.values_list("pk", flat=True), enabled=True)
        messages.success(request, f"Enabled {count} tool(s); the index will be rebuilt.")

    @admin.action(description="Disable the selected tools")
    def disable_tools(self, request: HttpRequest, queryset: QuerySet[Tool]) -> None:
        count = tool_set_enabled(tool_ids=queryset.values_list("pk", flat=True), enabled=False)
        messages.success(request, f"Disabled {count} tool(s); the index will be rebuilt.")

    @admin.action(description="Rebuild the recommendation index now")
    def reindex(self, request: HttpRequest, queryset: QuerySet[Tool]) -> None:
        index_rebuild_schedule(countdown=0)
        messages.success(request, "An index rebuild was scheduled.")
