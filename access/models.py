from __future__ import annotations

from django.db import models


class Scope(models.TextChoices):
    """What a key may do. A key holds a list of these."""

    RECOMMEND = "recommend", "recommend: ask for recommendations"
    FEEDBACK = "feedback", "feedback: report tool use"
    CATALOG_WRITE = "catalog:write", "catalog:write: create, edit and disable its tenant's tools"
    ADMIN = "admin", "admin: also write shared tools (seen by every tenant)"
    # Experiments and the default policy decide what every tenant is served: an operator's
    # scope, granted on purpose to a key of any tenant (admin holds it too).
    EXPERIMENTS = "experiments", "experiments: run experiments and set the default policy (every tenant's traffic)"


def default_scopes() -> list[str]:
    """A new key recommends and reports feedback; writing the catalog is granted on purpose."""
    return [Scope.RECOMMEND.value, Scope.FEEDBACK.value]


class Tenant(models.Model):
    """A project: its keys see its own tools and the shared ones, never another tenant's."""

    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    """One key per agent or application. Only a SHA-256 of the key is stored.

    The key's tool policy (allowed namespaces and tools, denied tools, pinned tools) applies
    before retrieval: a tool outside it is never a candidate, so it cannot show up anywhere.
    Tools are named by their "namespace/name" key."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=100, help_text="The agent or application using this key.")
    prefix = models.CharField(max_length=12, help_text="The key's first characters, to recognise it.")
    # Authentication looks a key up by its hash on every API request: unique index.
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    is_active = models.BooleanField(default=True)
    scopes = models.JSONField(default=default_scopes, blank=True)
    allowed_namespaces = models.JSONField(
        default=list, blank=True, help_text="Only tools of these namespaces (and allowed tools); empty: all."
    )
    allowed_tools = models.JSONField(default=list, blank=True, help_text="Also these tools (namespace/name).")
    denied_tools = models.JSONField(default=list, blank=True, help_text="Never these tools (namespace/name).")
    pinned_tools = models.JSONField(
        default=list, blank=True, help_text="Tools every answer includes, first (namespace/name; counted in k)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or ())

    @property
    def has_tool_policy(self) -> bool:
        return bool(self.allowed_namespaces or self.allowed_tools or self.denied_tools)
