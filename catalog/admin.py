from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from catalog.importers import InvalidTool, make_spec, validate_parameters
from catalog.models import McpServer, Tool
from catalog.sealed import SecretUnreadable, seal, unseal
from catalog.services import tool_create, tool_set_enabled, tool_update
from toolrec_site.errors import ToolrecError
from toolrec_site.scheduling import SYNC_MCP_SERVERS, index_rebuild_schedule, run_task


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
    list_display = ("name", "namespace", "category", "family", "enabled", "updated_at")
    list_filter = ("enabled", "namespace", "category")
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


_SECRET_HELP = (
    'A JSON object of names to values, e.g. {"Authorization": "Bearer ..."}. Never shown again: '
    "leave empty to keep what is stored, enter {} to remove it."
)


def _secret_field(label: str) -> forms.CharField:
    return forms.CharField(
        label=label, required=False, help_text=_SECRET_HELP, widget=forms.Textarea(attrs={"rows": 2})
    )


class McpServerForm(forms.ModelForm):
    """Headers and environment variables are write-only: the form never renders them."""

    url = forms.URLField(
        required=False, max_length=500, assume_scheme="https", help_text=McpServer._meta.get_field("url").help_text
    )
    headers = _secret_field("Headers (HTTP)")
    env = _secret_field("Environment (stdio)")

    class Meta:
        model = McpServer
        fields = ["name", "namespace", "url", "command", "stay_connected", "enabled"]

    def _clean_secret(self, field: str) -> dict[str, str] | None:
        raw = (self.cleaned_data.get(field) or "").strip()
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc.msg}") from exc
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise forms.ValidationError("a JSON object of strings is expected")
        return value

    def clean_headers(self) -> dict[str, str] | None:
        return self._clean_secret("headers")

    def clean_env(self) -> dict[str, str] | None:
        return self._clean_secret("env")


@admin.register(McpServer)
class McpServerAdmin(admin.ModelAdmin):
    form = McpServerForm
    list_display = (
        "name",
        "namespace",
        "endpoint",
        "stay_connected",
        "enabled",
        "tool_count",
        "last_synced_at",
        "status",
    )
    list_filter = ("enabled", "stay_connected")
    search_fields = ("name", "namespace", "url", "command")
    readonly_fields = ("stored_secrets", "tool_count", "last_attempt_at", "last_synced_at", "last_error", "last_report")
    actions = ("sync_now",)

    @admin.display(description="endpoint")
    def endpoint(self, obj: McpServer) -> str:
        return obj.url or obj.command

    @admin.display(description="status")
    def status(self, obj: McpServer) -> str:
        if obj.last_error:
            return f"error: {obj.last_error[:120]}"
        return "ok" if obj.last_synced_at else "never synced"

    @admin.display(description="stored secrets")
    def stored_secrets(self, obj: McpServer) -> str:
        """Which headers and variables are stored, by name only."""
        try:
            secrets = unseal(obj.secrets_sealed)
        except SecretUnreadable as exc:
            return str(exc)
        names = [f"header {n}" for n in secrets.get("headers") or {}] + [f"env {n}" for n in secrets.get("env") or {}]
        return ", ".join(names) or "none"

    def save_model(self, request: HttpRequest, obj: McpServer, form: Any, change: bool) -> None:
        headers, env = form.cleaned_data.get("headers"), form.cleaned_data.get("env")
        if headers is not None or env is not None:
            try:
                stored = unseal(obj.secrets_sealed) if change else {}
            except SecretUnreadable:
                stored = {}
            stored |= {k: v for k, v in {"headers": headers, "env": env}.items() if v is not None}
            obj.secrets_sealed = seal({k: v for k, v in stored.items() if v})
        super().save_model(request, obj, form, change)

    @admin.action(description="Sync the selected servers now")
    def sync_now(self, request: HttpRequest, queryset: QuerySet[McpServer]) -> None:
        names = list(queryset.values_list("name", flat=True))
        run_task(SYNC_MCP_SERVERS, names=names)
        messages.success(request, f"A sync of {', '.join(names)} was started; reload to see its outcome.")
