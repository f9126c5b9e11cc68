from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from access.models import ApiKey, Scope, Tenant
from access.policy import split_tool_key
from access.services import api_key_create, api_key_revoke


class LinesField(forms.CharField):
    """A list of strings edited as one per line (JSONField's raw JSON is easy to get wrong)."""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 60})

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        return list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))


class ToolKeysField(LinesField):
    def validate(self, value: Any) -> None:
        bad = [v for v in value if split_tool_key(v) is None]
        if bad:
            raise forms.ValidationError(f"Name tools as namespace/name, one per line: {bad[0]!r} is not.")


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices, widget=forms.CheckboxSelectMultiple, required=False, initial=Scope.values[:2]
    )
    allowed_namespaces = LinesField(required=False, help_text="One per line. Empty: every namespace.")
    allowed_tools = ToolKeysField(required=False, help_text="namespace/name, one per line.")
    denied_tools = ToolKeysField(required=False, help_text="namespace/name, one per line.")
    pinned_tools = ToolKeysField(required=False, help_text="namespace/name, one per line; counted in k.")

    class Meta:
        model = ApiKey
        fields = [
            "tenant",
            "name",
            "is_active",
            "scopes",
            "allowed_namespaces",
            "allowed_tools",
            "denied_tools",
            "pinned_tools",
        ]


_POLICY_FIELDS = ["scopes", "allowed_namespaces", "allowed_tools", "denied_tools", "pinned_tools"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ("name", "tenant", "prefix", "is_active", "scopes", "created_at")
    list_filter = ("is_active", "tenant")
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_at", "updated_at")
    actions = ("revoke",)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            obj.save(update_fields=["tenant", "name", "is_active", *_POLICY_FIELDS, "updated_at"])
            return
        data = form.cleaned_data
        created, raw_key = api_key_create(name=obj.name, tenant=data["tenant"], scopes=data["scopes"])
        ApiKey.objects.filter(pk=created.pk).update(**{f: data[f] for f in _POLICY_FIELDS[1:]})
        obj.pk, obj.prefix, obj.key_hash = created.pk, created.prefix, created.key_hash
        messages.warning(request, f"The new API key is {raw_key} — copy it now, it is not shown again.")

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        for api_key in queryset:
            api_key_revoke(api_key=api_key)
        messages.success(request, f"Revoked {queryset.count()} key(s).")
