from __future__ import annotations

from django.db import models


class Tool(models.Model):
    """A tool an agent can call: an OpenAI-style function, an MCP tool or an HTTP API."""

    namespace = models.CharField(max_length=100, default="default")
    name = models.CharField(max_length=200)
    # The name handed to models (catalog/naming.py): valid for every provider, unique, and
    # never changed once given, so a called name maps back to exactly this tool.
    function_name = models.CharField(max_length=64, unique=True, editable=False)
    description = models.TextField(blank=True)
    parameters = models.JSONField(default=dict, blank=True, help_text="A JSON schema object.")
    category = models.CharField(max_length=100, blank=True)
    tags = models.JSONField(default=list, blank=True)
    family = models.CharField(
        max_length=200, blank=True, help_text="The API, MCP server or toolkit the tool belongs to."
    )
    source = models.CharField(max_length=200, blank=True)
    extra = models.JSONField(default=dict, blank=True, help_text="Other fields the source carried.")
    enabled = models.BooleanField(default=True)
    # sha256 of the canonical JSON of the fields above: imports compare it to skip unchanged tools.
    content_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # Imports and the API look tools up by (namespace, name); this is also its index.
            models.UniqueConstraint(fields=["namespace", "name"], name="tool_unique_name_in_namespace"),
        ]
        indexes = [
            # The snapshot build reads enabled tools; the admin filters by category.
            models.Index(fields=["enabled", "namespace"], name="tool_enabled_namespace"),
            models.Index(fields=["category"], name="tool_category"),
        ]
        ordering = ["namespace", "name"]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def function_definition(self) -> dict[str, object]:
        """The tool as an OpenAI ``tools`` entry, ready to hand to the model."""
        return {
            "type": "function",
            "function": {
                "name": self.function_name,
                "description": self.description,
                "parameters": self.parameters or {"type": "object", "properties": {}},
            },
        }
