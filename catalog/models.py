from __future__ import annotations

from django.db import models


class Tool(models.Model):
    """A tool an agent can call: an OpenAI-style function, an MCP tool or an HTTP API."""

    # None: a shared tool (created by an admin), seen by every tenant. Otherwise only the
    # tenant's keys read, write and are served it.
    tenant = models.ForeignKey("access.Tenant", null=True, blank=True, on_delete=models.PROTECT, related_name="tools")
    namespace = models.CharField(max_length=100, default="default")
    name = models.CharField(max_length=200)
    # The name handed to models (catalog/naming.py): valid for every provider, unique among
    # the tools one key can see (the shared ones and its tenant's), and never changed once
    # given, so a called name maps back to exactly this tool.
    function_name = models.CharField(max_length=64, editable=False)
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
            # Imports and the API look tools up by (tenant, namespace, name); these are also
            # their indexes. Two tenants may each own "ns/name": a name taken by another
            # tenant must not be refused, or the refusal would tell that the tool exists.
            # (A tenant's tool never takes the name of a shared one: catalog.services checks.)
            models.UniqueConstraint(
                fields=["namespace", "name"], condition=models.Q(tenant__isnull=True), name="tool_unique_shared_name"
            ),
            models.UniqueConstraint(
                fields=["tenant", "namespace", "name"],
                condition=models.Q(tenant__isnull=False),
                name="tool_unique_tenant_name",
            ),
            # Function names are unique per view, not globally: were they global, a tenant's
            # new tool would get a hash suffix whenever another tenant held the name, and the
            # suffix would tell it that tool exists. (catalog.services keeps a tenant's names
            # apart from the shared ones.)
            models.UniqueConstraint(
                fields=["function_name"], condition=models.Q(tenant__isnull=True), name="tool_unique_shared_function"
            ),
            models.UniqueConstraint(
                fields=["tenant", "function_name"],
                condition=models.Q(tenant__isnull=False),
                name="tool_unique_tenant_function",
            ),
        ]
        indexes = [
            # The snapshot build reads enabled tools; the admin filters by category.
            models.Index(fields=["enabled", "namespace"], name="tool_enabled_namespace"),
            models.Index(fields=["category"], name="tool_category"),
            # Naming new tools reads which candidate function names are taken, in any tenant.
            models.Index(fields=["function_name"], name="tool_function_name"),
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


class McpServer(models.Model):
    """An MCP server whose tools the catalog follows (tools/list, paged), into one namespace.

    Its tools carry `source = "mcp:<name>"`; a tool the server stops listing is disabled,
    never deleted (the feedback log points at it). Headers and environment variables are
    secrets: stored encrypted (`catalog.sealed`), never shown back."""

    name = models.SlugField(max_length=100, unique=True, help_text="Used in `manage.py sync_mcp NAME`.")
    namespace = models.CharField(max_length=100, help_text="The catalog namespace its tools go into.")
    url = models.URLField(max_length=500, blank=True, help_text="A streamable HTTP server: its endpoint URL.")
    command = models.CharField(
        max_length=1000, blank=True, help_text="A stdio server: the command line that starts it (shell quoting)."
    )
    secrets_sealed = models.TextField(blank=True, editable=False, help_text="Encrypted headers and environment.")
    stay_connected = models.BooleanField(
        default=False,
        help_text="Keep a connection open (manage.py mcp_listen) and re-sync within seconds of "
        "notifications/tools/list_changed; otherwise the schedule re-syncs it.",
    )
    enabled = models.BooleanField(default=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True, help_text="The last sync that succeeded.")
    last_error = models.TextField(blank=True, help_text="Why the last attempt failed (empty once one succeeds).")
    last_report = models.JSONField(default=dict, blank=True, help_text="What the last successful sync changed.")
    tool_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "MCP server"
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(url="") & ~models.Q(command="")) | (~models.Q(url="") & models.Q(command="")),
                name="mcp_server_url_or_command",
                violation_error_message="Give either a URL or a command, not both.",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def tool_source(self) -> str:
        return f"mcp:{self.name}"
